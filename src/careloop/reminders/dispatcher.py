"""The dispatcher: claims due occurrences, re-checks them at send time, sends, records.

Delivery contract (docs/reminders.md):
- Claims are short transactions: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE``
  on SQLite. A claim is a lease; a crashed worker's rows come back when the lease ends.
- Before a provider is called, a ``pending`` attempt is committed with the occurrence in
  ``sending``. A row later found ``sending`` with an expired lease is in doubt: the provider is
  asked whether it accepted that message (reconcile) before anything is sent again. Only when
  the provider cannot tell is it sent once more, logged as an in-doubt resend.
- At most one accepted attempt per dedupe key (UNIQUE constraint on accepted attempts).
- Consent, quiet hours, the daily cap and the patient's state are checked at send time.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time as _time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from careloop.accounts.models import Organisation
from careloop.alerts import services as task_services
from careloop.audit import services as audit
from careloop.careplans import domain
from careloop.careplans import models as cm
from careloop.channels import models as chm
from careloop.channels import registry
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    Reconciled,
    SendResult,
    TransientError,
)
from careloop.kit.clock import span, utc_now
from careloop.kit.rows import update_many, update_rows
from careloop.patients import models as pm
from careloop.reminders import links, rendering
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

log = logging.getLogger("careloop.dispatcher")

S = rm.Status
AO = rm.Attempt.Outcome
MAX_TRIES = 6
# How long a claim lasts; a crashed worker's rows are claimable again after it. Tests of
# crashes shorten it with CARELOOP_DISPATCH_LEASE_SECONDS.
LEASE = timedelta(seconds=float(os.environ.get("CARELOOP_DISPATCH_LEASE_SECONDS") or 120))
# A reminder this late is no longer useful: skipped (reason "expired") instead of sent.
MAX_LATENESS = {
    "medication": timedelta(hours=4),
    "measurement": timedelta(hours=8),
    "queue": timedelta(minutes=30),
}
DEFAULT_MAX_LATENESS = timedelta(hours=24)
ACTIVE = (S.SCHEDULED, S.RETRYING, S.SENDING, S.SENT, S.DELIVERED, S.FAILED)
DEFAULT_CHANNELS = ["wechat", "sms", "outbox"]


# The default texts depend on the kind and language only; translating them every time is slow.
_default_body = functools.lru_cache(maxsize=256)(rendering.default_body)
_default_subject = functools.lru_cache(maxsize=256)(rendering.default_subject)


def new_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Stats:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    skipped: int = 0
    retrying: int = 0
    dead: int = 0
    escalated: int = 0
    reconciled: int = 0
    in_doubt_resent: int = 0
    tasks: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- claiming ----------------------------------------------------------------------------------


def paused_organisations() -> list[int]:
    return list(
        rm.ReminderSettings.objects.filter(dispatch_paused=True).values_list(
            "organisation_id", flat=True
        )
    )


def claim(worker: str, now: datetime, limit: int) -> list[int]:
    """Lease up to ``limit`` due occurrences to this worker; returns their ids."""
    paused = paused_organisations()
    with transaction.atomic():
        qs = rm.Occurrence.objects.filter(wake_at__lte=now).filter(
            Q(claim_expires__isnull=True) | Q(claim_expires__lt=now)
        )
        if paused:
            qs = qs.exclude(organisation_id__in=paused)
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.order_by("wake_at").values_list("id", flat=True)[:limit])
        if ids:
            rm.Occurrence.objects.filter(id__in=ids).update(
                claimed_by=worker, claim_expires=now + span(LEASE)
            )
    return ids


# --- the context of a batch --------------------------------------------------------------------


@dataclass
class Context:
    """Everything a batch needs, loaded with a fixed number of queries."""

    now: datetime
    started: float = field(default_factory=_time.monotonic)
    renewed: float = field(default_factory=_time.monotonic)
    lost: set[int] = field(default_factory=set)
    settings: dict[int, rm.ReminderSettings] = field(default_factory=dict)
    channels: dict[tuple[int, str], chm.ChannelConfig] = field(default_factory=dict)
    prefs: dict[int, cm.ReminderPreference] = field(default_factory=dict)
    consents: dict[int, dict[tuple[str, str], bool]] = field(default_factory=dict)
    phones: dict[int, str] = field(default_factory=dict)
    push: dict[int, str] = field(default_factory=dict)  # the portal's newest push subscription
    activities: dict[tuple[int, str], cm.PlanActivity] = field(default_factory=dict)
    enrolments: dict[int, cm.Enrolment] = field(default_factory=dict)
    sent_today: dict[int, list[datetime]] = field(default_factory=dict)
    templates: dict[tuple[int | None, str, str, str], rm.MessageTemplate] = field(
        default_factory=dict
    )
    org_names: dict[int, str] = field(default_factory=dict)
    adapters: dict[tuple[int, str], Any] = field(default_factory=dict)

    def elapsed_now(self) -> datetime:
        """The batch's clock moved on by the real time spent since it started."""
        return self.now + timedelta(seconds=_time.monotonic() - self.started)

    def adapter(self, org_id: int, kind: str) -> Any:
        key = (org_id, kind)
        if key not in self.adapters:
            cfg = self.channels.get(key)
            if kind == ChannelKind.OUTBOX:
                self.adapters[key] = None
            elif cfg is None or not cfg.enabled:
                self.adapters[key] = None
            else:
                self.adapters[key] = registry.get_adapter(
                    ChannelKind(kind), cfg.provider, cfg.config
                )
        return self.adapters[key]


def load_context(occs: Sequence[rm.Occurrence], now: datetime) -> Context:
    ctx = Context(now=now)
    org_ids = {o.organisation_id for o in occs}
    patient_ids = {o.patient_id for o in occs}
    for org_id in org_ids:
        ctx.settings[org_id] = reminder_services.settings_for(org_id)
    for cfg in chm.ChannelConfig.objects.filter(organisation_id__in=org_ids):
        ctx.channels[(cfg.organisation_id, cfg.kind)] = cfg
    ctx.org_names = dict(Organisation.objects.filter(pk__in=org_ids).values_list("pk", "name"))
    for pref in cm.ReminderPreference.objects.filter(patient_id__in=patient_ids):
        ctx.prefs[pref.patient_id] = pref
    for c in (
        pm.Consent.objects.filter(patient_id__in=patient_ids, deleted_at__isnull=True)
        .order_by("decided_on", "id")
        .values("patient_id", "purpose", "channel", "granted")
    ):
        ctx.consents.setdefault(c["patient_id"], {})[(c["purpose"], c["channel"])] = c["granted"]
    for phone in pm.PatientPhone.objects.filter(patient_id__in=patient_ids).order_by(
        "-position", "-id"
    ):
        ctx.phones[phone.patient_id] = phone.number  # the lowest position wins
    from careloop.portal.services import push_addresses

    ctx.push = push_addresses(patient_ids)
    enrolment_ids = {o.enrolment_id for o in occs if o.enrolment_id}
    for e in cm.Enrolment.objects.filter(pk__in=enrolment_ids):
        ctx.enrolments[e.pk] = e
    template_ids = {e.template_id for e in ctx.enrolments.values()}
    for a in cm.PlanActivity.objects.filter(template_id__in=template_ids):
        ctx.activities[(a.template_id, a.code)] = a
    since = now - timedelta(hours=26)
    for pid, started in rm.Attempt.objects.filter(
        patient_id__in=patient_ids, started_at__gte=since, outcome__in=[AO.ACCEPTED, AO.DELIVERED]
    ).values_list("patient_id", "started_at"):
        ctx.sent_today.setdefault(pid, []).append(started)
    for t in rm.MessageTemplate.objects.filter(
        Q(organisation_id__in=org_ids) | Q(organisation__isnull=True)
    ):
        ctx.templates[(t.organisation_id, t.kind, t.channel, t.language)] = t
    return ctx


# --- decisions ---------------------------------------------------------------------------------


@dataclass
class Send:
    occ: rm.Occurrence
    channel: str
    step: int
    message: Message
    address_hint: str
    try_no: int = 1


def _activity(occ: rm.Occurrence, ctx: Context) -> cm.PlanActivity | None:
    enrolment = ctx.enrolments.get(occ.enrolment_id or 0)
    if enrolment is None:
        return None
    return ctx.activities.get((enrolment.template_id, occ.activity_code))


def _ladder(occ: rm.Occurrence, ctx: Context) -> list[Mapping[str, Any]]:
    act = _activity(occ, ctx)
    if act is not None:
        return list(act.escalation or [])
    return list(occ.payload.get("escalation", []))


def _channels_for(occ: rm.Occurrence, ctx: Context) -> list[str]:
    act = _activity(occ, ctx)
    base = (
        list(act.channels)
        if act is not None
        else list(occ.payload.get("channels", DEFAULT_CHANNELS))
    )
    pref = ctx.prefs.get(occ.patient_id)
    if pref is not None:
        chosen = (pref.channels or {}).get(occ.kind)
        if chosen:
            base = list(chosen)
        if pref.elderly and "voice" not in base[:1] and occ.kind != "education":
            base = ["voice", *[c for c in base if c != "voice"]]
    # A channel chosen for this one reminder (send-time learning or an experiment's arm) goes
    # first; the rest of the ladder stays behind it.
    route = occ.payload.get("route") if isinstance(occ.payload, dict) else None
    first = str(route.get("channel") or "") if isinstance(route, dict) else ""
    if first:
        base = [first, *[c for c in base if c != first]]
    return base


def _address(occ: rm.Occurrence, channel: str, ctx: Context) -> str:
    pref = ctx.prefs.get(occ.patient_id)
    if channel in (ChannelKind.SMS, ChannelKind.VOICE):
        return ctx.phones.get(occ.patient_id, "")
    if channel == ChannelKind.EMAIL:
        return pref.email if pref else ""
    if channel == ChannelKind.WECHAT:
        return pref.wechat_openid if pref else ""
    if channel == ChannelKind.PUSH:
        import json

        if occ.patient_id in ctx.push:  # subscribed from the patient's portal
            return ctx.push[occ.patient_id]
        return json.dumps(pref.push_subscription) if pref and pref.push_subscription else ""
    if channel == ChannelKind.OUTBOX:
        return str(occ.patient_id)
    return ""


def _mask(address: str, channel: str) -> str:
    if channel in (ChannelKind.SMS, ChannelKind.VOICE) and len(address) >= 7:
        return f"{address[:3]}****{address[-4:]}"
    if channel == ChannelKind.EMAIL and "@" in address:
        return "***@" + address.split("@", 1)[1][:15]
    return channel


def _consented(occ: rm.Occurrence, channel: str, ctx: Context) -> bool:
    if channel == ChannelKind.OUTBOX:
        return True  # the patient's own portal: nothing leaves CareLoop
    return ctx.consents.get(occ.patient_id, {}).get((occ.purpose, channel), False)


def _template(
    occ: rm.Occurrence, channel: str, language: str, ctx: Context
) -> rm.MessageTemplate | None:
    for org in (occ.organisation_id, None):
        for chan in (channel, ""):
            found = ctx.templates.get((org, occ.kind, chan, language))
            if found is not None:
                return found
    return None


def build_message(
    occ: rm.Occurrence, channel: str, step: int, address: str, ctx: Context
) -> Message:
    patient = occ.patient
    language = patient.preferred_language or "zh-hans"
    token = links.token_for(occ.source_key)
    link = links.url_for(token)
    local = domain.local_of(occ.due_at, domain.zone(occ.time_zone))
    # An appointment reminder tells the time of the appointment, not of the reminder.
    appointment = str(occ.payload.get("appointment_local") or "")
    values = {
        "name": patient.name,
        "time": appointment[5:] if appointment else local.strftime("%m-%d %H:%M"),
        "link": link,
        "clinic": ctx.org_names.get(occ.organisation_id, ""),
    }
    tpl = _template(occ, channel, language, ctx)
    body = rendering.fill(tpl.body if tpl else _default_body(occ.kind, language), values)
    # An experiment's wording arm: {"zh-hans": "…{link}", "en": "…"} replaces the body.
    wording = occ.payload.get("wording") if isinstance(occ.payload, dict) else None
    if isinstance(wording, dict):
        variant = wording.get(language) or wording.get("zh-hans") or wording.get("en")
        if isinstance(variant, str) and variant.strip():
            body = rendering.fill(variant, values)
    subject = (
        rendering.fill(tpl.subject, values)
        if tpl and tpl.subject
        else _default_subject(occ.kind, language)
    )
    cfg = ctx.channels.get((occ.organisation_id, channel))
    template_code = (tpl.provider_template_code if tpl else "") or (
        str(cfg.config.get(f"template_{occ.kind}") or cfg.config.get("template_code") or "")
        if cfg
        else ""
    )
    return Message(
        to=address,
        body=body,
        dedupe_key=f"o{occ.pk}:s{step}:{channel}",
        language=language,
        subject=subject,
        link=link,
        template_code=template_code,
        params={"name": values["name"], "time": values["time"], "link": token},
    )


def _sent_on_local_day(occ: rm.Occurrence, ctx: Context, tz: Any) -> int:
    today = domain.local_of(ctx.now, tz).date()
    return sum(
        1 for t in ctx.sent_today.get(occ.patient_id, []) if domain.local_of(t, tz).date() == today
    )


@dataclass
class Change:
    """What to write back to one occurrence (only if its status is still ``expect``)."""

    occ: rm.Occurrence
    expect: str
    values: dict[str, Any]


@dataclass
class Plan:
    sends: list[Send] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    in_doubt: list[tuple[rm.Occurrence, rm.Attempt]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


def _release(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**values, "claimed_by": "", "claim_expires": None, "updated_at": now}


def _task_for(
    occ: rm.Occurrence, step: Mapping[str, Any], n: int, ctx: Context, reason: str
) -> dict[str, Any]:
    enrolment = ctx.enrolments.get(occ.enrolment_id or 0)
    return {
        "organisation_id": occ.organisation_id,
        "patient_id": occ.patient_id,
        "kind": step.get("task", "call_patient"),
        "source_key": f"o{occ.pk}:task{n}",
        "due_at": ctx.now,
        "reason": reason,
        "role": step.get("to", "nurse"),
        "department_id": enrolment.department_id if enrolment else None,
        "occurrence_id": occ.pk,
    }


def _dead(plan: Plan, occ: rm.Occurrence, reason: str, ctx: Context) -> None:
    plan.changes.append(
        Change(
            occ,
            occ.status,
            _release({"status": S.DEAD, "reason": reason, "wake_at": None}, ctx.now),
        )
    )
    handler = domain.dead_letter_task(_ladder(occ, ctx))
    if handler is not None:
        plan.tasks.append(_task_for(occ, handler, 99, ctx, f"dead letter: {reason}"))
    plan.stats.dead += 1


def _choose(occ: rm.Occurrence, candidates: Iterable[str], ctx: Context) -> tuple[str, str] | str:
    """The first usable channel and its address, or the reason none is usable."""
    reasons = []
    for channel in candidates:
        if channel != ChannelKind.OUTBOX and ctx.adapter(occ.organisation_id, channel) is None:
            reasons.append("no_channel")
            continue
        if not _consented(occ, channel, ctx):
            reasons.append("no_consent")
            continue
        address = _address(occ, channel, ctx)
        if not address:
            reasons.append("no_address")
            continue
        return channel, address
    for reason in ("no_consent", "no_address", "no_channel"):
        if reason in reasons:
            return reason
    return "no_channel"


def decide(occ: rm.Occurrence, ctx: Context, plan: Plan, attempts: Sequence[rm.Attempt]) -> None:
    now = ctx.now
    patient = occ.patient
    tz = domain.zone(occ.time_zone)
    settings = ctx.settings[occ.organisation_id]
    if occ.status not in ACTIVE:
        plan.changes.append(Change(occ, occ.status, _release({"wake_at": None}, now)))
        return
    if patient.deceased_on or patient.merged_into_id:
        plan.changes.append(
            Change(
                occ,
                occ.status,
                _release({"status": S.SKIPPED, "reason": "patient_inactive", "wake_at": None}, now),
            )
        )
        plan.stats.skipped += 1
        return
    enrolment = ctx.enrolments.get(occ.enrolment_id or 0)
    if (
        enrolment is not None
        and enrolment.status != cm.Enrolment.Status.ACTIVE
        and occ.status in (S.SCHEDULED, S.RETRYING)
    ):
        plan.changes.append(
            Change(
                occ,
                occ.status,
                _release(
                    {"status": S.CANCELLED, "reason": "enrolment_ended", "wake_at": None}, now
                ),
            )
        )
        return

    if occ.status == S.SENDING:
        pending = [a for a in attempts if a.outcome == AO.PENDING]
        accepted = [
            a for a in attempts if a.step == occ.step and a.outcome in (AO.ACCEPTED, AO.DELIVERED)
        ]
        if accepted:  # recorded at the provider's answer, but the row was not moved on
            wake = _next_wake(occ, domain.ladder_steps(_ladder(occ, ctx)), ctx, tz, settings)
            plan.changes.append(
                Change(occ, S.SENDING, _release({"status": S.SENT, "wake_at": wake}, now))
            )
        elif pending:
            plan.in_doubt.append((occ, pending[-1]))
        else:  # crashed between marking and recording nothing: just try again
            plan.changes.append(
                Change(occ, S.SENDING, _release({"status": S.RETRYING, "wake_at": now}, now))
            )
        return

    ladder = domain.ladder_steps(_ladder(occ, ctx))
    if occ.status in (S.SENT, S.DELIVERED, S.FAILED):
        _escalate(occ, ladder, ctx, plan, tz, settings)
        return

    # scheduled or retrying: is it still worth sending, and may it be sent now?
    # Lateness counts from the due time, or from the end of quiet hours it was deferred to.
    since = occ.wake_at if occ.reason == "quiet_hours" and occ.wake_at else occ.due_at
    if occ.step == 0 and now - since > MAX_LATENESS.get(occ.kind, DEFAULT_MAX_LATENESS):
        plan.changes.append(
            Change(
                occ,
                occ.status,
                _release({"status": S.SKIPPED, "reason": "expired", "wake_at": None}, now),
            )
        )
        plan.stats.skipped += 1
        return
    quiet_start = patient.quiet_hours_start or settings.quiet_start
    quiet_end = patient.quiet_hours_end or settings.quiet_end
    allowed = domain.next_allowed(now, tz, quiet_start, quiet_end)
    if allowed > now and not _urgent(occ, allowed, tz):
        plan.changes.append(
            Change(occ, occ.status, _release({"wake_at": allowed, "reason": "quiet_hours"}, now))
        )
        plan.stats.deferred += 1
        return
    if (
        occ.kind == "call"
        and occ.step == 0
        and occ.tries == 0
        and not occ.payload.get("retry_from_dead")
    ):
        act = _activity(occ, ctx)
        who = (act.call_by if act else "") or "nurse"
        kind = "family_call" if who == "family_doctor" else "call_patient"
        plan.tasks.append(
            _task_for(occ, {"task": kind, "to": who}, 0, ctx, occ.payload.get("title", ""))
        )
    pref = ctx.prefs.get(occ.patient_id)
    cap = (pref.daily_cap if pref and pref.daily_cap else None) or settings.daily_cap
    if occ.step == 0 and _sent_on_local_day(occ, ctx, tz) >= cap:
        plan.changes.append(
            Change(
                occ,
                occ.status,
                _release({"status": S.SKIPPED, "reason": "daily_cap", "wake_at": None}, now),
            )
        )
        plan.stats.skipped += 1
        return
    if occ.step == 0:
        candidates = _channels_for(occ, ctx)
    else:
        step = ladder[occ.step - 1] if 0 < occ.step <= len(ladder) else {}
        chan = occ.payload.get("step_channel") or step.get("channel")
        candidates = [chan] if chan else []
    if not candidates:
        plan.changes.append(
            Change(
                occ,
                occ.status,
                _release(
                    {"status": S.SENT, "wake_at": _next_wake(occ, ladder, ctx, tz, settings)}, now
                ),
            )
        )
        return
    chosen = _choose(occ, candidates, ctx)
    if isinstance(chosen, str):
        if chosen == "no_consent":
            plan.changes.append(
                Change(
                    occ,
                    occ.status,
                    _release({"status": S.SKIPPED, "reason": "no_consent", "wake_at": None}, now),
                )
            )
            plan.stats.skipped += 1
        else:
            _dead(plan, occ, chosen, ctx)
        return
    channel, address = chosen
    ctx.sent_today.setdefault(occ.patient_id, []).append(now)
    try_no = 1 + sum(1 for a in attempts if a.step == occ.step and a.channel == channel)
    plan.sends.append(
        Send(
            occ,
            channel,
            occ.step,
            build_message(occ, channel, occ.step, address, ctx),
            _mask(address, channel),
            try_no,
        )
    )


def _urgent(occ: rm.Occurrence, allowed: datetime, tz: Any) -> bool:
    """Sent even in quiet hours: a queue call, or an appointment reminder that waiting would
    push to within an hour of the appointment itself."""
    if occ.kind == "queue":
        return True
    when = str(occ.payload.get("appointment_local") or "")
    if occ.kind != "appointment" or not when:
        return False
    try:
        starts = domain.to_utc(datetime.strptime(when, "%Y-%m-%d %H:%M"), tz)  # noqa: DTZ007
    except ValueError:
        return False
    return allowed >= starts - timedelta(hours=1)


def _next_wake(
    occ: rm.Occurrence,
    ladder: Sequence[Mapping[str, Any]],
    ctx: Context,
    tz: Any,
    settings: rm.ReminderSettings,
) -> datetime | None:
    """When the next escalation step fires after a send at ``ctx.now`` (None: ladder done)."""
    if occ.step >= len(ladder):
        return None
    return domain.next_step_at(
        ladder[occ.step], sent_at=ctx.now, tz=tz, end_of_day=settings.end_of_day
    )


def _escalate(
    occ: rm.Occurrence,
    ladder: Sequence[Mapping[str, Any]],
    ctx: Context,
    plan: Plan,
    tz: Any,
    settings: rm.ReminderSettings,
) -> None:
    now = ctx.now
    n = occ.step + 1
    if n > len(ladder):
        if occ.status == S.FAILED:
            _dead(plan, occ, "undelivered", ctx)
        else:
            plan.changes.append(Change(occ, occ.status, _release({"wake_at": None}, now)))
        return
    step = ladder[n - 1]
    pref = ctx.prefs.get(occ.patient_id)
    high_risk = bool(pref and pref.high_risk)
    reason = "no acknowledgement" if occ.status != S.FAILED else "not delivered"
    if step.get("task"):
        plan.tasks.append(_task_for(occ, step, n, ctx, reason))
    channel = step.get("channel")
    if high_risk and n == 1:
        # High-risk patients get both a nurse call and an automated voice call.
        if not step.get("task"):
            spec = _task_for(
                occ, {"task": "call_patient", "to": "nurse"}, n, ctx, "high risk: " + reason
            )
            # One call covers every unanswered reminder: no second task while one is open.
            spec["unless_open"] = True
            plan.tasks.append(spec)
        channel = ChannelKind.VOICE.value
    plan.stats.escalated += 1
    if channel:
        # The next rung sends on its own channel: a fresh send at this step.
        values = {
            "status": S.SCHEDULED,
            "step": n,
            "tries": 0,
            "wake_at": now,
            "payload": {**occ.payload, "step_channel": channel},
        }
        plan.changes.append(Change(occ, occ.status, _release(values, now)))
        return
    nxt = (
        domain.next_step_at(ladder[n], sent_at=now, tz=tz, end_of_day=settings.end_of_day)
        if n < len(ladder)
        else None
    )
    plan.changes.append(Change(occ, occ.status, _release({"step": n, "wake_at": nxt}, now)))


# --- executing a plan --------------------------------------------------------------------------


def _apply(changes: Iterable[Change], worker: str | None) -> int:
    """Write each change if the row is still as it was read (and still ours, given a worker):
    changes of the same fields from the same status go as one prepared statement."""
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, list[Any]]]] = defaultdict(list)
    for ch in changes:
        groups[(ch.expect, tuple(ch.values))].append((ch.occ.pk, list(ch.values.values())))
    applied = 0
    for (expect, fields), rows in groups.items():
        where = {"status": expect} | ({"claimed_by": worker} if worker is not None else {})
        applied += update_many(rm.Occurrence, fields, rows, only_where=where)
    return applied


def _open_tasks(tasks: Iterable[dict[str, Any]]) -> int:
    n = 0
    for spec in tasks:
        spec = dict(spec)
        if spec.pop("unless_open", False) and _open_call(spec):
            continue
        task_services.open_task(**spec)
        n += 1
    return n


def _open_call(spec: Mapping[str, Any]) -> bool:
    """The patient already has an open task of this kind for this role."""
    from careloop.alerts.models import Task

    return Task.objects.filter(
        patient_id=spec["patient_id"],
        kind=spec["kind"],
        assignee_role=spec["role"],
        status=Task.Status.OPEN,
    ).exists()


def _still_ours(occ_id: int, worker: str) -> bool:
    """Lock the row and check this worker still holds its claim (inside a transaction)."""
    return (
        rm.Occurrence.objects.select_for_update()
        .filter(pk=occ_id, claimed_by=worker, status=S.SENDING)
        .exists()
    )


def _resolve_in_doubt(plan: Plan, ctx: Context, worker: str) -> None:
    """Ask the provider about each attempt a crashed worker left pending, before re-sending."""
    ids = [occ.pk for occ, _ in plan.in_doubt]
    for occ, attempt in plan.in_doubt:
        _renew_if_due(ids, worker, ctx)
        channel = attempt.channel
        address = _address(occ, channel, ctx)
        message = build_message(occ, channel, attempt.step, address, ctx)
        if channel == ChannelKind.OUTBOX:
            verdict = (
                Reconciled.ACCEPTED
                if chm.OutboxMessage.objects.filter(dedupe_key=attempt.dedupe_key).exists()
                else Reconciled.NOT_FOUND
            )
        else:
            adapter = ctx.adapter(occ.organisation_id, channel)
            try:
                verdict = adapter.reconcile(message) if adapter is not None else Reconciled.UNKNOWN
            except ChannelError:
                verdict = Reconciled.UNKNOWN
        now = ctx.now
        if verdict == Reconciled.ACCEPTED:
            tz = domain.zone(occ.time_zone)
            ladder = domain.ladder_steps(_ladder(occ, ctx))
            wake = _next_wake(occ, ladder, ctx, tz, ctx.settings[occ.organisation_id])
            with transaction.atomic():
                if not _still_ours(occ.pk, worker):
                    continue  # another worker took the row over; it decides
                rm.Attempt.objects.filter(pk=attempt.pk, outcome=AO.PENDING).update(
                    outcome=AO.ACCEPTED,
                    in_doubt=True,
                    finished_at=now,
                    detail="confirmed by provider after a crash",
                )
                rm.Occurrence.objects.filter(pk=occ.pk).update(
                    **_release({"status": S.SENT, "wake_at": wake}, now)
                )
            plan.stats.reconciled += 1
            continue
        if verdict == Reconciled.UNKNOWN:
            log.warning(
                "in-doubt send of occurrence %s on %s: provider cannot confirm; sending once more",
                occ.pk,
                channel,
            )
            plan.stats.in_doubt_resent += 1
        with transaction.atomic():
            if not _still_ours(occ.pk, worker):
                continue
            rm.Attempt.objects.filter(pk=attempt.pk, outcome=AO.PENDING).update(
                outcome=AO.SUPERSEDED,
                in_doubt=verdict == Reconciled.UNKNOWN,
                finished_at=now,
                detail="worker stopped before recording; provider has no such message"
                if verdict == Reconciled.NOT_FOUND
                else "worker stopped before recording; provider cannot tell",
            )
        occ.status = S.SENDING
        plan.sends.append(
            Send(occ, channel, attempt.step, message, attempt.address_hint, attempt.try_no + 1)
        )


def _begin_sends(
    plan: Plan, ctx: Context, worker: str
) -> tuple[list[tuple[Send, rm.Attempt]], int]:
    """Commit pending attempts (and finish outbox sends) before any provider is called."""
    now = ctx.now
    if not plan.sends:
        return [], 0
    ids = [s.occ.pk for s in plan.sends]
    current = dict(
        rm.Occurrence.objects.filter(pk__in=ids, claimed_by=worker)
        .select_for_update()
        .values_list("pk", "status")
    )
    ready = [s for s in plan.sends if current.get(s.occ.pk) in (s.occ.status, S.SENDING)]
    outbox = [s for s in ready if s.channel == ChannelKind.OUTBOX]
    remote = [s for s in ready if s.channel != ChannelKind.OUTBOX]
    attempts = [
        rm.Attempt(
            occurrence_id=s.occ.pk,
            organisation_id=s.occ.organisation_id,
            patient_id=s.occ.patient_id,
            dedupe_key=s.message.dedupe_key,
            try_no=s.try_no,
            step=s.step,
            channel=s.channel,
            provider=(
                ctx.channels[(s.occ.organisation_id, s.channel)].provider
                if s.channel != ChannelKind.OUTBOX
                else "outbox"
            ),
            address_hint=s.address_hint,
            outcome=AO.ACCEPTED if s.channel == ChannelKind.OUTBOX else AO.PENDING,
            worker=worker,
            started_at=now,
            finished_at=now if s.channel == ChannelKind.OUTBOX else None,
            provider_message_id=f"outbox:{s.message.dedupe_key}"
            if s.channel == ChannelKind.OUTBOX
            else "",
        )
        for s in outbox + remote
    ]
    created = rm.Attempt.objects.bulk_create(attempts)
    by_key = {(a.dedupe_key, a.try_no): a for a in created}
    if outbox:
        chm.OutboxMessage.objects.bulk_create(
            [
                chm.OutboxMessage(
                    organisation_id=s.occ.organisation_id,
                    patient_id=s.occ.patient_id,
                    occurrence_id=s.occ.pk,
                    dedupe_key=s.message.dedupe_key,
                    subject=s.message.subject,
                    body=s.message.body,
                    link=s.message.link,
                    created_at=now,
                )
                for s in outbox
            ],
            ignore_conflicts=True,
        )
        _mark_sent([s.occ for s in outbox], ctx, worker, expect=None)
    if remote:
        rm.Occurrence.objects.filter(pk__in=[s.occ.pk for s in remote]).update(
            status=S.SENDING, updated_at=now
        )
    return [(s, by_key[(s.message.dedupe_key, s.try_no)]) for s in remote], len(outbox)


def _mark_sent(
    occs: Sequence[rm.Occurrence], ctx: Context, worker: str, *, expect: str | None
) -> int:
    """Sent: wake again when the next escalation step is due (grouped by that moment)."""
    groups: dict[datetime | None, list[int]] = defaultdict(list)
    for occ in occs:
        tz = domain.zone(occ.time_zone)
        ladder = domain.ladder_steps(_ladder(occ, ctx))
        groups[_next_wake(occ, ladder, ctx, tz, ctx.settings[occ.organisation_id])].append(occ.pk)
    n = 0
    for wake, ids in groups.items():
        qs = rm.Occurrence.objects.filter(pk__in=ids)
        qs = (
            qs.filter(status=expect)
            if expect
            else qs.exclude(status__in=[S.ACKNOWLEDGED, S.CANCELLED])
        )
        n += qs.update(
            status=S.SENT,
            wake_at=wake,
            reason="",
            claimed_by="",
            claim_expires=None,
            updated_at=ctx.now,
        )
    return n


def _renew_if_due(ids: Sequence[int], worker: str, ctx: Context) -> None:
    """Extend this worker's lease once a third of it has been used; forget rows it lost."""
    if _time.monotonic() - ctx.renewed < LEASE.total_seconds() / 3:
        return
    ours = rm.Occurrence.objects.filter(pk__in=ids, claimed_by=worker)
    ours.update(claim_expires=ctx.elapsed_now() + span(LEASE))
    kept = set(ours.values_list("pk", flat=True))
    ctx.lost.update(i for i in ids if i not in kept)
    ctx.renewed = _time.monotonic()


def _call_providers(
    pairs: Sequence[tuple[Send, rm.Attempt]], ctx: Context, worker: str = ""
) -> list[SendResult | ChannelError]:
    results: list[SendResult | ChannelError] = [
        TransientError("not attempted: the batch ran out of time") for _ in pairs
    ]
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, (send, _att) in enumerate(pairs):
        groups[(send.occ.organisation_id, send.channel)].append(i)
    ids = [send.occ.pk for send, _ in pairs]
    for (org_id, channel), indexes in groups.items():
        adapter = ctx.adapter(org_id, channel)
        size = max(1, int(getattr(adapter, "batch_size", 1) or 1))
        for start in range(0, len(indexes), size):
            if worker:
                _renew_if_due(ids, worker, ctx)
            # A row another worker has taken over is left to it: never sent from here.
            chunk = [i for i in indexes[start : start + size] if pairs[i][0].occ.pk not in ctx.lost]
            if not chunk:
                continue
            messages = [pairs[i][0].message for i in chunk]
            try:
                if len(messages) == 1:
                    out: list[SendResult | ChannelError] = [adapter.send(messages[0])]
                else:
                    out = list(adapter.send_batch(messages))
            except ChannelError as exc:
                out = [exc] * len(messages)
            except Exception as exc:  # a bug in an adapter must not lose the batch
                log.exception("channel %s failed unexpectedly", channel)
                out = [ChannelError(type(exc).__name__)] * len(messages)
            for i, result in zip(chunk, out, strict=True):
                results[i] = result
    return results


def _record(
    pairs: Sequence[tuple[Send, rm.Attempt]],
    results: Sequence[SendResult | ChannelError],
    plan: Plan,
    ctx: Context,
    worker: str,
) -> None:
    now = ctx.elapsed_now()
    done = ctx  # wake-ups and backoff count from the batch's own time
    with transaction.atomic():
        ids = [s.occ.pk for s, _ in pairs]
        list(rm.Occurrence.objects.filter(pk__in=ids).select_for_update().values_list("pk"))
        accepted: list[rm.Occurrence] = []
        att_updates: list[rm.Attempt] = []
        for (send, att), result in zip(pairs, results, strict=True):
            att.finished_at = now
            if isinstance(result, SendResult):
                att.outcome = AO.ACCEPTED
                att.provider_message_id = result.provider_message_id[:100]
                att.detail = result.detail[:300]
                accepted.append(send.occ)
            elif isinstance(result, PermanentError):
                att.outcome = AO.PERMANENT
                att.error_code = (result.code or result.reason.value)[:60]
                att.detail = result.detail[:300]
                _dead(plan, send.occ, result.reason.value, done)
                plan.changes[-1].expect = S.SENDING
            else:
                att.outcome = AO.TRANSIENT
                att.error_code = getattr(result, "code", "")[:60]
                att.detail = str(getattr(result, "detail", result))[:300]
                tries = send.occ.tries + 1
                if tries >= MAX_TRIES:
                    _dead(plan, send.occ, "retries_exhausted", done)
                    plan.changes[-1].expect = S.SENDING
                else:
                    wake = now + domain.backoff(tries, rand=random.random())  # noqa: S311 - jitter
                    plan.changes.append(
                        Change(
                            send.occ,
                            S.SENDING,
                            _release({"status": S.RETRYING, "tries": tries, "wake_at": wake}, now),
                        )
                    )
                    plan.stats.retrying += 1
            att_updates.append(att)
        _finish_attempts(att_updates)
        plan.stats.sent += _mark_sent(accepted, done, worker, expect=S.SENDING)
        plan.stats.tasks += _open_tasks(plan.tasks)
        plan.tasks = []
        # Failures were added to the plan after its first changes were written: write them now.
        _apply([c for c in plan.changes if c.expect == S.SENDING], worker=worker)


def _finish_attempts(attempts: Sequence[rm.Attempt]) -> None:
    """Write each attempt's outcome, only where it is still pending (a delivery report that
    came first is kept)."""
    update_rows(
        attempts,
        ("outcome", "provider_message_id", "detail", "error_code", "finished_at"),
        only_where={"outcome": AO.PENDING},
    )


def process(ids: Sequence[int], worker: str, now: datetime | None = None) -> Stats:
    """Decide, send and record one claimed batch."""
    now = now or utc_now()
    occs = list(
        rm.Occurrence.objects.filter(pk__in=ids, claimed_by=worker)
        .select_related("patient")
        # Sending never reads these; each is a decryption per row.
        .defer("patient__national_id", "patient__address")
    )
    if not occs:
        return Stats()
    attempts: dict[int, list[rm.Attempt]] = defaultdict(list)
    retried = [o.pk for o in occs if o.status != S.SCHEDULED or o.tries or o.step]
    if retried:
        for a in rm.Attempt.objects.filter(occurrence_id__in=retried).order_by("id"):
            attempts[a.occurrence_id].append(a)
    ctx = load_context(occs, now)
    plan = Plan()
    plan.stats.claimed = len(occs)
    for occ in occs:
        decide(occ, ctx, plan, attempts.get(occ.pk, []))
    _resolve_in_doubt(plan, ctx, worker)
    with transaction.atomic():
        _apply(plan.changes, worker)
        plan.stats.tasks += _open_tasks(plan.tasks)
        plan.tasks = []
        pairs, outboxed = _begin_sends(plan, ctx, worker)
        plan.stats.sent += outboxed
    plan.changes = []
    if pairs:
        results = _call_providers(pairs, ctx, worker)
        _record(pairs, results, plan, ctx, worker)
    _audit([s for s in plan.sends if s.channel == ChannelKind.OUTBOX] + [s for s, _ in pairs])
    return plan.stats


def _audit(sent: Sequence[Send]) -> None:
    """One audit event per organisation and batch: the occurrences sent and their channels."""
    by_org: dict[int, list[str]] = defaultdict(list)
    for send in sent:
        by_org[send.occ.organisation_id].append(f"{send.occ.pk}:{send.channel}")
    for org_id, items in by_org.items():
        audit.append(
            action="reminder.send",
            organisation_id=org_id,
            actor_name="dispatcher",
            object_type="reminders.occurrence",
            detail={"count": len(items), "sent": items[:1000]},
        )


def run_once(worker: str, *, limit: int = 200, now: datetime | None = None) -> Stats:
    now = now or utc_now()
    ids = claim(worker, now, limit)
    if not ids:
        return Stats()
    return process(ids, worker, now)


class Dispatcher:
    """The reminder loop of ``careloop worker`` (and of ``make run``'s in-process worker)."""

    def __init__(
        self,
        *,
        batch: int = 200,
        interval: float = 1.0,
        top_up_every: float = 300.0,
        sweep_every: float = 60.0,
        notify_every: float = 10.0,
    ) -> None:
        self.worker = new_worker_id()
        self.batch = batch
        self.interval = interval
        self.top_up_every = top_up_every
        self.sweep_every = sweep_every
        self.notify_every = notify_every
        self.stop = threading.Event()
        self.total = Stats()
        self._last_top_up = 0.0
        self._last_sweep = 0.0
        self._last_notify = 0.0
        from careloop.analytics.state import Periodic as AnalyticsRefresh

        self.analytics_refresh = AnalyticsRefresh()
        # The monthly department report e-mails (careloop.analytics.reports): at most hourly.
        self.report_every = 3600.0
        self._last_report = 0.0

    def alert_jobs(self) -> None:
        """The alerts' periodic work: the absence and missed-dose sweeps and escalation every
        minute; staff notifications as soon as someone queued one in this process
        (``sending.wake``), and every few seconds for those queued by other processes or due
        for a retry."""
        from careloop.alerts import sending, sweeps

        if _time.monotonic() - self._last_sweep > self.sweep_every:
            self._last_sweep = _time.monotonic()
            for job in (sweeps.absence, sweeps.missed_doses, sweeps.escalate):
                try:
                    job()
                except Exception:
                    log.exception("alert sweep %s failed; will try again", job.__name__)
        try:
            self.analytics_refresh()  # incremental, every 10 minutes (careloop.analytics.state)
        except Exception:
            log.exception("refreshing the analytics state failed; will try again")
        if sending.woken() or _time.monotonic() - self._last_notify > self.notify_every:
            self._last_notify = _time.monotonic()
            try:
                sending.send_pending()
            except Exception:
                log.exception("sending staff notifications failed; will try again")

    def tick(self) -> Stats:
        from careloop.careplans import services as plan_services

        if _time.monotonic() - self._last_top_up > self.top_up_every:
            self._last_top_up = _time.monotonic()
            try:
                plan_services.top_up()
            except Exception:
                log.exception("topping up the reminder horizon failed; will try again")
            try:
                from careloop.appointments import services as appointment_services

                appointment_services.periodic()
            except Exception:
                log.exception("opening slots / marking no-shows failed; will try again")
            try:
                from careloop.education import services as education_services

                education_services.periodic()  # the daily stage push (runs once a day)
            except Exception:
                log.exception("pushing education by plan stage failed; will try again")
        self.alert_jobs()
        if _time.monotonic() - self._last_report > self.report_every or not self._last_report:
            self._last_report = _time.monotonic()
            try:
                from careloop.analytics.reports import services as report_services

                report_services.send_due(utc_now())
            except Exception:
                log.exception("sending the monthly department reports failed; will try again")
        from careloop.kit import periodic

        periodic.run_due()  # what apps registered (segments, risk scoring, send-time learning…)
        stats = run_once(self.worker, limit=self.batch)
        self.total.add(stats)
        try:
            # FHIR rest-hook notifications, after the reminders: a slow subscriber's endpoint
            # never holds up a patient's reminder.
            from careloop.subscriptions import delivery as subscription_delivery

            subscription_delivery.periodic(self.worker)
        except Exception:
            log.exception("sending subscription notifications failed; will try again")
        return stats

    def run(self, *, until_idle: bool = False) -> Stats:
        from django.db import close_old_connections

        log.info("dispatcher %s started", self.worker)
        while not self.stop.is_set():
            close_old_connections()
            try:
                stats = self.tick()
            except Exception:
                log.exception("dispatcher batch failed; its rows return when their lease ends")
                stats = Stats()
                self.stop.wait(self.interval)
            if stats.claimed == 0:
                if until_idle:
                    break
                self.stop.wait(self.interval)
        log.info("dispatcher %s stopped", self.worker)
        return self.total

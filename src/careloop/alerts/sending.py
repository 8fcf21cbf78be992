"""Sends the notifications `notifications.queue_urgent` queued: SMS and e-mail to the clinician
on call, through the organisation's own channels (careloop.channels).

Delivery contract (the same as the reminder dispatcher's, on the Notification row itself):
- A claim is a short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE``
  on SQLite (the settings' transaction mode). Claimed rows go to ``sending`` with a lease, so
  two workers never send one row; a crashed worker's row is claimed again when its lease ends.
- While a row is ``pending`` or ``sending``, ``sent_at`` is the time before which nobody may
  take it (the retry time or the lease end); once ``sent`` it is the time the provider accepted
  it. Each claim counts a try; a transient failure is retried with backoff, at most
  ``MAX_TRIES`` tries, then the row is ``failed`` with the provider's error (shown on the
  operations page).
- The text names no patient (PHI minimisation: an SMS is read on a lock screen): only how many
  urgent alerts wait in which department, in the clinician's language, and where to look.

SMS providers that send registered templates only (Aliyun, Tencent) use the channel setting
``template_alert`` when present (else the channel's default template) with the parameters
``department`` and ``count``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import translation
from django.utils.translation import gettext, ngettext

from careloop.accounts.models import Department, Staff
from careloop.alerts import models as am
from careloop.audit import services as audit
from careloop.careplans import domain as plan_domain
from careloop.channels import models as chm
from careloop.channels import registry
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    PermanentReason,
    SendResult,
)
from careloop.kit.clock import span, utc_now

log = logging.getLogger("careloop.alerts.sending")

MAX_TRIES = 5
LEASE = timedelta(seconds=120)
# Urgent news must not wait long between tries: 20 s, 40 s, 80 s … at most 10 minutes.
BACKOFF_BASE = 20.0
BACKOFF_CAP = 600.0
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
CHANNELS = {"sms": ChannelKind.SMS, "email": ChannelKind.EMAIL}

_nudged = threading.Event()


def wake() -> None:
    """Nudge the worker: it sends pending notifications on its next tick (within a second)
    instead of at its next poll. Called after the commit that queued them."""
    _nudged.set()


def woken() -> bool:
    """Whether someone called `wake` since the last look (and forget that they did)."""
    if _nudged.is_set():
        _nudged.clear()
        return True
    return False


# --- claiming ----------------------------------------------------------------------------------


def claim(now: datetime, limit: int) -> list[int]:
    """Lease up to ``limit`` notifications that are due to be sent; returns their ids."""
    with transaction.atomic():
        qs = am.Notification.objects.filter(status__in=[PENDING, SENDING]).filter(
            Q(sent_at__isnull=True) | Q(sent_at__lte=now)
        )
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.order_by("created_at", "id").values_list("id", flat=True)[:limit])
        if ids:
            am.Notification.objects.filter(id__in=ids).update(
                status=SENDING, sent_at=now + span(LEASE), tries=F("tries") + 1
            )
    return ids


# --- the message -------------------------------------------------------------------------------


@dataclass
class _Batch:
    rows: list[am.Notification]
    staff: dict[int, Staff]
    departments: dict[int, Department]
    configs: dict[tuple[int, str], chm.ChannelConfig]
    adapters: dict[tuple[int, str], Any]

    def adapter(self, org_id: int, channel: str) -> Any:
        key = (org_id, channel)
        if key not in self.adapters:
            cfg = self.configs.get((org_id, CHANNELS[channel]))
            if cfg is None or not cfg.enabled:
                self.adapters[key] = PermanentError(
                    f"no {channel} channel is set up for the organisation",
                    code="no_channel",
                    reason=PermanentReason.CONFIGURATION,
                )
            else:
                try:
                    self.adapters[key] = registry.get_adapter(
                        CHANNELS[channel], cfg.provider, cfg.config
                    )
                except ChannelError as exc:
                    self.adapters[key] = exc
        return self.adapters[key]


def _load(ids: Sequence[int]) -> _Batch:
    rows = list(
        am.Notification.objects.filter(pk__in=ids, status=SENDING)
        .select_related("alert")
        .order_by("id")
    )
    staff = Staff.objects.in_bulk({r.staff_id for r in rows})
    departments = Department.objects.in_bulk(
        {r.alert.department_id for r in rows if r.alert.department_id}
    )
    orgs = {r.alert.organisation_id for r in rows}
    configs = {
        (c.organisation_id, c.kind): c
        for c in chm.ChannelConfig.objects.filter(organisation_id__in=orgs)
    }
    return _Batch(rows, staff, departments, configs, {})


def texts(*, step: str, language: str, department: str, count: int = 1) -> tuple[str, str]:
    """(short text, e-mail subject) in the clinician's language; no patient is named."""
    with translation.override(language or "zh-hans"):
        if step == "escalated":
            short = gettext(
                "CareLoop: an urgent alert in %(department)s is past its response time"
                " — open the worklist"
            ) % {"department": department}
            subject = gettext("CareLoop: urgent alert past its response time")
        else:
            short = ngettext(
                "CareLoop: %(count)d urgent alert in %(department)s — open the worklist",
                "CareLoop: %(count)d urgent alerts in %(department)s — open the worklist",
                count,
            ) % {"count": count, "department": department}
            subject = gettext("CareLoop: urgent alert in %(department)s") % {
                "department": department
            }
    return short, subject


def _department_name(dept: Department | None, language: str) -> str:
    if dept is None:
        with translation.override(language or "zh-hans"):
            return gettext("your department")
    if language.startswith("en") and dept.name_en:
        return dept.name_en
    return dept.name


def step_of(row: am.Notification) -> str:
    """The escalation step a row belongs to (its dedupe key is alert:<id>:<step>:…)."""
    parts = row.dedupe_key.split(":")
    return parts[2] if len(parts) > 2 else "raised"


def build_message(rows: Sequence[am.Notification], batch: _Batch) -> Message:
    """One message for rows to one person on one channel (several alerts: one text)."""
    first = rows[0]
    staff = batch.staff.get(first.staff_id)
    language = (getattr(staff, "language", "") or "zh-hans").lower()
    departments = {r.alert.department_id for r in rows}
    dept = batch.departments.get(departments.pop() or 0) if len(departments) == 1 else None
    department = _department_name(dept, language)
    short, subject = texts(
        step=step_of(first), language=language, department=department, count=len(rows)
    )
    link = settings.PUBLIC_URL.rstrip("/") + "/worklist/"
    body = short
    if first.channel == "email":
        # The e-mail adds what the rules saw (values, no name or record number) and the link.
        seen = "\n".join(f"- {r.alert.text(language)}" for r in rows)
        body = f"{short}\n\n{seen}\n\n{link}"
    cfg = batch.configs.get((first.alert.organisation_id, CHANNELS.get(first.channel, "")))
    template = str(cfg.config.get("template_alert") or "") if cfg is not None else ""
    # The provider's caller reference: the row's own key, or the rows' ids for a group.
    key = first.dedupe_key if len(rows) == 1 else "alerts:" + ",".join(str(r.pk) for r in rows)
    return Message(
        to=first.address,
        body=body,
        dedupe_key=key,
        language=language,
        subject=subject,
        template_code=template,
        params={"department": department, "count": str(len(rows))},
    )


# --- sending -----------------------------------------------------------------------------------


def _send(rows: Sequence[am.Notification], batch: _Batch) -> SendResult | ChannelError:
    first = rows[0]
    if first.channel not in CHANNELS:
        return PermanentError(
            f"unknown notification channel {first.channel!r}",
            code="unknown_channel",
            reason=PermanentReason.CONFIGURATION,
        )
    adapter = batch.adapter(first.alert.organisation_id, first.channel)
    if isinstance(adapter, ChannelError):
        return adapter
    try:
        return adapter.send(build_message(rows, batch))  # type: ignore[no-any-return]
    except ChannelError as exc:
        return exc
    except Exception as exc:  # a bug in an adapter must not stop the other rows
        log.exception(
            "notification %s: the %s channel failed unexpectedly", first.pk, first.channel
        )
        return ChannelError(type(exc).__name__)


def _record(row: am.Notification, result: SendResult | ChannelError, now: datetime) -> str:
    """Write a try's outcome (only while the row is still this claim's); the new status."""
    fields: dict[str, Any]
    if isinstance(result, SendResult):
        fields = {
            "status": SENT,
            "sent_at": now,
            "provider_id": result.provider_message_id[:100],
            "error": "",
        }
    else:
        code = f"{result.code}: " if result.code else ""
        error = f"{code}{result.detail}"[:300]
        if isinstance(result, PermanentError) or row.tries >= MAX_TRIES:
            fields = {"status": FAILED, "error": error}
        else:
            delay = plan_domain.backoff(
                row.tries,
                base=BACKOFF_BASE,
                cap=BACKOFF_CAP,
                rand=random.random(),  # noqa: S311 - jitter, not a secret
            )
            fields = {"status": PENDING, "sent_at": now + delay, "error": error}
    done = am.Notification.objects.filter(pk=row.pk, status=SENDING, tries=row.tries).update(
        **fields
    )
    return str(fields["status"]) if done else "lost"


def send_pending(limit: int = 100, *, now: datetime | None = None) -> int:
    """Send notifications that are due; returns how many the providers accepted."""
    fixed = now is not None  # a caller's clock (tests) also stamps the outcomes
    now = now or utc_now()
    ids = claim(now, limit)
    if not ids:
        return 0
    batch = _load(ids)
    # Rows for one person on one channel go out as one message ("3 urgent alerts in …").
    groups: dict[tuple[int, int, str, str, str], list[am.Notification]] = defaultdict(list)
    for row in batch.rows:
        key = (row.alert.organisation_id, row.staff_id, row.channel, row.address, step_of(row))
        groups[key].append(row)
    outcomes: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    sent = 0
    for (org_id, *_rest), rows in groups.items():
        result = _send(rows, batch)
        stamp = now if fixed else utc_now()
        for row in rows:
            status = _record(row, result, stamp)
            outcomes[org_id][status].append(row.pk)
            sent += int(status == SENT)
            if status == FAILED:
                log.warning("notification %s failed after %s tries: %s", row.pk, row.tries, result)
    for org_id, by_status in outcomes.items():
        audit.append(
            action="alert.notify",
            organisation_id=org_id,
            actor_name="system:notifications",
            object_type="alerts.notification",
            detail={status: ids[:500] for status, ids in by_status.items()},
        )
    return sent


def failed(organisation_id: int, limit: int = 20) -> list[am.Notification]:
    """The organisation's latest notifications that could not be sent (operations page)."""
    return list(
        am.Notification.objects.filter(alert__organisation_id=organisation_id, status=FAILED)
        .select_related("staff", "alert")
        .order_by("-created_at", "-id")[:limit]
    )

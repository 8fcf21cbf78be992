"""Reads of reminders: the operations figures and a patient's reminders, scoped to the actor.

The figures are aggregate queries in the database (conditional counts, grouped counts,
subqueries); nothing loops over occurrence or attempt rows in Python. An organisation admin
sees the whole organisation; everyone else sees the patients of their own departments, so a
department head's figures and dead letters are those of the department's patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Min, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils.translation import gettext_lazy as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation
from careloop.accounts.roles import Action
from careloop.careplans import domain
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound
from careloop.patients import selectors as patient_selectors
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

S = rm.Status
AO = rm.Attempt.Outcome

# Due and still waiting for the dispatcher: never sent, being sent, retrying, or undelivered
# and waiting for the next rung of the ladder. Sent and delivered reminders rest until the
# patient answers; acknowledged, dead, cancelled and skipped ones are final.
WAITING = (S.SCHEDULED, S.RETRYING, S.SENDING, S.FAILED)
UNSENT = (S.SCHEDULED, S.RETRYING, S.SENDING)
SUCCESS = (AO.ACCEPTED, AO.DELIVERED)
DEAD_LETTER_LIMIT = 50

# Why a reminder was given up (codes written by the dispatcher).
REASONS: dict[str, Any] = {
    "no_consent": _("no consent for any channel"),
    "no_address": _("no address for the channel"),
    "no_channel": _("no usable channel"),
    "undelivered": _("not delivered"),
    "retries_exhausted": _("gave up after repeated failures"),
    "invalid_address": _("invalid address"),
    "unsubscribed": _("the patient unsubscribed"),
    "quota": _("provider quota used up"),
    "rejected": _("rejected by the provider"),
    "configuration": _("channel not set up"),
}


def require_operate(actor: Actor) -> None:
    """Refuse (403, audited) anyone whose role does not run reminder operations."""
    patient_selectors.require(actor, Action.REMINDERS_OPERATE)


def _scoped(qs: QuerySet[Any], actor: Actor) -> QuerySet[Any]:
    """Rows of the actor's organisation, and of the actor's departments' patients."""
    qs = qs.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(patient__in=patient_selectors.visible_patients(actor).values("pk"))
    return qs


def occurrences(actor: Actor) -> QuerySet[rm.Occurrence]:
    return _scoped(rm.Occurrence.objects.all(), actor)


def attempts(actor: Actor) -> QuerySet[rm.Attempt]:
    return _scoped(rm.Attempt.objects.all(), actor)


# --- operations figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSuccess:
    """Send success of one channel: accepted or delivered attempts out of finished attempts."""

    channel: str
    attempts_24h: int
    ok_24h: int
    attempts_7d: int
    ok_7d: int

    @staticmethod
    def _rate(ok: int, total: int) -> float | None:
        return round(ok / total, 4) if total else None

    @property
    def rate_24h(self) -> float | None:
        return self._rate(self.ok_24h, self.attempts_24h)

    @property
    def rate_7d(self) -> float | None:
        return self._rate(self.ok_7d, self.attempts_7d)


@dataclass(frozen=True)
class Figures:
    now: datetime
    day: date
    queue_depth: int
    oldest_due_at: datetime | None
    dead_letters: int
    today: dict[str, int]
    channels: list[ChannelSuccess]
    in_doubt_resends_24h: int
    in_doubt_resends_7d: int
    paused: bool
    paused_reason: str
    time_zone: str = "UTC"

    @property
    def oldest_age_seconds(self) -> int | None:
        if self.oldest_due_at is None:
            return None
        return max(0, int((self.now - self.oldest_due_at).total_seconds()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "day": self.day.isoformat(),
            "time_zone": self.time_zone,
            "queue_depth": self.queue_depth,
            "oldest_due_at": self.oldest_due_at.isoformat() if self.oldest_due_at else None,
            "oldest_age_seconds": self.oldest_age_seconds,
            "dead_letters": self.dead_letters,
            "today": self.today,
            "channels": [
                {
                    "channel": c.channel,
                    "attempts_24h": c.attempts_24h,
                    "ok_24h": c.ok_24h,
                    "rate_24h": c.rate_24h,
                    "attempts_7d": c.attempts_7d,
                    "ok_7d": c.ok_7d,
                    "rate_7d": c.rate_7d,
                }
                for c in self.channels
            ],
            "in_doubt_resends_24h": self.in_doubt_resends_24h,
            "in_doubt_resends_7d": self.in_doubt_resends_7d,
            "dispatch_paused": self.paused,
            "paused_reason": self.paused_reason,
        }


def local_day(time_zone: str, now: datetime) -> tuple[date, datetime, datetime]:
    """Today in a time zone, and the UTC instants it starts and ends."""
    tz = domain.zone(time_zone)
    today = domain.local_of(now, tz).date()
    start = domain.to_utc(datetime.combine(today, time(0, 0)), tz)
    end = domain.to_utc(datetime.combine(today + timedelta(days=1), time(0, 0)), tz)
    return today, start, end


def figures(actor: Actor, *, now: datetime | None = None) -> Figures:
    """Queue depth, oldest waiting reminder, today's statuses, dead letters, channel success."""
    require_operate(actor)
    now = now or utc_now()
    zone_name = (
        Organisation.objects.filter(pk=actor.organisation_id or 0)
        .values_list("time_zone", flat=True)
        .first()
    ) or "UTC"
    today, start, end = local_day(zone_name, now)
    due_now = Q(due_at__lte=now)
    is_today = Q(due_at__gte=start, due_at__lt=end)
    counts: dict[str, Any] = {
        "queue": Count("id", filter=due_now & Q(status__in=WAITING)),
        "oldest": Min("due_at", filter=due_now & Q(status__in=UNSENT)),
        "dead": Count("id", filter=Q(status=S.DEAD)),
    }
    for status in S.values:
        counts[f"today_{status}"] = Count("id", filter=is_today & Q(status=status))
    occ = occurrences(actor).aggregate(**counts)

    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    recent = Q(started_at__gte=day_ago)
    ok = Q(outcome__in=SUCCESS)
    finished = attempts(actor).filter(started_at__gte=week_ago).exclude(outcome=AO.PENDING)
    per_channel = (
        finished.values("channel")
        .annotate(
            attempts_24h=Count("id", filter=recent),
            ok_24h=Count("id", filter=recent & ok),
            attempts_7d=Count("id"),
            ok_7d=Count("id", filter=ok),
        )
        .order_by("channel")
    )
    resends = finished.filter(in_doubt=True, outcome=AO.SUPERSEDED).aggregate(
        day=Count("id", filter=recent), week=Count("id")
    )
    settings = reminder_services.settings_for(actor.organisation_id or 0)
    return Figures(
        now=now,
        day=today,
        time_zone=zone_name,
        queue_depth=occ["queue"],
        oldest_due_at=occ["oldest"],
        dead_letters=occ["dead"],
        today={status: occ[f"today_{status}"] for status in S.values},
        channels=[ChannelSuccess(**row) for row in per_channel],
        in_doubt_resends_24h=resends["day"],
        in_doubt_resends_7d=resends["week"],
        paused=settings.dispatch_paused,
        paused_reason=settings.paused_reason,
    )


def _last_attempt(name: str) -> Subquery:
    latest = rm.Attempt.objects.filter(occurrence_id=OuterRef("pk")).order_by("-started_at", "-id")
    return Subquery(latest.values(name)[:1])


def dead_letters(actor: Actor, *, limit: int = DEAD_LETTER_LIMIT) -> list[rm.Occurrence]:
    """The newest dead letters in scope, each with its last attempt's channel and error."""
    require_operate(actor)
    qs = (
        occurrences(actor)
        .filter(status=S.DEAD)
        .select_related("patient")
        .annotate(
            last_channel=_last_attempt("channel"),
            last_error=_last_attempt("error_code"),
            last_detail=_last_attempt("detail"),
            last_attempt_at=_last_attempt("started_at"),
        )
        .order_by("-updated_at", "-id")
    )
    return list(qs[: max(1, min(limit, 200))])


def in_scope(actor: Actor, occurrence_id: int) -> rm.Occurrence:
    """One occurrence of a patient in the actor's scope (404 otherwise, audited as denied)."""
    found = (
        occurrences(actor)
        .filter(pk=occurrence_id)
        .select_related("patient")
        .annotate(
            last_channel=_last_attempt("channel"),
            last_error=_last_attempt("error_code"),
            last_detail=_last_attempt("detail"),
        )
        .first()
    )
    if found is None:
        _deny(actor, occurrence_id)
        raise NotFound()
    return found


def _deny(actor: Actor, occurrence_id: int) -> None:
    from careloop.audit import services as audit

    patient_id = (
        rm.Occurrence.objects.filter(pk=occurrence_id, organisation_id=actor.organisation_id or 0)
        .values_list("patient_id", flat=True)
        .first()
    )
    audit.record_denied(
        actor,
        "reminder.read",
        patient_id=patient_id,
        object_type="reminders.occurrence",
        object_id=occurrence_id,
        detail={"reason": "scope"},
    )


# --- a patient's reminders ---------------------------------------------------------------------


def occurrence(actor: Actor, occurrence_id: int, action: Action) -> rm.Occurrence:
    """An occurrence of a patient the actor may see, after the role check (403) for ``action``."""
    patient_selectors.require(actor, action)
    found = (
        rm.Occurrence.objects.filter(pk=occurrence_id, organisation_id=actor.organisation_id or 0)
        .select_related("patient")
        .first()
    )
    if found is None:
        _deny(actor, occurrence_id)
        raise NotFound()
    patient_selectors.require(actor, Action.PATIENT_VIEW, patient_id=found.patient_id)
    patient_selectors.get_patient(actor, found.patient_id, audit_read=False)
    return found


def patient_occurrences(
    patient_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str = "",
) -> QuerySet[rm.Occurrence]:
    """One patient's reminders (the caller has checked scope), earliest first, with attempts."""
    qs = rm.Occurrence.objects.filter(patient_id=patient_id).prefetch_related(
        Prefetch("attempts", queryset=rm.Attempt.objects.order_by("started_at", "id"))
    )
    if start is not None:
        qs = qs.filter(due_at__gte=start)
    if end is not None:
        qs = qs.filter(due_at__lt=end)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("due_at", "id")


def intake_history(patient_ids: list[int]) -> list[tuple[int, Any, str, int]]:
    """(patient, time, status, id) of every dose answer, for the rule engine (system use)."""
    return list(
        rm.IntakeEvent.objects.filter(patient_id__in=patient_ids).values_list(
            "patient_id", "recorded_at", "status", "id"
        )
    )


def intake_patients(organisation_id: int) -> list[int]:
    return list(
        rm.IntakeEvent.objects.filter(organisation_id=organisation_id)
        .values_list("patient_id", flat=True)
        .distinct()
    )


def unanswered_doses(*, before: datetime, since: datetime) -> list[tuple[int, int, int, Any, str]]:
    """(occurrence, organisation, patient, due, zone) of dose reminders due in [since, before)
    that the patient never answered (system use: the missed-dose sweep)."""
    return list(
        rm.Occurrence.objects.filter(kind="medication", due_at__gte=since, due_at__lt=before)
        .exclude(status__in=[S.ACKNOWLEDGED, S.CANCELLED, S.SKIPPED])
        .values_list("pk", "organisation_id", "patient_id", "due_at", "time_zone")
    )

"""Building reminders directly for the send-time tests (patient-local Asia/Shanghai, UTC+8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from careloop.careplans import domain
from careloop.reminders import links
from careloop.reminders import models as rm
from careloop.sendtime import models as m

SHANGHAI = domain.zone("Asia/Shanghai")


def local(day: date, hh: int, mm: int = 0) -> datetime:
    """The UTC instant of a Shanghai wall time."""
    return domain.to_utc(datetime(day.year, day.month, day.day, hh, mm), SHANGHAI)  # noqa: DTZ001


def occurrence(
    patient: Any,
    day: date,
    hh: int,
    mm: int = 0,
    *,
    kind: str = "measurement",
    activity: str = "bp",
    channels: tuple[str, ...] = ("outbox",),
    **fields: Any,
) -> rm.Occurrence:
    due = local(day, hh, mm)
    key = f"t:{patient.pk}:{activity}:{day.isoformat()}T{hh:02d}:{mm:02d}"
    payload = {"channels": list(channels), **fields.pop("payload", {})}
    return rm.Occurrence.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        activity_code=activity,
        kind=kind,
        source_key=key,
        local_due=f"{day.isoformat()}T{hh:02d}:{mm:02d}",
        time_zone="Asia/Shanghai",
        due_at=due,
        wake_at=due,
        link_digest=links.digest(links.token_for(key)),
        payload=payload,
        **fields,
    )


def settings(org: Any, **fields: Any) -> m.Settings:
    obj, _ = m.Settings.objects.update_or_create(organisation=org, defaults=fields)
    return obj


def assign(patient: Any, arm: str) -> None:
    m.Assignment.objects.update_or_create(
        patient=patient, defaults={"organisation_id": patient.organisation_id, "arm": arm}
    )


def send(occ: rm.Occurrence, at: datetime, channel: str = "outbox") -> rm.Attempt:
    """Record an accepted send of the reminder at ``at`` (as the dispatcher would)."""
    rm.Occurrence.objects.filter(pk=occ.pk).update(status=rm.Status.SENT, tries=1, wake_at=None)
    return rm.Attempt.objects.create(
        occurrence=occ,
        organisation_id=occ.organisation_id,
        patient_id=occ.patient_id,
        dedupe_key=f"o{occ.pk}:s0:{channel}",
        channel=channel,
        outcome=rm.Attempt.Outcome.ACCEPTED,
        started_at=at,
        finished_at=at,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]

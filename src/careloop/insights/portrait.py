"""The patient portrait (画像): how often the patient comes, what they live with, how they take
part in their care, and the tone of what they write to the care team.

Every figure is read with a fixed number of queries for the patient, whatever the amount of
history (no query per reminder, message or visit). Windows end at ``as_of``: now, or the end
of ``today`` in the patient's own time zone when a day is given.

Definitions
- Visits: days with an attended appointment (checked in or completed) or an encounter of the
  record (outpatient, inpatient, emergency, follow-up), counted once per day, over the last 12
  months. Per year: that count, annualised when the patient has been known for less than a
  year (from at least 90 days).
- Reminder acknowledgement: reminders due in the window that were sent (an attempt accepted or
  delivered by a provider) and that the patient answered themselves (a confirmation taken by a
  nurse on the phone does not count) ÷ reminders sent.
- Response time: the median time from the first sent message of a reminder to the patient's
  answer, over 90 days. Preferred hour: the local hour in which the patient answered most
  often (90 days; the earliest hour on a tie).
- Education: items the patient (or a caregiver) opened in 90 days, next to items delivered.
- Questionnaires: questionnaires sent in 90 days (not withdrawn) that were completed ÷ sent.
- Readings: readings the patient or their device sent in 30 days.
- Sentiment: the last 10 messages the patient wrote, each scored by careloop.insights.
  sentiment; the mean and its label; the trend compares the newer half with the older half
  (at least 4 messages; a change of 0.2 or more).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Max, OuterRef, Q, Subquery

from careloop.insights import sentiment
from careloop.kit.clock import utc_now
from careloop.patients import models as pm

STAFF_ACK = "staff_call"  # a confirmation taken by a nurse on the phone
SENT = ("accepted", "delivered")
MESSAGES = 10
TREND_STEP = 0.2
IMPROVING = "improving"
WORSENING = "worsening"
STEADY = "steady"


@dataclass(frozen=True)
class Rate:
    """done out of total; value is None when there is nothing to count."""

    done: int
    total: int

    @property
    def value(self) -> float | None:
        return self.done / self.total if self.total else None


@dataclass(frozen=True)
class Visits:
    count: int  # visit days in the last 12 months
    appointments: int  # attended appointments in the last 12 months
    encounters: int  # encounters of the record in the last 12 months
    no_shows: int  # appointments not attended in the last 12 months
    per_year: float
    annualised: bool  # per_year is extrapolated from less than a year
    last: date | None  # the latest visit ever
    by_month: list[tuple[date, int]]  # visit days per calendar month, oldest first (12)


@dataclass(frozen=True)
class ConditionFact:
    code: str
    display: str


@dataclass(frozen=True)
class Behaviour:
    ack_30d: Rate
    ack_90d: Rate
    latency_hours: float | None
    preferred_hour: int | None
    answers_by_hour: list[int]  # the patient's answers per local hour (0–23), 90 days
    reads_90d: int
    delivered_90d: int
    questionnaires_90d: Rate
    readings_30d: int
    readings_by_kind: list[tuple[str, int]]  # most frequent first


@dataclass(frozen=True)
class Mood:
    at: datetime
    text: str
    score: float
    label: str


@dataclass(frozen=True)
class Sentiment:
    messages: list[Mood]  # newest first
    mean: float | None
    label: str
    trend: str  # improving / worsening / steady; "" with fewer than 4 messages


@dataclass(frozen=True)
class Portrait:
    patient_id: int
    as_of: datetime
    today: date
    time_zone: str
    visits: Visits
    conditions: list[ConditionFact]
    behaviour: Behaviour
    sentiment: Sentiment


def _zone(patient: pm.Patient) -> ZoneInfo:
    try:
        return ZoneInfo(patient.time_zone or "Asia/Shanghai")
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def _month_start(day: date, back: int) -> date:
    """The first day of the month ``back`` months before the month of ``day``."""
    months = day.year * 12 + (day.month - 1) - back
    return date(months // 12, months % 12 + 1, 1)


def _visits(patient: pm.Patient, today: date) -> Visits:
    from careloop.appointments import models as am

    since = today - timedelta(days=365)
    attended = (am.Appointment.Status.CHECKED_IN, am.Appointment.Status.COMPLETED)
    rows = list(
        am.Appointment.objects.filter(
            patient_id=patient.pk,
            local_date__gt=since,
            local_date__lte=today,
            status__in=[*attended, am.Appointment.Status.NO_SHOW],
        ).values_list("status", "local_date")
    )
    appointment_days = [d for s, d in rows if s in attended]
    no_shows = sum(1 for s, _d in rows if s == am.Appointment.Status.NO_SHOW)
    encounter_days = list(
        pm.Encounter.objects.filter(
            patient_id=patient.pk,
            deleted_at__isnull=True,
            admitted_on__gt=since,
            admitted_on__lte=today,
        ).values_list("admitted_on", flat=True)
    )
    last_appointment = am.Appointment.objects.filter(
        patient_id=patient.pk, status__in=attended, local_date__lte=today
    ).aggregate(last=Max("local_date"))["last"]
    last_encounter = pm.Encounter.objects.filter(
        patient_id=patient.pk, deleted_at__isnull=True, admitted_on__lte=today
    ).aggregate(last=Max("admitted_on"))["last"]
    days = set(appointment_days) | set(encounter_days)
    known_since = patient.registered_on or patient.created_at.date()
    known = (today - known_since).days + 1
    annualised = known < 365
    basis = max(90, min(365, known))
    per_year = len(days) * 365 / basis
    months = [_month_start(today, back) for back in range(11, -1, -1)]
    per_month = Counter(date(d.year, d.month, 1) for d in days)
    lasts = [d for d in (last_appointment, last_encounter) if d is not None]
    return Visits(
        count=len(days),
        appointments=len(appointment_days),
        encounters=len(encounter_days),
        no_shows=no_shows,
        per_year=round(per_year, 1),
        annualised=annualised,
        last=max(lasts) if lasts else None,
        by_month=[(m, per_month.get(m, 0)) for m in months],
    )


def _conditions(patient: pm.Patient) -> list[ConditionFact]:
    rows = pm.Condition.objects.filter(
        patient_id=patient.pk, deleted_at__isnull=True, status=pm.Condition.Status.ACTIVE
    ).order_by("icd10_code", "id")
    return [ConditionFact(code=c.icd10_code, display=c.display or c.icd10_code) for c in rows]


def _behaviour(patient: pm.Patient, as_of: datetime, zone: ZoneInfo) -> Behaviour:
    from careloop.education import models as em
    from careloop.observations import models as om
    from careloop.questionnaires import models as qm
    from careloop.reminders import models as rm

    d30 = as_of - timedelta(days=30)
    d90 = as_of - timedelta(days=90)
    first_sent = (
        rm.Attempt.objects.filter(occurrence_id=OuterRef("pk"), outcome__in=SENT)
        .order_by("started_at", "id")
        .values("started_at")[:1]
    )
    reminders = list(
        rm.Occurrence.objects.filter(patient_id=patient.pk, due_at__gte=d90, due_at__lt=as_of)
        .annotate(first_sent=Subquery(first_sent))
        .filter(first_sent__isnull=False)
        .values_list("due_at", "acknowledged_at", "ack_source", "first_sent")
    )
    sent_30 = acked_30 = acked_90 = 0
    latencies: list[float] = []
    hours = [0] * 24
    for due_at, acked_at, source, sent_at in reminders:
        recent = due_at >= d30
        sent_30 += recent
        if acked_at is None or acked_at >= as_of or source == STAFF_ACK:
            continue  # not answered (yet), or answered by a nurse on the patient's behalf
        acked_90 += 1
        acked_30 += recent
        latencies.append(max(0.0, (acked_at - sent_at).total_seconds() / 3600))
        hours[acked_at.astimezone(zone).hour] += 1
    preferred = max(range(24), key=lambda h: (hours[h], -h)) if any(hours) else None

    reads = (
        em.ContentRead.objects.filter(patient_id=patient.pk, at__gte=d90, at__lt=as_of)
        .values("item_id")
        .distinct()
        .count()
    )
    delivered = em.Delivery.objects.filter(
        patient_id=patient.pk, delivered_at__gte=d90, delivered_at__lt=as_of
    ).count()
    completed = qm.Assignment.Status.COMPLETED
    answered = (
        qm.Assignment.objects.filter(
            patient_id=patient.pk, created_at__gte=d90, created_at__lt=as_of
        )
        .exclude(status=qm.Assignment.Status.CANCELLED)
        .aggregate(total=Count("id"), done=Count("id", filter=Q(status=completed)))
    )
    readings = list(
        om.Observation.objects.filter(
            patient_id=patient.pk,
            source__in=[om.Source.PATIENT, om.Source.DEVICE],
            effective_at__gte=d30,
            effective_at__lt=as_of,
        )
        .values("kind")
        .annotate(n=Count("id"))
        .order_by("-n", "kind")
        .values_list("kind", "n")
    )
    return Behaviour(
        ack_30d=Rate(acked_30, sent_30),
        ack_90d=Rate(acked_90, len(reminders)),
        latency_hours=round(statistics.median(latencies), 1) if latencies else None,
        preferred_hour=preferred,
        answers_by_hour=hours,
        reads_90d=reads,
        delivered_90d=delivered,
        questionnaires_90d=Rate(answered["done"] or 0, answered["total"] or 0),
        readings_30d=sum(n for _k, n in readings),
        readings_by_kind=[(k, n) for k, n in readings],
    )


def trend_of(chronological: list[float]) -> str:
    """improving / worsening / steady from the newer half against the older half; "" when
    there are fewer than 4 scores."""
    if len(chronological) < 4:
        return ""
    half = len(chronological) // 2
    older = statistics.fmean(chronological[:half])
    newer = statistics.fmean(chronological[-half:])
    change = newer - older
    if change >= TREND_STEP:
        return IMPROVING
    if change <= -TREND_STEP:
        return WORSENING
    return STEADY


def _sentiment(patient: pm.Patient, as_of: datetime) -> Sentiment:
    from careloop.messaging import models as mm

    rows = list(
        mm.Message.objects.filter(
            thread__patient_id=patient.pk,
            author_kind=mm.Message.Author.PATIENT,
            created_at__lt=as_of,
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", "body")[:MESSAGES]
    )
    values = sentiment.scores([body for _at, body in rows])
    moods = [
        Mood(at=at, text=body, score=v, label=sentiment.label(v))
        for (at, body), v in zip(rows, values, strict=True)
    ]
    mean = round(statistics.fmean(values), 3) if values else None
    return Sentiment(
        messages=moods,
        mean=mean,
        label=sentiment.label(mean),
        trend=trend_of(list(reversed(values))),
    )


def portrait(patient: pm.Patient, today: date | None = None) -> Portrait:
    """The portrait of one patient as of now (or as of the end of ``today``, patient-local)."""
    zone = _zone(patient)
    if today is None:
        as_of = utc_now()
        today = as_of.astimezone(zone).date()
    else:
        as_of = datetime.combine(today + timedelta(days=1), time(0, 0), tzinfo=zone)
    return Portrait(
        patient_id=patient.pk,
        as_of=as_of,
        today=today,
        time_zone=str(zone),
        visits=_visits(patient, today),
        conditions=_conditions(patient),
        behaviour=_behaviour(patient, as_of, zone),
        sentiment=_sentiment(patient, as_of),
    )

"""A small hand-made history with signal for the risk model's tests.

Patients get one medication reminder a day (sent by SMS a minute after it is due) and answer it
or not; some upload blood pressure readings. Three kinds of patient:

- steady: acknowledge about 90% of reminders within an hour or two, read often;
- poor: acknowledge about a third, slowly, skip doses because they forgot or for the cost;
- decliners: steady until a day of their own, then answer ever fewer reminders, ever later,
  read less and finally fall silent.

Rows are bulk-inserted with explicit times (nothing "now"), so the history is the same whatever
the time of day the tests run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.accounts.models import Department, Organisation
from careloop.kit.clock import utc_now
from careloop.observations.models import Observation
from careloop.patients import models as pm
from careloop.reminders import models as rm

_SHANGHAI = ZoneInfo("Asia/Shanghai")


def midnight(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class History:
    organisation: Organisation
    start: datetime
    end: datetime
    patients: list[pm.Patient] = field(default_factory=list)
    kinds: dict[int, str] = field(default_factory=dict)
    decline_day: dict[int, int] = field(default_factory=dict)


def _probability(kind: str, day: int, decline: int) -> float:
    if kind == "steady":
        return 0.9
    if kind == "poor":
        return 0.35
    if day < decline:
        return 0.9
    return max(0.0, 0.9 - 0.04 * (day - decline))


def build(
    organisation: Organisation,
    department: Department,
    *,
    patients: int = 60,
    days: int = 110,
    seed: int = 7,
    end: datetime | None = None,
    shares: tuple[float, float] = (0.5, 0.2),
) -> History:
    """`patients` patients over `days` days ending at `end` (default: last midnight, UTC).
    `shares` are the shares of steady and poor patients; the rest decline."""
    rng = random.Random(seed)
    end = end or midnight(utc_now())
    start = end - timedelta(days=days)
    history = History(organisation=organisation, start=start, end=end)
    base = pm.Patient.objects.count()
    rows = []
    for i in range(patients):
        born = date(1940 + rng.randrange(45), 1 + rng.randrange(12), 1 + rng.randrange(28))
        rows.append(
            pm.Patient(
                organisation=organisation,
                name=f"风险{base + i}",
                sex=rng.choice(["male", "female"]),
                date_of_birth=born,
                time_zone="Asia/Shanghai",
                registered_on=start.date(),
            )
        )
    made = pm.Patient.objects.bulk_create(rows)
    pm.PatientDepartment.objects.bulk_create(
        [pm.PatientDepartment(patient=p, department=department, since=start.date()) for p in made]
    )
    conditions = [
        pm.Condition(organisation=organisation, patient=p, icd10_code="I10", display="高血压")
        for p in made
        if rng.random() < 0.7
    ]
    pm.Condition.objects.bulk_create(conditions)
    pm.Condition.objects.filter(patient__in=made).update(created_at=start)
    steady, poor = shares
    for p in made:
        u = rng.random()
        kind = "steady" if u < steady else "poor" if u < steady + poor else "decliner"
        history.kinds[p.pk] = kind
        history.decline_day[p.pk] = rng.randrange(25, days - 5) if kind == "decliner" else days
    history.patients = made
    _reminders(history, rng, days)
    return history


def _reminders(history: History, rng: random.Random, days: int) -> None:
    org = history.organisation
    occurrences: list[rm.Occurrence] = []
    readings: list[Observation] = []
    skips: list[dict[str, Any]] = []
    for p in history.patients:
        kind = history.kinds[p.pk]
        decline = history.decline_day[p.pk]
        for day in range(days):
            due = history.start + timedelta(days=day)  # 08:00 in Shanghai
            p_ack = _probability(kind, day, decline)
            late = max(0, day - decline) if kind == "decliner" else 0
            latency = (
                rng.uniform(0.1, 2.0) if kind == "steady" else rng.uniform(1.0, 10.0)
            ) + 0.3 * late
            acked = rng.random() < p_ack
            local = due.astimezone(_SHANGHAI)
            occurrences.append(
                rm.Occurrence(
                    organisation=org,
                    patient=p,
                    activity_code="med",
                    kind="medication",
                    source_key=f"risk-test:{p.pk}:{day}",
                    local_due=local.strftime("%Y-%m-%dT%H:%M"),
                    time_zone="Asia/Shanghai",
                    due_at=due,
                    status="acknowledged" if acked else "delivered",
                    link_digest=f"{p.pk:08d}{day:04d}",
                    acknowledged_at=due + timedelta(minutes=1, hours=latency) if acked else None,
                    created_at=due - timedelta(days=7),
                    updated_at=due,
                )
            )
            if not acked and kind == "poor" and rng.random() < 0.5:
                skips.append(
                    {
                        "patient": p,
                        "at": due + timedelta(hours=3),
                        "reason": rng.choice(["forgot", "cost"]),
                    }
                )
            p_read = 0.6 if kind != "poor" else 0.25
            if kind == "decliner" and day >= decline:
                p_read = max(0.0, 0.6 - 0.05 * (day - decline))
            if rng.random() < p_read:
                at = due + timedelta(hours=rng.uniform(0, 12))
                readings.append(
                    Observation(
                        organisation=org,
                        patient=p,
                        kind="bp",
                        code="85354-9",
                        value=round(rng.gauss(150 if kind == "poor" else 135, 10)),
                        value2=round(rng.gauss(88, 6)),
                        unit="mm[Hg]",
                        source="patient",
                        effective_at=at,
                        time_zone="Asia/Shanghai",
                        local_day=at.astimezone(_SHANGHAI).date().toordinal(),
                        local_hour=at.astimezone(_SHANGHAI).hour,
                        created_at=at + timedelta(minutes=2),
                    )
                )
    made = rm.Occurrence.objects.bulk_create(occurrences, batch_size=2000)
    rm.Attempt.objects.bulk_create(
        [
            rm.Attempt(
                occurrence=o,
                organisation=org,
                patient=o.patient,
                dedupe_key=f"{o.pk}:0:sms",
                channel="sms",
                provider="fake",
                outcome=rm.Attempt.Outcome.DELIVERED,
                started_at=o.due_at + timedelta(minutes=1),
                finished_at=o.due_at + timedelta(minutes=1),
                delivered_at=o.due_at + timedelta(minutes=2),
            )
            for o in made
        ],
        batch_size=2000,
    )
    Observation.objects.bulk_create(readings, batch_size=2000)
    rm.IntakeEvent.objects.bulk_create(
        [
            rm.IntakeEvent(
                organisation=org,
                patient=s["patient"],
                status="skipped",
                reason=s["reason"],
                scheduled_at=s["at"],
                recorded_at=s["at"],
                source="sms",
            )
            for s in skips
        ],
        batch_size=2000,
    )


# --- single rows for hand-checked tests ---------------------------------------------------------

_counter = {"n": 0}


def reminder(
    patient: pm.Patient,
    due: datetime,
    *,
    ack_after_hours: float | None = None,
    sent: bool = True,
    kind: str = "medication",
) -> rm.Occurrence:
    """One reminder due at `due`, sent at `due` (unless `sent` is false) and acknowledged
    `ack_after_hours` later (or not at all)."""
    _counter["n"] += 1
    n = _counter["n"]
    acked = None if ack_after_hours is None else due + timedelta(hours=ack_after_hours)
    occurrence = rm.Occurrence.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind=kind,
        source_key=f"risk-hand:{patient.pk}:{n}",
        local_due=due.astimezone(_SHANGHAI).strftime("%Y-%m-%dT%H:%M"),
        time_zone="Asia/Shanghai",
        due_at=due,
        status="acknowledged" if acked else "delivered",
        link_digest=f"hand{n:012d}",
        acknowledged_at=acked,
        created_at=due - timedelta(days=7),
        updated_at=due,
    )
    rm.Attempt.objects.create(
        occurrence=occurrence,
        organisation_id=patient.organisation_id,
        patient=patient,
        dedupe_key=f"{occurrence.pk}:0:sms",
        channel="sms",
        outcome=rm.Attempt.Outcome.DELIVERED if sent else rm.Attempt.Outcome.PERMANENT,
        started_at=due,
        finished_at=due,
    )
    return occurrence


def reading(
    patient: pm.Patient, at: datetime, sbp: float, *, uploaded: datetime | None = None
) -> Observation:
    local = at.astimezone(_SHANGHAI)
    return Observation.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind="bp",
        code="85354-9",
        value=sbp,
        value2=85,
        unit="mm[Hg]",
        source="patient",
        effective_at=at,
        time_zone="Asia/Shanghai",
        local_day=local.date().toordinal(),
        local_hour=local.hour,
        created_at=uploaded or at,
    )


def patient(organisation: Organisation, department: Department, **extra: Any) -> pm.Patient:
    _counter["n"] += 1
    values: dict[str, Any] = {
        "name": f"手工{_counter['n']}",
        "sex": "female",
        "date_of_birth": date(1950, 6, 1),
        "registered_on": date(2020, 1, 1),
        **extra,
    }
    made = pm.Patient.objects.create(organisation=organisation, **values)
    pm.PatientDepartment.objects.create(patient=made, department=department)
    return made

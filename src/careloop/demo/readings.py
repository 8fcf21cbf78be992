"""90 days of home readings for the demo patients, and the on-call rota.

The readings go in through the ingest service as the organisation's device gateway (no staff
actor), exactly as a blood-pressure monitor or a glucose meter would send them, so the rules
raise the demo's alerts on their own: most patients are controlled; a few are not (public-health
follow-up and referral tasks, a rising trend), one diabetic had a low and one a very high
glucose yesterday, one wore a watch that saw three nights of high heart rate, and one
hypertensive had a crisis three weeks ago that settled the next day (an auto-resolved alert in
their history). Nothing urgent stays open in cardiology, so a new crisis reading shows first in
doctor.cardiology's worklist.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.accounts.models import Department, Organisation, Staff
from careloop.alerts import models as alert_models
from careloop.kit.clock import utc_now
from careloop.observations import services as observation_services
from careloop.observations.services import IngestReport
from careloop.patients import models as pm

DAYS = 90
VISIT_DAYS = (DAYS - 45, DAYS - 10)  # clinic visits, as days of the 90
ZONE = ZoneInfo("Asia/Shanghai")
# Demo on-call phones: the department heads', reached through the demo's local fake SMS.
ON_CALL_PHONES = {"cardiology": "13800000101", "endocrinology": "13800000102"}


def on_call_rota(org: Organisation) -> int:
    """Each department's head is on call for the coming year (by SMS, through the demo's
    fake provider)."""
    now = utc_now()
    made = 0
    for dept in Department.objects.filter(organisation=org):
        head = Staff.objects.filter(username=f"head.{dept.code}", organisation=org).first()
        if head is None:
            continue
        alert_models.OnCall.objects.create(
            department=dept,
            staff=head,
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=365),
            phone=ON_CALL_PHONES.get(dept.code, ""),
        )
        made += 1
    return made


def _at(day: datetime, hh: int, mm: int) -> datetime:
    return datetime.combine(day.date(), time(hh, mm), tzinfo=ZONE).astimezone(UTC)


class _Patient:
    """One demo patient's course: which readings they take and how well controlled."""

    def __init__(self, rng: random.Random, pid: int, codes: set[str]) -> None:
        self.pid = pid
        self.hypertensive = any(c.startswith(("I10", "I25")) for c in codes)
        self.heart = any(c.startswith("I25") for c in codes)
        self.diabetic = any(c.startswith("E11") for c in codes)
        self.bp_course = rng.choices(["controlled", "uncontrolled", "worsening"], [94, 4, 2])[0]
        self.glucose_course = rng.choices(["controlled", "uncontrolled"], [95, 5])[0]
        self.pulse = rng.random() < 0.5  # the monitor also sends the pulse
        self.evenings = rng.uniform(0.2, 0.6)  # how often they also measure in the evening
        self.device = rng.random() < 0.8  # a connected meter, else typed in the app
        self.weight = rng.uniform(55, 85)
        self.event = ""  # crisis | low | very_high | nights


def _courses(rng: random.Random, org: Organisation) -> list[_Patient]:
    codes: dict[int, set[str]] = defaultdict(set)
    for pid, code in pm.Condition.objects.filter(
        organisation=org, deleted_at__isnull=True
    ).values_list("patient_id", "icd10_code"):
        codes[pid].add(code)
    links: dict[int, str] = {}
    for pid, dept in (
        pm.PatientDepartment.objects.filter(patient__organisation=org)
        .order_by("id")
        .values_list("patient_id", "department__code")
    ):
        links.setdefault(pid, dept)  # the first link routes the patient's alerts
    patients = [_Patient(rng, pid, codes[pid]) for pid in sorted(codes)]
    # The scripted events, each given to one suitable patient.
    cardiology = [p for p in patients if p.hypertensive and links.get(p.pid) == "cardiology"]
    endocrine = [p for p in patients if p.diabetic and links.get(p.pid) == "endocrinology"]
    for event, pool in (
        ("crisis", [p for p in cardiology if p.bp_course == "controlled"]),
        ("low", [p for p in endocrine if p.glucose_course == "controlled"]),
        ("very_high", [p for p in endocrine if p.glucose_course == "controlled"]),
        ("nights", [p for p in endocrine if not p.hypertensive]),
    ):
        free = [p for p in pool if not p.event]
        if free:
            rng.choice(free).event = event
    return patients


def _bp(rng: random.Random, p: _Patient, day: int, morning: bool = True) -> tuple[int, int]:
    """Systolic and diastolic on day ``day`` (0 = 89 days ago, 89 = today)."""
    sys, dia = round(rng.gauss(126, 5)), round(rng.gauss(78, 4))
    sys, dia = max(108, min(sys, 136)), max(64, min(dia, 86))
    if p.bp_course == "uncontrolled":
        sys, dia = rng.randint(146, 162), rng.randint(88, 98)
    elif p.bp_course == "worsening" and day >= DAYS - 14:
        sys, dia = rng.randint(142, 156) + (day - DAYS + 14), rng.randint(86, 96)
    if p.event == "crisis" and day == DAYS - 21 and morning:
        sys, dia = 186, 116
    return sys, min(dia, sys - 20)


def _fasting(rng: random.Random, p: _Patient, day: int) -> float:
    mmol = rng.uniform(5.2, 6.8)
    if p.glucose_course == "uncontrolled":
        mmol = rng.uniform(7.6, 10.8)
    if p.event == "low" and day == DAYS - 2:
        mmol = 3.3
    if p.event == "very_high" and day == DAYS - 2:
        mmol = 17.6
    return round(mmol, 1)


def _items(rng: random.Random, p: _Patient, first: datetime, now: datetime) -> Iterator[dict]:
    meter = f"meter-{p.pid}" if p.device else ""
    source = "device" if p.device else "patient"
    out: list[dict[str, Any]] = []

    def add(code: str, at: datetime, **values: Any) -> None:
        item = {"patient": p.pid, "source": source, "device": meter, "code": code}
        out.append({**item, "effective": at.isoformat(), **values})

    for day in range(DAYS):
        moment = first + timedelta(days=day)
        out.clear()
        morning = _at(moment, 7, rng.randint(0, 50))
        if p.hypertensive:
            sys, dia = _bp(rng, p, day)
            add("bp", morning, systolic=sys, diastolic=dia)
            if p.pulse:
                add("heart_rate", morning, value=rng.randint(60, 84))
            if rng.random() < p.evenings:
                sys, dia = _bp(rng, p, day, morning=False)
                evening = _at(moment, 20, rng.randint(0, 50))
                add("bp", evening, systolic=max(100, sys - 4), diastolic=max(60, dia - 2))
        if p.diabetic:
            fasting = _at(moment, 6, rng.randint(30, 59))
            add("glucose", fasting, context="fasting", value=_fasting(rng, p, day))
            if moment.weekday() in (2, 5):
                after = _at(moment, 14, rng.randint(0, 30))
                add("glucose", after, context="postprandial", value=round(rng.uniform(7, 10.5), 1))
        if p.event == "nights" and day >= DAYS - 31:
            # A watch: heart rate at 02:00, which belongs to the night before.
            rate = rng.randint(104, 116) if day >= DAYS - 3 else rng.randint(56, 68)
            add(
                "heart_rate",
                _at(moment, 2, 0),
                value=rate,
                device=f"watch-{p.pid}",
                source="device",
            )
        if day in VISIT_DAYS:
            # Measured at a clinic visit and sent by the hospital system: the readings the
            # public-health follow-up rules judge (uncontrolled: a follow-up, then a referral).
            clinic = _at(moment, 10, rng.randint(0, 50))
            if p.hypertensive:
                sys, dia = _bp(rng, p, day, morning=False)
                add("bp", clinic, systolic=sys, diastolic=dia, source="his", device="")
            if p.diabetic:
                value = _fasting(rng, p, day)
                add("glucose", clinic, context="fasting", value=value, source="his", device="")
        if (p.heart or p.diabetic) and moment.weekday() == 0:
            p.weight += rng.uniform(-0.3, 0.3)
            add("weight", morning, value=round(p.weight, 1))
        for entry in out:
            if datetime.fromisoformat(entry["effective"]) <= now:
                yield entry


def add_readings(org: Organisation, seed: int) -> IngestReport:
    """Send every demo patient's last 90 days of readings through the ingest service."""
    rng = random.Random(seed * 7919 + 90)  # noqa: S311 - demo data, not secrets
    now = utc_now()
    first = now.astimezone(ZONE) - timedelta(days=DAYS - 1)
    patients = _courses(rng, org)

    def stream() -> Iterator[dict]:
        # Patient by patient, oldest first: each patient's rules state is built once and then
        # fed, as a device gateway sending each patient's backlog would.
        for p in patients:
            yield from _items(rng, p, first, now)

    return observation_services.ingest(
        None, stream(), organisation_id=org.pk, source="device", origin="demo", chunk_size=2000
    )


def missed_follow_ups(org: Organisation, seed: int, share: float = 0.12) -> int:
    """A few patients missed a plan revisit after their last visit and never answered its
    reminder: the overdue list and the worklist have someone to call."""
    from careloop.reminders import models as reminder_models
    from careloop.reminders import services as reminder_services

    rng = random.Random(seed + 17)
    today = utc_now().astimezone(ZONE).date()
    last_visits: defaultdict[int, date] = defaultdict(lambda: today - timedelta(days=400))
    for pid, day in pm.Encounter.objects.filter(patient__organisation=org).values_list(
        "patient_id", "admitted_on"
    ):
        last_visits[pid] = max(last_visits[pid], day)
    made = 0
    patients = pm.Patient.objects.filter(organisation=org, deceased_on__isnull=True).order_by("pk")
    for pid in patients.values_list("pk", flat=True):
        if rng.random() >= share:
            continue
        earliest = max(last_visits[pid] + timedelta(days=1), today - timedelta(days=80))
        latest = today - timedelta(days=5)
        if earliest > latest:
            continue
        day = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
        due = datetime.combine(day, time(9, 0), tzinfo=ZONE)
        occurrence = reminder_services.schedule_one(
            organisation_id=org.pk,
            patient_id=pid,
            kind="revisit",
            source_key=f"demo-missed-revisit:{pid}",
            due_at=due,
            time_zone="Asia/Shanghai",
            payload={"title": "按计划复诊", "title_en": "Planned revisit"},
        )
        # The reminder went out and nobody answered.
        reminder_models.Occurrence.objects.filter(pk=occurrence.pk).update(
            status="sent", wake_at=None
        )
        made += 1
    return made

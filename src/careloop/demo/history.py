"""Twelve months of history for the demo organisation, so that the analytics pages have a year
to show.

The demo's other steps describe the present: patients created today, 90 days of home readings,
today's worklist. This module gives the same patients a past: when they registered, the clinic
visits where staff measured their blood pressure and glucose, home readings from the months
before, the medicines handed over at the pharmacy, their answers to dose reminders, the
follow-up calls the nurses made, the alerts the rules raised and how fast they were handled,
admissions and readmissions, missed appointments and the calls that brought patients back, and
satisfaction surveys. The programme works: control, adherence and engagement improve over the
year.

It runs in two steps around the 90 days of home readings (build.py):

- ``add_clinical_history`` before them: the readings and dose answers of the past year, fed to
  the alert rules by the rule engine's own replay (so that a recompute agrees with what is
  stored), and the alerts those raised closed by the department's staff at believable times.
- ``add_history`` after every other step: the rest, written in bulk, then a few patients lost
  to follow-up and one or two who died.

Both steps derive every patient's course from the seed and the patient's rank (not its id), so
a seed always gives the same history.
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, models, transaction

from careloop.accounts.models import Organisation, Staff
from careloop.alerts import models as alert_models
from careloop.appointments import models as appointment_models
from careloop.kit.clock import utc_now
from careloop.observations import domain as observation_domain
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.reminders import links
from careloop.reminders import models as rm

YEAR = 365
RECENT = 90  # the days demo/readings.py covers with home readings
BATCH = 2000

# Drug classes adherence is measured by (the keys of analytics/pdc.py CLASSES), by the demo's
# medicine names.
DRUG_CLASSES = {
    "缬沙坦胶囊": "rasa",
    "氨氯地平片": "ccb",
    "美托洛尔缓释片": "beta_blockers",
    "阿托伐他汀钙片": "statins",
    "二甲双胍片": "diabetes",
    "格列美脲片": "diabetes",
    "阿卡波糖片": "diabetes",
}
DOSES_PER_DAY = {"qd": 1, "qn": 1, "bid": 2, "tid": 3, "qid": 4}
PROVIDERS = {"sms": "aliyun_sms", "voice": "aliyun_voice", "wechat": "wechat"}
# How readily patients answer a reminder, by channel and by the local hour it is sent.
CHANNEL_ANSWER = {"wechat": 1.0, "sms": 0.94, "voice": 0.86}
HOUR_ANSWER = {7: 0.97, 8: 1.0, 12: 0.92, 18: 0.98, 20: 0.95, 21: 0.88}
CLINIC_SLOTS = [time(8, 0), time(8, 30), time(9, 0), time(9, 30), time(10, 0), time(10, 30),
                time(11, 0), time(13, 30), time(14, 0), time(14, 30), time(15, 0),
                time(15, 30), time(16, 0)]  # fmt: skip
SKIP_REASONS = ["forgot", "forgot", "feeling_well", "side_effect", "ran_out", "other"]
RESOLVE = ["contacted_patient", "plan_adjusted", "medication_changed", "visit_booked",
           "advice_given", "advice_given", "no_action_needed"]  # fmt: skip
CALL_OUTCOMES = (["reached"] * 12 + ["no_answer"] * 4 + ["agreed_to_visit"] * 2
                 + ["remind_later", "wrong_number", "done"])  # fmt: skip


@dataclass
class Visit:
    day: date
    at: datetime  # UTC, when the clinic measured
    slot: datetime  # UTC, the appointment's start
    booked_on: date
    controlled_bp: bool
    controlled_glucose: bool
    after_missed: date | None = None  # the appointment missed before this visit
    called_on: date | None = None  # the call that brought the patient back


@dataclass
class Course:
    """One patient's year."""

    rank: int
    pid: int
    zone: ZoneInfo
    dept_id: int
    dept_code: str
    nurse_id: int
    doctor_id: int
    hypertensive: bool
    diabetic: bool
    registered_on: date
    adherence: float  # 0..1, drives control, refills and dose answers
    channel: str
    on_reminders: bool
    reminder_hour: int
    uploads_from: float  # 0..1: how early in the year the patient started sending readings
    bp_threshold: float  # 0..1: how much progress the patient's blood pressure needs
    glucose_threshold: float
    ltfu: bool = False
    dies_on: date | None = None
    visits: list[Visit] = field(default_factory=list)
    meds: list[tuple[int, str, str, date | None]] = field(default_factory=list)

    @property
    def active_until(self) -> date:
        """The last day the patient can have a visit, a reading or a refill."""
        return self.dies_on - timedelta(days=1) if self.dies_on else date.max


def _progress(day: date, today: date) -> float:
    """0 a year ago, 1 today: how far the programme has come."""
    return max(0.0, min(1.0, 1 - (today - day).days / YEAR))


def _control_chance(course: Course, day: date, today: date, base: float) -> float:
    return base + 0.45 * _progress(day, today) + 0.45 * (course.adherence - 0.8)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _weekday(day: date) -> date:
    """The clinic is open Monday to Friday."""
    return day + timedelta(days=(7 - day.weekday()) % 7) if day.weekday() >= 5 else day


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT rows (field attname → value; defaults fill the rest) in bulk, without model
    instances or reading back ids: the demo's volume is too large for bulk_create to stay
    quick."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    sqlite = connection.vendor == "sqlite"
    plan: list[tuple[str, Any, Any]] = []
    for f in fields:
        convert: Any = None
        if isinstance(f, models.DateTimeField) and sqlite:
            convert = _sqlite_instant
        elif isinstance(f, models.JSONField):
            convert = functools.partial(f.get_db_prep_save, connection=connection)
        plan.append((f.attname, f.get_default(), convert))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    values = [
        tuple(
            c(row.get(name, default)) if c else row.get(name, default) for name, default, c in plan
        )
        for row in rows
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(values), 5000):
            cursor.executemany(sql, values[start : start + 5000])


def _sqlite_instant(value: datetime | None) -> str | None:
    """How Django stores an aware instant in SQLite: naive UTC text."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


# --- every patient's course -------------------------------------------------------------------


def plan(org: Organisation, seed: int, today: date) -> list[Course]:
    """The deterministic course of every patient of the demo organisation."""
    patients = list(
        pm.Patient.objects.filter(organisation=org, merged_into__isnull=True)
        .order_by("pk")
        .values_list("pk", "time_zone", "preferred_channels")
    )
    codes: dict[int, set[str]] = defaultdict(set)
    for pid, code in pm.Condition.objects.filter(
        organisation=org, deleted_at__isnull=True
    ).values_list("patient_id", "icd10_code"):
        codes[pid].add(code)
    links_: dict[int, tuple[int, str]] = {}
    for pid, dept_id, code in (
        pm.PatientDepartment.objects.filter(patient__organisation=org)
        .order_by("id")
        .values_list("patient_id", "department_id", "department__code")
    ):
        links_.setdefault(pid, (dept_id, code))
    meds: dict[int, list[tuple[int, str, str, date | None]]] = defaultdict(list)
    for mid, pid, name, frequency, start in (
        pm.Medication.objects.filter(organisation=org, deleted_at__isnull=True)
        .order_by("pk")
        .values_list("pk", "patient_id", "name", "frequency", "start_date")
    ):
        meds[pid].append((mid, name, frequency, start))
    staff = dict(Staff.objects.filter(organisation=org).values_list("username", "pk"))
    courses: list[Course] = []
    for rank, (pid, zone_name, channels) in enumerate(patients):
        if pid not in links_:
            continue
        rng = random.Random(seed * 1_000_003 + rank * 7919 + 11)  # noqa: S311 - demo data
        dept_id, dept_code = links_[pid]
        roll = rng.random()
        if roll < 0.12:
            registered = today - timedelta(days=rng.randint(45, 85))
        elif roll < 0.3:
            registered = today - timedelta(days=rng.randint(120, 340))
        else:
            registered = today - timedelta(days=rng.randint(380, 1080))
        tier = rng.random()
        adherence = (
            rng.uniform(0.88, 0.99)
            if tier < 0.65
            else rng.uniform(0.72, 0.88)
            if tier < 0.9
            else rng.uniform(0.45, 0.72)
        )
        channel = (channels or ["sms"])[0]
        course = Course(
            rank=rank,
            pid=pid,
            zone=ZoneInfo(zone_name),
            dept_id=dept_id,
            dept_code=dept_code,
            nurse_id=staff[f"nurse.{dept_code}"],
            doctor_id=staff[f"doctor.{dept_code}"],
            hypertensive=any(c.startswith(("I10", "I25")) for c in codes[pid]),
            diabetic=any(c.startswith("E11") for c in codes[pid]),
            registered_on=registered,
            adherence=adherence,
            channel=channel if channel in PROVIDERS else "sms",
            on_reminders=rng.random() < 0.45,
            reminder_hour=rng.choice(list(HOUR_ANSWER)),
            uploads_from=rng.random(),
            bp_threshold=rng.random(),
            glucose_threshold=rng.random(),
            meds=meds.get(pid, []),
        )
        course.visits = _visits(rng, course, today)
        courses.append(course)
    _lost_and_dead(seed, courses, today)
    return courses


def _lost_and_dead(seed: int, courses: list[Course], today: date) -> None:
    """Candidates for loss to follow-up and death: patients registered long ago. Whether they
    end up so depends on their last 90 days (see `_settle`); their history already stops."""
    rng = random.Random(seed * 31 + 5)  # noqa: S311 - demo data
    old = [c for c in courses if (today - c.registered_on).days >= 420]
    rng.shuffle(old)
    wanted = max(2, len(courses) // 30)
    for course in old[:4]:
        course.dies_on = today - timedelta(days=rng.randint(60, 200))
        course.visits = [v for v in course.visits if v.day < course.dies_on]
    for course in old[4 : 4 + wanted * 2]:
        course.ltfu = True
        course.visits = []


def _visits(rng: random.Random, course: Course, today: date) -> list[Visit]:
    """Clinic visits every one to three months since registration (or a year ago), with now
    and then a missed appointment, a call, and the patient's return."""
    if not (course.hypertensive or course.diabetic):
        return []
    every = rng.choices([30, 45, 60, 90], [3, 3, 3, 1])[0]
    day = max(course.registered_on, today - timedelta(days=YEAR)) + timedelta(
        days=rng.randint(0, min(every, 40))
    )
    booked_on = day - timedelta(days=rng.randint(3, 20))
    out: list[Visit] = []
    after_missed: date | None = None
    called_on: date | None = None
    last = today - timedelta(days=7)
    while True:
        day = _weekday(day)
        if day > last:
            break
        t = _progress(day, today)
        slot_time = rng.choice(CLINIC_SLOTS)
        slot = _local(day, slot_time, course.zone)
        # Control comes with time: a patient stays controlled once the programme's progress
        # passes their own threshold, now and then a visit goes the other way.
        bp_ok = (course.bp_threshold < _control_chance(course, day, today, 0.42)) != (
            rng.random() < 0.08
        )
        glucose_ok = (course.glucose_threshold < _control_chance(course, day, today, 0.38)) != (
            rng.random() < 0.08
        )
        if day > today - timedelta(days=RECENT):
            # In the days the hospital system's readings cover (demo/readings.py, which come
            # in later), an uncontrolled staff reading would be judged by the public-health
            # rules against readings that arrive after it; the last months' control comes
            # from those readings instead.
            bp_ok = glucose_ok = True
        out.append(
            Visit(
                day=day,
                at=slot + timedelta(minutes=rng.randint(8, 25)),
                slot=slot,
                booked_on=booked_on,
                controlled_bp=bp_ok,
                controlled_glucose=glucose_ok,
                after_missed=after_missed,
                called_on=called_on,
            )
        )
        booked_on = day
        planned = day + timedelta(days=max(21, round(rng.gauss(every, every * 0.15))))
        after_missed = called_on = None
        if rng.random() < 0.16 - 0.08 * t:
            # The patient misses the appointment booked at this visit.
            after_missed = _weekday(planned)
            if rng.random() < 0.55 + 0.35 * t:
                called_on = after_missed + timedelta(days=rng.randint(2, 12))
                booked_on = called_on
                back = rng.randint(1, 12) if rng.random() < 0.65 else rng.randint(16, 45)
                planned = called_on + timedelta(days=back)
            else:
                booked_on = after_missed + timedelta(days=rng.randint(30, 90))
                planned = booked_on + timedelta(days=rng.randint(1, 10))
        day = planned
    return out


# --- step 1: readings, dose answers and the alerts they raised -----------------------------


def add_clinical_history(org: Organisation, seed: int, today: date) -> dict[str, int]:
    """Clinic and home readings of the past year and answers to dose reminders, fed to the
    rules; the alerts raised are then handled by the department's staff. Runs before the 90
    days of home readings (demo/readings.py), which continue the same rule state."""
    from careloop.alerts import evaluation

    courses = plan(org, seed, today)
    now = utc_now()
    made: dict[str, int] = {}
    with transaction.atomic():
        made["readings"] = _readings(org, seed, courses, today, now)
        made["dose_reminders"] = _dose_reminders(org, seed, courses, today, now)
        evaluation.recompute(org.pk, apply_missing=True)
        made["alerts"] = _handle_alerts(org, seed, now)
    return made


def _reading(
    org_id: int,
    course: Course,
    kind: str,
    at: datetime,
    value: float,
    value2: float | None = None,
    context: str = "",
    source: str = "staff",
    device: str = "",
    entered_by: int | None = None,
) -> dict[str, Any]:
    spec = observation_domain.KINDS[kind]
    local = at.astimezone(course.zone)
    if kind == "bp":
        original = f"{value:g}/{value2:g} mm[Hg]"
    else:
        original = f"{value:g} {spec.unit}"
    return dict(
        organisation_id=org_id,
        patient_id=course.pid,
        kind=kind,
        code=spec.loinc,
        value=value,
        value2=value2,
        unit=spec.unit,
        context=context,
        source=source,
        device_id=device,
        effective_at=at,
        time_zone=course.zone.key,
        local_day=local.date().toordinal(),
        local_hour=local.hour,
        original=original,
        created_at=at + timedelta(minutes=2),
        entered_by_id=entered_by,
    )


def _bp(rng: random.Random, controlled: bool, home: bool = False) -> tuple[float, float]:
    if controlled:
        sys, dia = rng.randint(116, 138), rng.randint(68, 88)
    else:
        sys, dia = rng.randint(142, 168), rng.randint(84, 102)
        if sys < 150 and dia < 90:
            dia = rng.randint(90, 98)
    if home:
        sys, dia = sys - rng.randint(0, 4), dia - rng.randint(0, 2)
    return float(sys), float(min(dia, sys - 25))


def _fasting(rng: random.Random, controlled: bool) -> float:
    return round(rng.uniform(5.0, 6.9) if controlled else rng.uniform(7.3, 12.6), 1)


def _readings(
    org: Organisation, seed: int, courses: list[Course], today: date, now: datetime
) -> int:
    rng = random.Random(seed * 7 + 101)  # noqa: S311 - demo data
    rows: list[dict[str, Any]] = []
    recent = today - timedelta(days=RECENT - 1)  # demo/readings.py sends from here
    for course in courses:
        last_a1c: date | None = None
        for visit in course.visits:
            by = course.nurse_id if rng.random() < 0.7 else course.doctor_id
            if course.hypertensive and rng.random() < 0.93:
                sys, dia = _bp(rng, visit.controlled_bp)
                rows.append(_reading(org.pk, course, "bp", visit.at, sys, dia, entered_by=by))
            if course.diabetic:
                value = _fasting(rng, visit.controlled_glucose)
                at = visit.at - timedelta(minutes=5)
                rows.append(
                    _reading(org.pk, course, "glucose", at, value, context="fasting", entered_by=by)
                )
                if last_a1c is None or (visit.day - last_a1c).days >= 80:
                    last_a1c = visit.day
                    a1c = round(
                        rng.uniform(5.9, 6.9)
                        if visit.controlled_glucose
                        else rng.uniform(7.1, 9.6),
                        1,
                    )
                    at = visit.at - timedelta(minutes=4)
                    rows.append(_reading(org.pk, course, "hba1c", at, a1c, entered_by=by))
        rows += _home_readings(rng, org.pk, course, today, recent)
    _insert(om.Observation, rows)
    _latest(org, rows)
    return len(rows)


def _latest(org: Organisation, rows: list[dict[str, Any]]) -> None:
    """The patients' newest reading of each kind, as the ingest service keeps it."""
    from careloop.observations import services as observation_services

    newest: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["patient_id"], row["kind"])
        if key not in newest or row["effective_at"] > newest[key]["effective_at"]:
            newest[key] = row
    readings = {
        key: observation_domain.Reading(
            patient_id=r["patient_id"],
            kind=r["kind"],
            code=r["code"],
            value=r["value"],
            value2=r["value2"],
            unit=r["unit"],
            context=r["context"],
            source=r["source"],
            device_id=r["device_id"],
            effective_at=r["effective_at"],
            time_zone=r["time_zone"],
            local_day=r["local_day"],
            local_hour=r["local_hour"],
            original=r["original"],
        )  # fmt: skip
        for key, r in newest.items()
    }
    observation_services._update_latest(org.pk, readings)


def _home_readings(
    rng: random.Random, org_id: int, course: Course, today: date, recent: date
) -> list[dict[str, Any]]:
    """A few home readings a week from the month the patient started sending them, until the
    90 days demo/readings.py covers; more patients send them as the year goes on."""
    if not (course.hypertensive or course.diabetic) or course.ltfu:
        return []
    first = max(course.registered_on, today - timedelta(days=YEAR))
    # Patients who started sending readings: 40 % a year ago, about 80 % three months ago.
    start = first + timedelta(days=round(max(0.0, course.uploads_from - 0.4) / 0.6 * 400))
    if start >= recent:
        return []
    meter = f"meter-{course.pid}" if course.uploads_from < 0.8 else ""
    source = "device" if meter else "patient"
    out: list[dict[str, Any]] = []
    day = start
    visits = course.visits
    while day < min(recent, course.active_until):
        per_week = 2 + 3 * _progress(day, today)
        if rng.random() < per_week / 7:
            # The patient's control follows the latest clinic visit.
            state = next((v for v in reversed(visits) if v.day <= day), None)
            ok_bp = state.controlled_bp if state else course.adherence > 0.8
            ok_glucose = state.controlled_glucose if state else course.adherence > 0.8
            at = _local(day, time(7, rng.randint(0, 50)), course.zone)
            if course.hypertensive:
                sys, dia = _bp(rng, ok_bp, home=True)
                out.append(
                    _reading(org_id, course, "bp", at, sys, dia, source=source, device=meter)
                )
            if course.diabetic:
                value = _fasting(rng, ok_glucose)
                out.append(
                    _reading(
                        org_id,
                        course,
                        "glucose",
                        at - timedelta(minutes=20),
                        value,
                        context="fasting",
                        source=source,
                        device=meter,
                    )  # fmt: skip
                )
        day += timedelta(days=1)
    return out


def _dose_reminders(
    org: Organisation, seed: int, courses: list[Course], today: date, now: datetime
) -> int:
    """A daily dose reminder for the patients who asked for one: sent on their channel,
    delivered, and answered (taken, late or skipped) or not; an unanswered one is a missed
    dose a day later, as the sweep records it."""
    rng = random.Random(seed * 13 + 7)  # noqa: S311 - demo data
    occurrences: list[dict[str, Any]] = []
    answers: list[tuple[int, str, datetime, int]] = []  # (index, status, at, medication)
    delivered: list[tuple[int, datetime, bool]] = []  # (index, at, ok)
    yesterday = today - timedelta(days=1)
    for course in courses:
        if not course.on_reminders or not course.meds or course.ltfu:
            continue
        mid, name, frequency, start = course.meds[0]
        first = max(course.registered_on, today - timedelta(days=YEAR), start or date.min)
        day = first
        while day <= min(yesterday, course.active_until):
            due = _local(day, time(course.reminder_hour, 0), course.zone)
            key = f"demo-history:dose:{course.pid}:{day.isoformat()}"
            index = len(occurrences)
            t = _progress(day, today)
            chance = (
                course.adherence
                * CHANNEL_ANSWER[course.channel]
                * HOUR_ANSWER[course.reminder_hour]
                * (0.94 if day.weekday() >= 5 else 1.0)
                * (0.93 + 0.09 * t)
            )
            reached = rng.random() < 0.97
            status = rm.Status.DELIVERED if reached else rm.Status.FAILED
            acknowledged_at = None
            ack_source = ""
            if reached and rng.random() < min(chance, 0.99):
                acknowledged_at = due + timedelta(minutes=round(rng.expovariate(1 / 25)) + 1)
                if rng.random() < 0.06:
                    acknowledged_at += timedelta(hours=rng.randint(2, 6))
                    answer = "late"
                else:
                    answer = "skipped" if rng.random() < 0.05 else "taken"
                status = rm.Status.ACKNOWLEDGED
                ack_source = "link" if course.channel != "voice" else "voice"
                answers.append((index, answer, acknowledged_at, mid))
            delivered.append((index, due, reached))
            occurrences.append(
                dict(
                    organisation_id=org.pk,
                    patient_id=course.pid,
                    activity_code="medication",
                    kind="medication",
                    source_key=key,
                    local_due=f"{day.isoformat()}T{course.reminder_hour:02d}:00",
                    time_zone=course.zone.key,
                    due_at=due,
                    status=status,
                    wake_at=None,
                    tries=1,
                    link_digest=links.digest(links.token_for(key)),
                    payload={
                        "title": "按时服药",
                        "title_en": "Take your medicine",
                        "medication_id": mid,
                        "medication": name,
                    },  # fmt: skip
                    acknowledged_at=acknowledged_at,
                    ack_source=ack_source,
                    created_at=due - timedelta(days=14),
                    updated_at=acknowledged_at or due + timedelta(minutes=1),
                )
            )
            day += timedelta(days=1)
    _insert(rm.Occurrence, occurrences)
    ids = dict(
        rm.Occurrence.objects.filter(
            organisation=org, source_key__startswith="demo-history:dose:"
        ).values_list("source_key", "pk")
    )
    for occ in occurrences:
        occ["id"] = ids[occ["source_key"]]
    channels = {c.pid: c.channel for c in courses}
    attempts: list[dict[str, Any]] = []
    for index, due, ok in delivered:
        occ = occurrences[index]
        channel = channels[occ["patient_id"]]
        sent = due + timedelta(seconds=rng.randint(1, 40))
        attempts.append(
            dict(
                occurrence_id=occ["id"],
                organisation_id=occ["organisation_id"],
                patient_id=occ["patient_id"],
                dedupe_key=f"o{occ['id']}:s0:{channel}",
                try_no=1,
                step=0,
                channel=channel,
                provider=PROVIDERS[channel],
                address_hint="138****0000",
                outcome=rm.Attempt.Outcome.DELIVERED if ok else rm.Attempt.Outcome.PERMANENT,
                provider_message_id=f"demo-{occ['id']}",
                error_code="" if ok else "unreachable",
                worker="demo",
                started_at=sent,
                finished_at=sent + timedelta(seconds=2),
                delivered_at=sent + timedelta(seconds=rng.randint(3, 60)) if ok else None,
            )
        )
    _insert(rm.Attempt, attempts)
    intake = [
        dict(
            organisation_id=org.pk,
            patient_id=occurrences[index]["patient_id"],
            occurrence_id=occurrences[index]["id"],
            medication_id=mid,
            status=answer,
            reason=rng.choice(SKIP_REASONS) if answer == "skipped" else "",
            scheduled_at=occurrences[index]["due_at"],
            recorded_at=at,
            source="link",
        )
        for index, answer, at, mid in answers
    ]
    _insert(rm.IntakeEvent, intake)
    answered = {index for index, *_rest in answers}
    missed = [
        dict(
            organisation_id=org.pk,
            patient_id=occ["patient_id"],
            occurrence_id=occ["id"],
            due_at=occ["due_at"],
            found_at=occ["due_at"] + timedelta(days=1, minutes=5),
        )
        for index, occ in enumerate(occurrences)
        if index not in answered and occ["due_at"] + timedelta(days=1, minutes=5) <= now
    ]
    _insert(om.MissedDose, missed)
    return len(occurrences)


def _handle_alerts(org: Organisation, seed: int, now: datetime) -> int:
    """The alerts the year's readings and doses raised, handled as the department's staff
    would have: raised when triggered, acknowledged (faster as the year goes on, most within
    the rule's SLA), then resolved or dismissed. A rule that cleared itself closed its alert a
    day or two later. The last two days' alerts stay open."""
    rng = random.Random(seed * 17 + 3)  # noqa: S311 - demo data
    staff: dict[tuple[int | None, str], int] = {
        (dept_id, role): pk
        for pk, dept_id, role in Staff.objects.filter(organisation=org).values_list(
            "pk", "departments__pk", "role"
        )
        if dept_id is not None
    }
    recent = now - timedelta(days=2)
    alerts = list(
        alert_models.Alert.objects.filter(organisation=org, triggered_at__lt=recent).order_by("pk")
    )
    for alert in alerts:
        sla = alert.due_at - alert.raised_at
        alert.raised_at = alert.triggered_at + timedelta(seconds=rng.randint(5, 240))
        alert.due_at = alert.raised_at + sla
        t = max(0.0, min(1.0, 1 - (now - alert.raised_at).days / YEAR))
        if alert.outcome == "auto_resolved":
            alert.closed_at = min(alert.raised_at + timedelta(hours=rng.randint(12, 60)), recent)
            continue
        role = "doctor" if alert.performer_role == "doctor" else "nurse"
        by = alert.owner_id or staff.get((alert.department_id, role))
        within = rng.random() < 0.62 + 0.3 * t
        share = rng.uniform(0.05, 0.9) if within else rng.uniform(1.1, 3.0)
        alert.acknowledged_at = alert.raised_at + sla * share
        alert.acknowledged_by_id = by
        alert.closed_at = alert.acknowledged_at + min(sla, timedelta(hours=rng.randint(1, 30)))
        alert.closed_by_id = by
        if rng.random() < 0.08:
            alert.status = alert_models.Alert.Status.DISMISSED
            alert.outcome = rng.choice(["false_reading", "known_condition", "not_relevant"])
        else:
            alert.status = alert_models.Alert.Status.RESOLVED
            alert.outcome = rng.choice(RESOLVE)
    instant = _sqlite_instant if connection.vendor == "sqlite" else (lambda v: v)
    rows = [
        (instant(a.raised_at), instant(a.due_at), instant(a.acknowledged_at),
         a.acknowledged_by_id, instant(a.closed_at), a.closed_by_id, a.status, a.outcome, a.pk)
        for a in alerts
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {alert_models.Alert._meta.db_table} SET raised_at = %s, due_at = %s, "  # noqa: S608
            "acknowledged_at = %s, acknowledged_by_id = %s, closed_at = %s, closed_by_id = %s, "
            "status = %s, outcome = %s WHERE id = %s",
            rows,
        )
    # Notifications queued for them went out long ago; nothing is left to send.
    alert_models.Notification.objects.filter(
        alert__in=[a.pk for a in alerts], status="pending"
    ).delete()
    return len(alerts)


# --- step 2: the rest of the year ----------------------------------------------------------


def add_history(org: Organisation, seed: int, today: date) -> dict[str, int]:
    """Registration dates, visits, appointments and the calls after missed ones, dispensings,
    admissions, follow-up calls, satisfaction surveys and education; then the patients lost to
    follow-up and those who died. Runs after every other step of the demo."""
    courses = plan(org, seed, today)
    made: dict[str, int] = {}
    with transaction.atomic():
        _register(courses)
        made["visits"] = _encounters(org, seed, courses, today)
        made["appointments"] = _appointments(org, seed, courses)
        made["dispensings"] = _dispensings(org, seed, courses, today)
        made["tasks"] = _follow_up_calls(org, seed, courses, today)
        made["responses"] = _surveys(org, seed, courses, today)
        made["deliveries"] = _education(org, seed, courses, today)
        lost, dead = _settle(org, courses, today)
        made["lost_to_follow_up"], made["dead"] = lost, dead
    # The dashboards read the monthly state: bring it up to date for the whole year.
    from careloop.analytics import state

    state.refresh(org.pk, full=True, today=today)
    return made


def _register(courses: list[Course]) -> None:
    patients = {p.pk: p for p in pm.Patient.objects.filter(pk__in=[c.pid for c in courses])}
    for course in courses:
        patients[course.pid].registered_on = course.registered_on
    pm.Patient.objects.bulk_update(list(patients.values()), ["registered_on"], batch_size=500)
    # Prescriptions were written when their medicine started, not when the demo was built.
    meds = list(pm.Medication.objects.filter(patient_id__in=patients, start_date__isnull=False))
    for med in meds:
        if med.start_date is None:
            continue
        med.created_at = _local(
            med.start_date, time(10, 0), ZoneInfo(patients[med.patient_id].time_zone)
        )
    pm.Medication.objects.bulk_update(meds, ["created_at"], batch_size=500)


def _encounters(org: Organisation, seed: int, courses: list[Course], today: date) -> int:
    """An outpatient visit for every clinic visit; some cardiology patients admitted, a few of
    them again within 30 days, and a few emergency revisits."""
    rng = random.Random(seed * 19 + 2)  # noqa: S311 - demo data
    doctors = dict(Staff.objects.filter(pk__in={c.doctor_id for c in courses}).values_list(
        "pk", "display_name"))  # fmt: skip
    diagnoses = {True: "原发性高血压", False: "2型糖尿病"}
    rows: list[pm.Encounter] = []

    def visit(course: Course, kind: str, on: date, until: date | None, summary: str) -> None:
        rows.append(
            pm.Encounter(
                organisation_id=org.pk,
                patient_id=course.pid,
                kind=kind,
                department_id=course.dept_id,
                attending=doctors.get(course.doctor_id, ""),
                diagnoses=diagnoses[course.hypertensive],
                admitted_on=on,
                discharged_on=until,
                summary=summary,
            )
        )

    for course in courses:
        for v in course.visits:
            summary = (
                "血压控制良好，继续目前治疗。"
                if v.controlled_bp
                else "血压控制欠佳，调整用药，2 周后复查。"
            )
            visit(
                course,
                "follow_up" if v.after_missed is None else "outpatient",
                v.day,
                None,
                summary,
            )
        start = max(course.registered_on, today - timedelta(days=YEAR)) + timedelta(days=10)
        end = min(today - timedelta(days=20), course.active_until - timedelta(days=10))
        if course.ltfu or end <= start:
            continue
        if course.dept_code == "cardiology" and rng.random() < 0.12 - 0.03 * course.adherence:
            admitted = start + timedelta(days=rng.randint(0, (end - start).days))
            discharged = admitted + timedelta(days=rng.randint(3, 9))
            if discharged >= today:
                continue
            visit(course, "inpatient", admitted, discharged, "住院治疗后病情稳定出院。")
            again = discharged + timedelta(days=rng.randint(4, 28))
            if rng.random() < 0.22 and again + timedelta(days=5) < min(today, course.active_until):
                visit(course, "inpatient", again, again + timedelta(days=rng.randint(2, 6)),
                      "出院后再次入院，症状复发。")  # fmt: skip
            elif rng.random() < 0.15 and again < today:
                visit(course, "emergency", again, None, "急诊就诊，对症处理后离院。")
    pm.Encounter.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _appointments(org: Organisation, seed: int, courses: list[Course]) -> int:
    """The appointment behind every clinic visit, the ones patients missed, and the calls that
    followed a missed one (metrics.md: overdue, called, returned to care)."""
    rng = random.Random(seed * 23 + 4)  # noqa: S311 - demo data
    wanted: list[tuple[Course, datetime, date, str, date]] = []  # slot, day, status, booked
    calls: list[appointment_models.CallResult] = []
    for course in courses:
        for v in course.visits:
            wanted.append((course, v.slot, v.day, "completed", v.booked_on))
            if v.after_missed is not None:
                missed_slot = _local(v.after_missed, rng.choice(CLINIC_SLOTS), course.zone)
                booked = v.after_missed - timedelta(days=rng.randint(20, 60))
                wanted.append((course, missed_slot, v.after_missed, "no_show", booked))
            if v.called_on is not None:
                outcome = rng.choices(["agreed_to_visit", "remind_later", "removed"], [7, 2, 1])[0]
                calls.append(
                    appointment_models.CallResult(
                        organisation_id=org.pk,
                        patient_id=course.pid,
                        outcome=outcome,
                        remove_reason="unavailable" if outcome == "removed" else "",
                        remind_on=v.called_on
                        + timedelta(days=30 if outcome == "agreed_to_visit" else 7)
                        if outcome != "removed"
                        else None,
                        called_on=v.called_on,
                        created_at=_local(v.called_on, time(15, rng.randint(0, 59)), course.zone),
                        created_by_id=course.nurse_id,
                    )
                )
    slots: dict[tuple[int, datetime], appointment_models.Slot] = {}
    for course, start, day, _status, _booked in wanted:
        slot = slots.get((course.dept_id, start))
        if slot is None:
            slot = slots[(course.dept_id, start)] = appointment_models.Slot(
                organisation_id=org.pk,
                department_id=course.dept_id,
                doctor_id=course.doctor_id,
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                local_date=day,
                capacity=3,
                booked=0,
                status=appointment_models.Slot.Status.CLOSED,
            )
        slot.booked += 1
        slot.capacity = max(slot.capacity, slot.booked)
    appointment_models.Slot.objects.bulk_create(list(slots.values()), batch_size=BATCH)
    rows = []
    for course, start, day, status, booked in wanted:
        done = status == "completed"
        rows.append(
            appointment_models.Appointment(
                organisation_id=org.pk,
                patient_id=course.pid,
                slot=slots[(course.dept_id, start)],
                department_id=course.dept_id,
                doctor_id=course.doctor_id,
                kind="revisit",
                status=status,
                starts_at=start,
                local_date=day,
                reason="定期复查",
                booked_by_id=course.nurse_id,
                booked_at=_local(booked, time(11, 0), course.zone),
                checked_in_at=start - timedelta(minutes=10) if done else None,
                called_at=start + timedelta(minutes=2) if done else None,
                finished_at=start + timedelta(minutes=25) if done else None,
                updated_at=start + timedelta(minutes=25 if done else 60 * 24),
            )
        )
    appointment_models.Appointment.objects.bulk_create(rows, batch_size=BATCH)
    appointment_models.CallResult.objects.bulk_create(calls, batch_size=BATCH)
    return len(rows)


def _dispensings(org: Organisation, seed: int, courses: list[Course], today: date) -> int:
    """Every month or so a fill of each chronic medicine: early refills from the careful,
    late ones and gaps from the others, fewer gaps as the year goes on."""
    rng = random.Random(seed * 29 + 6)  # noqa: S311 - demo data
    rows: list[pm.Dispense] = []
    for course in courses:
        for mid, name, frequency, start in course.meds:
            drug_class = DRUG_CLASSES.get(name)
            if drug_class is None:
                continue
            per_day = DOSES_PER_DAY.get(frequency, 1)
            if course.ltfu:
                first = today - timedelta(days=YEAR + rng.randint(60, 200))
                last = today - timedelta(days=YEAR + 20)
            else:
                first = max(course.registered_on, today - timedelta(days=YEAR), start or date.min)
                first += timedelta(days=rng.randint(0, 12))
                last = min(today, course.active_until)
            day = first
            while day <= last:
                supply = rng.choices([30, 28, 60], [8, 1, 1])[0]
                rows.append(
                    pm.Dispense(
                        organisation_id=org.pk,
                        patient_id=course.pid,
                        prescription_id=mid,
                        name=name,
                        drug_class=drug_class,
                        quantity=supply * per_day,
                        quantity_unit="片",
                        days_supply=supply,
                        when_handed_over=day,
                        status=pm.Dispense.Status.COMPLETED,
                        source=pm.Dispense.Source.HIS,
                    )
                )
                t = _progress(day, today)
                if course.adherence > 0.88:
                    late = rng.randint(-6, 3)
                elif course.adherence > 0.72:
                    late = rng.randint(-2, 12)
                else:
                    late = rng.randint(2, 28)
                if rng.random() < 0.1 * (1.2 - t):
                    late += rng.randint(20, 50)  # a gap
                day += timedelta(days=max(10, supply + late))
    pm.Dispense.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _follow_up_calls(org: Organisation, seed: int, courses: list[Course], today: date) -> int:
    """A planned follow-up call between clinic visits more than five weeks apart, made by the
    department's nurse (now and then the doctor): most on time, more so as the year goes on."""
    rng = random.Random(seed * 37 + 8)  # noqa: S311 - demo data
    rows: list[alert_models.Task] = []
    horizon = today - timedelta(days=2)
    for course in courses:
        days = [v.day for v in course.visits]
        gaps = list(zip(days, days[1:], strict=False))
        if days and days[-1] + timedelta(days=40) <= horizon:
            gaps.append((days[-1], min(horizon, course.active_until)))
        for n, (a, b) in enumerate(gaps):
            if (b - a).days < 36:
                continue
            due_day = a + timedelta(days=(b - a).days // 2)
            if due_day > horizon:
                continue
            t = _progress(due_day, today)
            doctor = rng.random() < 0.2
            assignee = course.doctor_id if doctor else course.nurse_id
            created = _local(due_day - timedelta(days=3), time(8, 0), course.zone)
            due = _local(due_day, time(18, 0), course.zone)
            if rng.random() < 0.04:
                status, outcome = alert_models.Task.Status.CANCELLED, ""
                closed = created + timedelta(days=1)
            else:
                status, outcome = alert_models.Task.Status.DONE, rng.choice(CALL_OUTCOMES)
                on_time = rng.random() < 0.72 + 0.22 * t
                hours = rng.uniform(2, 70) if on_time else rng.uniform(80, 240)
                closed = created + timedelta(hours=hours)
            by = (
                assignee
                if rng.random() < 0.9
                else (course.nurse_id if doctor else course.doctor_id)
            )
            rows.append(
                alert_models.Task(
                    organisation_id=org.pk,
                    patient_id=course.pid,
                    department_id=course.dept_id,
                    kind=alert_models.Task.Kind.CALL_PATIENT,
                    assignee_role="doctor" if doctor else "nurse",
                    assignee_id=assignee,
                    status=status,
                    reason="按计划电话随访",
                    source_key=f"demo-history:call:{course.pid}:{n}",
                    due_at=due,
                    created_at=created,
                    closed_at=closed,
                    closed_by_id=by,
                    outcome=outcome,
                )
            )
    alert_models.Task.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _surveys(org: Organisation, seed: int, courses: list[Course], today: date) -> int:
    """The satisfaction survey (NPS and CSAT) sent after some visits; most answer, and more of
    them recommend the service as the year goes on."""
    from careloop.questionnaires import fhir as qfhir
    from careloop.questionnaires import models as qm
    from careloop.questionnaires import scoring
    from careloop.questionnaires import services as questionnaires

    questionnaire = qm.Questionnaire.objects.filter(
        instrument="satisfaction", status="active", organisation__isnull=True
    ).first()
    if questionnaire is None:
        return 0
    definition = questionnaires.definition_of(questionnaire)
    rng = random.Random(seed * 41 + 9)  # noqa: S311 - demo data
    sent: list[tuple[qm.Assignment, dict[str, Any] | None]] = []
    for course in courses:
        for v in course.visits:
            if v.day > today - timedelta(days=3) or rng.random() >= 0.4:
                continue
            t = _progress(v.day, today)
            created = v.at + timedelta(hours=3)
            assignment = qm.Assignment(
                organisation_id=org.pk,
                patient_id=course.pid,
                questionnaire=questionnaire,
                via=qm.Assignment.Via.AD_HOC,
                due_at=created + timedelta(days=7),
                assigned_by_id=course.nurse_id,
                created_at=created,
            )
            answer = None
            if rng.random() < 0.7 + 0.15 * t:
                roll = rng.random()
                nps = (
                    rng.randint(9, 10)
                    if roll < 0.34 + 0.22 * t
                    else rng.randint(7, 8)
                    if roll < 0.76 + 0.1 * t
                    else rng.randint(2, 6)
                )
                csat = 5 if nps >= 9 else 4 if nps >= 7 else rng.choice([2, 3, 3])
                at = created + timedelta(hours=rng.uniform(1, 90))
                answers: qfhir.Answers = {"nps": [nps], "csat": [str(csat)]}
                result = scoring.score("satisfaction", definition, answers)
                if result is None:
                    continue
                answer = {
                    "items": qfhir.to_response_items(definition, answers),
                    "at": at,
                    "result": result,
                }
                assignment.status = qm.Assignment.Status.COMPLETED
                assignment.completed_at = at
            sent.append((assignment, answer))
    qm.Assignment.objects.bulk_create([a for a, _x in sent], batch_size=BATCH)
    responses = [
        qm.Response(
            organisation_id=org.pk,
            patient_id=a.patient_id,
            questionnaire=questionnaire,
            assignment=a,
            status=qm.Response.Status.COMPLETED,
            items=answer["items"],
            source=qm.Response.Source.PATIENT,
            authored=answer["at"],
            started_at=answer["at"] - timedelta(minutes=3),
            completed_at=answer["at"],
            score=answer["result"].total,
            band=answer["result"].band,
            result=answer["result"].as_json(),
        )
        for a, answer in sent
        if answer is not None
    ]
    qm.Response.objects.bulk_create(responses, batch_size=BATCH)
    return len(responses)


def _education(org: Organisation, seed: int, courses: list[Course], today: date) -> int:
    """Articles of the library matching each patient's conditions, placed in their Learn list
    over the year; most are opened, more as the year goes on."""
    from careloop.education import models as em

    items = list(
        em.ContentItem.objects.filter(organisation=org, status="published", language="zh-hans")
        .order_by("pk")
        .values_list("pk", "icd10_prefixes")
    )
    have = set(em.Delivery.objects.filter(organisation=org).values_list("patient_id", "item_id"))
    rng = random.Random(seed * 43 + 10)  # noqa: S311 - demo data
    rows: list[em.Delivery] = []
    for course in courses:
        if not course.visits:
            continue
        prefixes: tuple[str, ...] = ("I10", "I11", "I25") if course.hypertensive else ()
        prefixes += ("E11",) if course.diabetic else ()
        matching = [pk for pk, tags in items if any(str(t).startswith(prefixes) for t in tags)]
        for pk in matching:
            if (course.pid, pk) in have or rng.random() < 0.4:
                continue
            visit = rng.choice(course.visits)
            at = visit.at + timedelta(hours=rng.randint(2, 30))
            if at.date() >= today:
                continue
            t = _progress(visit.day, today)
            opened = (
                at + timedelta(hours=rng.uniform(0.2, 48)) if rng.random() < 0.5 + 0.3 * t else None
            )
            read = (
                opened + timedelta(minutes=rng.randint(2, 9))
                if opened and rng.random() < 0.6
                else None
            )
            rows.append(
                em.Delivery(
                    organisation_id=org.pk,
                    patient_id=course.pid,
                    item_id=pk,
                    source=em.Delivery.Source.STAFF,
                    delivered_at=at,
                    opened_at=opened,
                    read_at=read,
                )
            )
    em.Delivery.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _settle(org: Organisation, courses: list[Course], today: date) -> tuple[int, int]:
    """The candidates lost to follow-up and dead become so when nothing the rules raised stands
    in the way: their readings of the last year (or since death) and their recent visits go,
    the living ones' visits move back a year, a dead patient's reminders stop."""
    lost = dead = 0
    alerted = set(
        alert_models.Alert.objects.filter(organisation=org).values_list(
            "patient_id", "triggered_at"
        )
    )
    booked = set(
        appointment_models.Appointment.objects.filter(
            organisation=org, status__in=appointment_models.Appointment.ACTIVE
        ).values_list("patient_id", flat=True)
    )
    by_patient: dict[int, list[datetime]] = defaultdict(list)
    for pid, at in alerted:
        by_patient[pid].append(at)
    dead_made = 0
    for course in courses:
        if course.dies_on is None and not course.ltfu:
            continue
        if course.pid in booked:
            continue
        cutoff_day = course.dies_on or today - timedelta(days=YEAR + 10)
        cutoff = _local(cutoff_day, time(0), course.zone)
        if any(at >= cutoff for at in by_patient[course.pid]):
            continue
        if course.dies_on is not None and dead_made >= 2:
            continue
        om.Observation.objects.filter(patient_id=course.pid, effective_at__gte=cutoff).delete()
        _refresh_latest(course.pid)
        alert_models.RuleState.objects.filter(patient_id=course.pid).delete()
        future = rm.Occurrence.objects.filter(patient_id=course.pid, due_at__gte=cutoff).exclude(
            pk__in=rm.Attempt.objects.filter(patient_id=course.pid).values("occurrence_id")
        )
        if course.dies_on is not None:
            pm.Patient.objects.filter(pk=course.pid).update(deceased_on=course.dies_on)
            future.filter(status=rm.Status.SCHEDULED).update(
                status=rm.Status.CANCELLED, wake_at=None, reason="deceased"
            )
            pm.Encounter.objects.filter(patient_id=course.pid, admitted_on__gte=cutoff_day).update(
                admitted_on=cutoff_day - timedelta(days=30), discharged_on=None
            )
            dead_made += 1
            dead += 1
        else:
            # Their visits were long ago.
            for enc in pm.Encounter.objects.filter(
                patient_id=course.pid, admitted_on__gte=cutoff_day
            ):
                shift = timedelta(days=YEAR + 40)
                enc.admitted_on -= shift
                enc.discharged_on = enc.discharged_on - shift if enc.discharged_on else None
                enc.save(update_fields=["admitted_on", "discharged_on"])
            rm.Occurrence.objects.filter(
                patient_id=course.pid, kind="revisit", status="sent"
            ).update(status=rm.Status.CANCELLED, reason="lost to follow-up")
            # And so were their prescriptions.
            for med in pm.Medication.objects.filter(
                patient_id=course.pid, start_date__gte=cutoff_day
            ):
                if med.start_date is None:
                    continue
                med.start_date -= timedelta(days=YEAR + 40)
                med.created_at = _local(med.start_date, time(10, 0), course.zone)
                med.save(update_fields=["start_date", "created_at"])
            lost += 1
    return lost, dead


def _refresh_latest(pid: int) -> None:
    """The newest remaining reading of each kind; nothing more is expected from the patient."""
    for row in om.Latest.objects.filter(patient_id=pid):
        last = (
            om.Observation.objects.filter(patient_id=pid, kind=row.kind)
            .order_by("-effective_at")
            .first()
        )
        if last is None:
            row.delete()
            continue
        row.last_at, row.value, row.value2 = last.effective_at, last.value, last.value2
        row.context, row.expected_since = last.context, None
        row.save()

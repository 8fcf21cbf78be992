"""A synthetic population for analytics tests and `careloop bench analytics`, written in bulk.

`generate(patients, seed=…, today=…)` makes an organisation with two departments (cardiology,
endocrinology), their doctors and nurses in one care team each, and `patients` patients with:

- conditions: hypertension (I10) for most, type 2 diabetes (E11.9) for many, some with both;
- 7–12 dispensings each over the last year of RAS antagonists, calcium channel blockers,
  statins or metformin, with early, on-time and late refills by adherence profile, now and
  then two drugs of one class handed over on the same day, some with `drug_class` filled and
  the others known only by ATC code or by name, and a few cancelled or deleted;
- about ten blood-pressure readings taken by staff (with `local_day`), one in six uploaded by
  the patient instead;
- follow-up tasks (alerts.Task) due over the year, most closed with an outcome (some late),
  some cancelled or still open;
- appointments (completed, missed, cancelled, booked ahead) in one clinic session per
  department and day.

Rows go in with one `COPY` (PostgreSQL) or `executemany` (SQLite) per table and batch, without
audit events or record versions: it is test and benchmark data, not a history of use. The same
seed and day give the same rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ZONE = "Asia/Shanghai"
BATCH = 20_000

# (name, ATC code, class as the HIS names it, default days supply)
DRUGS: dict[str, tuple[tuple[str, str, str, int], ...]] = {
    "rasa": (
        ("缬沙坦胶囊", "C09CA03", "RAS antagonists", 28),
        ("厄贝沙坦片", "C09CA04", "rasa", 30),
        ("贝那普利片", "C09AA07", "rasa", 30),
    ),
    "ccb": (
        ("苯磺酸氨氯地平片", "C08CA01", "ccb", 30),
        ("硝苯地平控释片", "C08CA05", "calcium channel blockers", 30),
    ),
    "statins": (
        ("阿托伐他汀钙片", "C10AA05", "statins", 30),
        ("瑞舒伐他汀钙片", "C10AA07", "他汀类", 30),
    ),
    "diabetes": (("盐酸二甲双胍片", "A10BA02", "降糖药", 30),),
}
# The second drug of a class handed over on the same day as a fill of the first.
SAME_DAY_PARTNER = {
    "rasa": ("氯沙坦钾片", "C09CA01", "rasa", 30),
    "statins": ("辛伐他汀片", "C10AA01", "statins", 30),
}
OUTCOMES = ("reached", "agreed_to_visit", "no_answer", "done", "remind_later", "wrong_number")


@dataclass
class Population:
    organisation_id: int
    department_ids: dict[str, int]
    staff_ids: dict[str, list[int]]  # "doctor"/"nurse" → ids
    patient_ids: list[int]
    today: date
    counts: dict[str, int] = field(default_factory=dict)


# --- bulk writing ---------------------------------------------------------------------------


def _converter(model_field: Any, connection: Any) -> Callable[[Any], Any]:
    kind = model_field.get_internal_type()
    ops = connection.ops
    if kind == "DateTimeField":
        return lambda v: None if v is None else ops.adapt_datetimefield_value(v)
    if kind == "DateField":
        return lambda v: None if v is None else ops.adapt_datefield_value(v)
    if kind == "JSONField":
        return lambda v: None if v is None else json.dumps(v)
    if kind == "DecimalField":
        return lambda v: None if v is None else str(v)
    return lambda v: v


def insert(model: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write rows of `model` (values of `columns`, by field attname); the other columns get
    their field's default (now for auto_now fields, NULL when nullable). Returns the count."""
    from django.db import connection, transaction

    fields = {f.attname: f for f in model._meta.concrete_fields}
    given = list(columns)
    now = datetime.now(UTC)
    extra: list[tuple[str, Any]] = []
    for name, f in fields.items():
        if name in given or f.primary_key:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            extra.append((name, now))
        elif f.has_default():
            extra.append((name, f.get_default()))
        elif f.null:
            extra.append((name, None))
        elif f.get_internal_type() in ("CharField", "TextField", "SlugField"):
            extra.append((name, ""))
        else:
            raise ValueError(f"{model.__name__}.{name} needs a value")
    names = given + [name for name, _ in extra]
    convert = [_converter(fields[name], connection) for name in names]
    defaults = tuple(value for _, value in extra)
    table = connection.ops.quote_name(model._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(fields[n].column) for n in names)
    written = 0
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        with transaction.atomic(), connection.cursor() as cur:
            if connection.vendor == "postgresql":
                with cur.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(names))
                cur.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", batch)  # noqa: S608
        batch.clear()

    for row in rows:
        full = tuple(row) + defaults
        batch.append(tuple(c(v) for c, v in zip(convert, full, strict=True)))
        written += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return written


# --- the population -------------------------------------------------------------------------


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(ZONE)).astimezone(UTC)


def generate(
    patients: int,
    *,
    seed: int = 1,
    today: date | None = None,
    code: str = "synthetic",
    emit: Callable[[str], None] | None = None,
    visits: bool = True,
) -> Population:
    """Write the population (see the module) and say what was made. `visits=False` leaves out
    the readings, tasks and appointments (a PDC check needs only the dispensings)."""
    from careloop.accounts.models import (
        CareTeam,
        CareTeamMember,
        Department,
        Membership,
        Organisation,
        Staff,
    )
    from careloop.demo import people
    from careloop.patients import models as pm

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    today = today or datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()
    org = Organisation.objects.create(name=f"Synthetic Hospital {code}", code=code)
    depts: dict[str, int] = {}
    staff: dict[str, list[int]] = {"doctor": [], "nurse": []}
    teams: dict[str, int] = {}
    for dept_code, name, name_en in (
        ("cardiology", "心内科", "Cardiology"),
        ("endocrinology", "内分泌科", "Endocrinology"),
    ):
        dept = Department.objects.create(
            organisation=org, code=dept_code, name=name, name_en=name_en
        )
        depts[dept_code] = dept.pk
        team = CareTeam.objects.create(department=dept, name=f"{name}随访组")
        teams[dept_code] = team.pk
        for role, count in (("doctor", 2), ("nurse", 3)):
            for i in range(count):
                member = Staff(
                    username=f"{code}.{dept_code}.{role}{i + 1}",
                    organisation=org,
                    role=role,
                    display_name=f"{name}{role}{i + 1}",
                )
                member.set_unusable_password()
                member.save()
                Membership.objects.create(staff=member, department=dept)
                CareTeamMember.objects.create(team=team, staff=member, team_role=role)
                staff[role].append(member.pk)
                if role == "doctor" and i == 0:
                    team.responsible_doctor = member
                    team.save(update_fields=["responsible_doctor"])

    def say(text: str) -> None:
        if emit:
            emit(text)

    # Patients, through the ORM (their defaults and any field added later), in big batches.
    year_ago = today - timedelta(days=365)
    registered_field = any(f.name == "registered_on" for f in pm.Patient._meta.fields)
    ids: list[int] = []
    plan: list[tuple[str, bool, bool, date]] = []  # department, hypertension, diabetes, since
    for start in range(0, patients, 5000):
        rows = []
        for i in range(start, min(patients, start + 5000)):
            sex = rng.choice(("male", "female"))
            diabetes = rng.random() < 0.35
            hypertension = not diabetes or rng.random() < 0.5
            home = "endocrinology" if diabetes and rng.random() < 0.7 else "cardiology"
            # Most registered over a year ago; some in the last months (newly registered).
            since = today - timedelta(
                days=rng.choice((rng.randint(400, 1500), rng.randint(20, 399)))
            )
            plan.append((home, hypertension, diabetes, since))
            extra = {"registered_on": since} if registered_field else {}
            rows.append(
                pm.Patient(
                    organisation_id=org.pk,
                    record_number=f"S{seed}-{i:07d}",
                    name=people.chinese_name(rng, sex),
                    sex=sex,
                    date_of_birth=people.birth_date(rng, today, 35, 90),
                    time_zone=ZONE,
                    deceased_on=today - timedelta(days=rng.randint(1, 300))
                    if rng.random() < 0.01
                    else None,
                    **extra,
                )
            )
        pm.Patient.objects.bulk_create(rows, batch_size=5000)
        ids.extend(p.pk for p in rows)
        say(f"  patients: {len(ids):,}/{patients:,}")

    counts: dict[str, int] = {"patients": len(ids)}
    counts["department_links"] = insert(
        pm.PatientDepartment,
        ("patient_id", "department_id", "care_team_id", "since"),
        ((pk, depts[p[0]], teams[p[0]], p[3]) for pk, p in zip(ids, plan, strict=True)),
    )

    def conditions() -> Iterable[tuple[Any, ...]]:
        for pk, (_dept, hypertension, diabetes, since) in zip(ids, plan, strict=True):
            if hypertension:
                yield (org.pk, pk, "I10", "原发性高血压", since, "active")
            if diabetes:
                yield (org.pk, pk, "E11.9", "2型糖尿病", since, "active")

    counts["conditions"] = insert(
        pm.Condition,
        ("organisation_id", "patient_id", "icd10_code", "display", "onset_date", "status"),
        conditions(),
    )
    say(f"  conditions: {counts['conditions']:,}")

    counts["dispenses"] = insert(
        pm.Dispense,
        ("organisation_id", "patient_id", "name", "code", "code_system", "drug_class",
         "days_supply", "when_handed_over", "status", "source", "deleted_at"),
        _dispenses(rng, org.pk, ids, plan, year_ago, today),
    )  # fmt: skip
    say(f"  dispensings: {counts['dispenses']:,}")

    if not visits:
        return Population(org.pk, depts, staff, ids, today, counts)
    counts["readings"] = _readings(rng, org.pk, ids, plan, staff, depts, today)
    say(f"  readings: {counts['readings']:,}")
    counts["tasks"] = _tasks(rng, org.pk, ids, plan, staff, depts, today, code)
    say(f"  tasks: {counts['tasks']:,}")
    counts["appointments"] = _appointments(rng, org.pk, ids, plan, staff, depts, today)
    say(f"  appointments: {counts['appointments']:,}")
    return Population(org.pk, depts, staff, ids, today, counts)


def _dispenses(
    rng: random.Random,
    org_id: int,
    ids: Sequence[int],
    plan: Sequence[tuple[str, bool, bool, date]],
    first: date,
    today: date,
) -> Iterable[tuple[Any, ...]]:
    for pk, (_dept, hypertension, diabetes, _since) in zip(ids, plan, strict=True):
        classes = []
        if hypertension:
            classes.append("rasa")
            if rng.random() < 0.4:
                classes.append("ccb")
        if diabetes:
            classes.append("diabetes")
        if rng.random() < 0.4:
            classes.append("statins")
        rng.shuffle(classes)
        classes = classes[:3]
        total = rng.randint(7, 12)
        per = [total // len(classes)] * len(classes)
        for k in range(total % len(classes)):
            per[k] += 1
        # Adherence profile: how long a supply lasts before the next fill, as a factor.
        profile = rng.random()
        if profile < 0.5:
            mean, spread = 0.95, 0.05  # refills early or on time
        elif profile < 0.8:
            mean, spread = 1.1, 0.15
        else:
            mean, spread = 1.6, 0.4
        for cls, count in zip(classes, per, strict=True):
            name, code, label, supply = rng.choice(DRUGS[cls])
            # How this hospital records it: class filled, ATC code only, or name only.
            style = rng.random()
            if style < 0.6:
                record = (name, code, "http://www.whocc.no/atc", label)
            elif style < 0.8:
                record = (name, code, "http://www.whocc.no/atc", "")
            else:
                record = (name, "", "", "")
            # Fewer fills of a drug, longer supplies (long prescriptions of up to 12 weeks).
            if count < 5:
                supply = 90
            elif count < 9:
                supply = 60
            day = first + timedelta(days=rng.randint(0, 60))
            for n in range(count):
                days_supply = supply if rng.random() < 0.85 else rng.choice((14, 30, 90))
                status, deleted = "completed", None
                roll = rng.random()
                if roll < 0.03:
                    status = "cancelled"
                elif roll < 0.04:
                    status = "entered-in-error"
                elif roll < 0.05:
                    deleted = datetime.combine(day, time(12), UTC)
                if day > today:
                    break
                yield (org_id, pk, *record[:3], record[3], days_supply, day, status, "his",
                       deleted)  # fmt: skip
                if cls in SAME_DAY_PARTNER and n == 0 and rng.random() < 0.05:
                    other = SAME_DAY_PARTNER[cls]
                    yield (org_id, pk, other[0], other[1], "http://www.whocc.no/atc", other[2],
                           other[3], day, "completed", "his", None)  # fmt: skip
                gap = max(1, round(days_supply * rng.gauss(mean, spread)))
                day += timedelta(days=gap)


def _readings(
    rng: random.Random,
    org_id: int,
    ids: Sequence[int],
    plan: Sequence[tuple[str, bool, bool, date]],
    staff: dict[str, list[int]],
    depts: dict[str, int],
    today: date,
) -> int:
    from careloop.observations import models as om

    nurses = staff["nurse"]

    def rows() -> Iterable[tuple[Any, ...]]:
        for pk, (_dept, _h, _d, since) in zip(ids, plan, strict=True):
            level = rng.gauss(138, 14)
            days = sorted(rng.sample(range(0, 365), rng.randint(8, 15)))
            for offset in days:
                day = today - timedelta(days=offset)
                if day < since:
                    continue
                staff_taken = rng.random() >= 1 / 6
                at = _local(day, rng.randint(8, 17), rng.randint(0, 59))
                sys = round(level + rng.gauss(0, 9))
                dia = round(sys * 0.62 + rng.gauss(0, 5))
                yield (org_id, pk, "bp", "85354-9", float(sys), float(dia), "mm[Hg]", "",
                       "staff" if staff_taken else "patient", "", at, ZONE, day.toordinal(),
                       at.astimezone(ZoneInfo(ZONE)).hour, f"{sys}/{dia}", at,
                       rng.choice(nurses) if staff_taken else None)  # fmt: skip

    return insert(
        om.Observation,
        ("organisation_id", "patient_id", "kind", "code", "value", "value2", "unit", "context",
         "source", "device_id", "effective_at", "time_zone", "local_day", "local_hour",
         "original", "created_at", "entered_by_id"),
        rows(),
    )  # fmt: skip


def _tasks(
    rng: random.Random,
    org_id: int,
    ids: Sequence[int],
    plan: Sequence[tuple[str, bool, bool, date]],
    staff: dict[str, list[int]],
    depts: dict[str, int],
    today: date,
    code: str,
) -> int:
    from careloop.alerts.models import Task

    nurses = staff["nurse"]

    def rows() -> Iterable[tuple[Any, ...]]:
        for pk, (dept, _h, _d, _since) in zip(ids, plan, strict=True):
            for n in range(rng.choice((0, 1, 1, 2, 2, 3))):
                due_day = today - timedelta(days=rng.randint(-14, 360))
                due = _local(due_day, 18)
                created = due - timedelta(days=rng.randint(1, 7))
                nurse = rng.choice(nurses)
                roll = rng.random()
                if due_day >= today and roll < 0.7:
                    status, closed, outcome, closer = "open", None, "", None
                elif roll < 0.06:
                    closed = created + timedelta(hours=5)
                    status, outcome, closer = "cancelled", "", nurse
                elif roll < 0.12 and due_day < today:
                    status, closed, outcome, closer = "open", None, "", None
                else:
                    late = rng.random() < 0.15
                    closed = due + (timedelta(days=rng.randint(1, 10)) if late
                                    else -timedelta(hours=rng.randint(1, 60)))  # fmt: skip
                    status, outcome, closer = "done", rng.choice(OUTCOMES), nurse
                key = f"synthetic:{code}:{pk}:{n}"
                yield (org_id, pk, depts[dept], "call_patient", "nurse", nurse, status, key,
                       due, created, closed, closer, outcome)  # fmt: skip

    return insert(
        Task,
        ("organisation_id", "patient_id", "department_id", "kind", "assignee_role",
         "assignee_id", "status", "source_key", "due_at", "created_at", "closed_at",
         "closed_by_id", "outcome"),
        rows(),
    )  # fmt: skip


def _appointments(
    rng: random.Random,
    org_id: int,
    ids: Sequence[int],
    plan: Sequence[tuple[str, bool, bool, date]],
    staff: dict[str, list[int]],
    depts: dict[str, int],
    today: date,
) -> int:
    from careloop.appointments.models import Appointment, Slot

    doctors = staff["doctor"]
    wanted: list[tuple[int, str, date, str, int]] = []
    for pk, (dept, _h, _d, since) in zip(ids, plan, strict=True):
        days = {
            today + timedelta(days=rng.randint(-360, 30))
            for _ in range(rng.choice((0, 1, 1, 2, 3)))
        }
        for day in sorted(days):
            if day < since:
                continue
            if day > today:
                status = "booked"
            else:
                status = rng.choices(("completed", "no_show", "cancelled"), weights=(80, 12, 8))[0]
            wanted.append((pk, dept, day, status, rng.choice(doctors)))
    per_slot: dict[tuple[str, date], int] = {}
    for _pk, dept, day, _status, _doc in wanted:
        per_slot[(dept, day)] = per_slot.get((dept, day), 0) + 1
    keys = sorted(per_slot)
    insert(
        Slot,
        ("organisation_id", "department_id", "starts_at", "ends_at", "local_date", "capacity",
         "booked", "status"),
        ((org_id, depts[dept], _local(day, 8), _local(day, 12), day, per_slot[(dept, day)],
          per_slot[(dept, day)], "open") for dept, day in keys),
    )  # fmt: skip
    slot_ids: dict[tuple[int, date], int] = {}
    for pk, dept_id, local_date in Slot.objects.filter(organisation_id=org_id).values_list(
        "pk", "department_id", "local_date"
    ):
        slot_ids[(dept_id, local_date)] = pk

    def rows() -> Iterable[tuple[Any, ...]]:
        for pk, dept, day, status, doctor in wanted:
            starts = _local(day, 8, rng.randint(0, 200) % 60)
            booked = _local(day, 9) - timedelta(days=rng.randint(3, 40))
            finished = starts + timedelta(minutes=20) if status == "completed" else None
            yield (org_id, pk, slot_ids[(depts[dept], day)], depts[dept], doctor, "revisit",
                   status, starts, day, booked, finished, booked)  # fmt: skip

    return insert(
        Appointment,
        ("organisation_id", "patient_id", "slot_id", "department_id", "doctor_id", "kind",
         "status", "starts_at", "local_date", "booked_at", "finished_at", "updated_at"),
        rows(),
    )  # fmt: skip

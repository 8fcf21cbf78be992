"""The `registry` workload: register patients with their records, then search for them.

Phases, all in one database and one process:

1. set-up: an organisation with two departments and their nurses and doctors, and a second
   organisation (a nurse there must never find anything of ours);
2. create: every patient through `services.create_patient`, then a condition and a medication
   through `services.add_record`, as one of their department's nurses (timed: patients/s);
3. search: a seeded mix of searches through `selectors.search_patients` as different nurses and
   doctors -- phone tail, name, resident ID number, ICD-10 code, and another department's ID
   number (which must find nothing) -- each timed on its own (p50/p99 ms);
4. floors: the same rows written with one `cursor.executemany` per table into scratch tables,
   and the same searches answered by one plain indexed SELECT each;
5. checks: counts, scoping of every result, findability by phone tail for the own department
   only, and the audit chain.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Membership, Organisation, Staff
from careloop.accounts.roles import Role
from careloop.audit import services as audit
from careloop.audit.models import AuditEvent
from careloop.bench.harness import Emit, Progress, latency_summary, rate
from careloop.demo import people
from careloop.kit.clock import utc_now
from careloop.patients import models as pm
from careloop.patients import selectors, services
from careloop.patients.selectors import Criteria


@dataclass(frozen=True)
class Size:
    patients: int
    searches: int


SIZES = {
    "tiny": Size(100, 200),  # for the test suite
    "small": Size(10_000, 10_000),
    "full": Size(100_000, 10_000),
}

# Dates are generated relative to a fixed day so that a seed gives the same data on any day.
REFERENCE_DAY = date(2025, 1, 1)
ORG_CODE = "bench"
DEPARTMENTS = (
    ("cardiology", "心内科", "Cardiology"),
    ("endocrinology", "内分泌科", "Endocrinology"),
)
CONDITIONS = {
    "cardiology": [
        ("I10", "原发性高血压"),
        ("I25.1", "冠状动脉粥样硬化性心脏病"),
        ("I48", "心房纤颤"),
        ("I50", "心力衰竭"),
        ("I20", "心绞痛"),
    ],
    "endocrinology": [
        ("E11.9", "2型糖尿病"),
        ("E78.5", "高脂血症"),
        ("E03", "甲状腺功能减退症"),
        ("E05", "甲状腺功能亢进症"),
        ("E66", "肥胖症"),
    ],
}
MEDICATIONS = {
    "cardiology": [
        ("氨氯地平片", "5", "mg", "po", "qd"),
        ("美托洛尔缓释片", "47.5", "mg", "po", "qd"),
        ("阿司匹林肠溶片", "100", "mg", "po", "qd"),
        ("阿托伐他汀钙片", "20", "mg", "po", "qn"),
    ],
    "endocrinology": [
        ("二甲双胍片", "0.5", "g", "po", "tid"),
        ("甘精胰岛素注射液", "12", "U", "sc", "qn"),
        ("左甲状腺素钠片", "50", "ug", "po", "qd"),
        ("阿卡波糖片", "50", "mg", "po", "tid"),
    ],
}
NURSES_PER_DEPARTMENT = 3
DOCTORS_PER_DEPARTMENT = 2
SEARCH_MIX = (
    ("phone_tail", 35),
    ("name", 25),
    ("national_id", 20),
    ("condition", 10),
    ("other_department", 10),
)
# Patients whose findability by phone tail is checked one by one after the run.
CHECK_SAMPLE = 500


# --- the people ----------------------------------------------------------------------------


@dataclass
class Person:
    index: int
    department: str
    name: str
    sex: str
    born: date
    national_id: str
    phone: str
    address: str
    condition: tuple[str, str]
    onset: date
    medication: tuple[str, str, str, str, str]
    started: date
    pk: int | None = None

    @property
    def record_number(self) -> str:
        return f"BN{self.index:08d}"

    @property
    def tail(self) -> str:
        return self.phone[-4:]

    def patient_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sex": self.sex,
            "date_of_birth": self.born.isoformat(),
            "national_id": self.national_id,
            "phones": [self.phone],
            "record_number": self.record_number,
            "address": self.address,
            "preferred_language": "zh-hans",
            "time_zone": "Asia/Shanghai",
            "preferred_channels": ["sms"],
        }

    def condition_data(self) -> dict[str, Any]:
        code, display = self.condition
        return {
            "icd10_code": code,
            "display": display,
            "onset_date": self.onset.isoformat(),
            "status": "active",
        }

    def medication_data(self) -> dict[str, Any]:
        name, dose, unit, route, frequency = self.medication
        return {
            "name": name,
            "dose": dose,
            "unit": unit,
            "route": route,
            "frequency": frequency,
            "start_date": self.started.isoformat(),
            "status": "active",
        }


def generate_people(count: int, seed: int) -> list[Person]:
    """`count` distinct synthetic patients, half per department; same seed, same people."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    seen_ids: set[str] = set()
    seen_phones: set[str] = set()
    out: list[Person] = []
    for i in range(count):
        dept = DEPARTMENTS[i % len(DEPARTMENTS)][0]
        sex = rng.choice(("male", "female"))
        born = people.birth_date(rng, REFERENCE_DAY, 30, 90)
        national_id = people.resident_id(rng, born, sex, serial=i)
        while national_id in seen_ids:  # the serial repeats every 500; draw another
            national_id = people.resident_id(rng, born, sex)
        seen_ids.add(national_id)
        phone = people.mobile(rng)
        while phone in seen_phones:
            phone = people.mobile(rng)
        seen_phones.add(phone)
        out.append(
            Person(
                index=i,
                department=dept,
                name=people.chinese_name(rng, sex),
                sex=sex,
                born=born,
                national_id=national_id,
                phone=phone,
                address=people.address(rng),
                condition=rng.choice(CONDITIONS[dept]),
                onset=REFERENCE_DAY - timedelta(days=rng.randint(100, 3000)),
                medication=rng.choice(MEDICATIONS[dept]),
                started=REFERENCE_DAY - timedelta(days=rng.randint(10, 700)),
            )
        )
    return out


# --- the organisation ------------------------------------------------------------------------


@dataclass
class Cast:
    org: Organisation
    departments: dict[str, Department]
    nurses: dict[str, list[Actor]]
    doctors: dict[str, list[Actor]]
    outsider: Actor  # a nurse of another organisation


def set_up(seed: int) -> Cast:
    def actor(org: Organisation, username: str, role: Role, depts: list[Department]) -> Actor:
        # Bench staff never sign in: no password, so no slow password hashing in the set-up.
        user = Staff(username=username, organisation=org, role=role, display_name=username)
        user.set_unusable_password()
        user.save()
        for dept in depts:
            Membership.objects.create(staff=user, department=dept)
        return Actor(user=user, source="bench", channel="bench")

    if Organisation.objects.filter(code__in=[ORG_CODE, f"{ORG_CODE}-other"]).exists():
        raise RuntimeError("this database already holds a bench organisation")
    org = Organisation.objects.create(name=f"Bench Hospital (seed {seed})", code=ORG_CODE)
    other = Organisation.objects.create(name="Bench Other Hospital", code=f"{ORG_CODE}-other")
    depts = {
        code: Department.objects.create(organisation=org, code=code, name=zh, name_en=en)
        for code, zh, en in DEPARTMENTS
    }
    other_dept = Department.objects.create(organisation=other, code="cardiology", name="心内科")
    nurses = {
        code: [
            actor(org, f"bench.nurse{k}.{code}", Role.NURSE, [d])
            for k in range(NURSES_PER_DEPARTMENT)
        ]
        for code, d in depts.items()
    }
    doctors = {
        code: [
            actor(org, f"bench.doctor{k}.{code}", Role.DOCTOR, [d])
            for k in range(DOCTORS_PER_DEPARTMENT)
        ]
        for code, d in depts.items()
    }
    outsider = actor(other, "bench.nurse.other", Role.NURSE, [other_dept])
    return Cast(org, depts, nurses, doctors, outsider)


def create_one(actor: Actor, department: Department, person: Person) -> int:
    """One registration as the product does it: the patient, a condition, a medication."""
    patient = services.create_patient(actor, person.patient_data(), department_id=department.pk)
    services.add_record(actor, patient.pk, "conditions", person.condition_data())
    services.add_record(actor, patient.pk, "medications", person.medication_data())
    return patient.pk


# --- searches ------------------------------------------------------------------------------


@dataclass
class Search:
    kind: str
    actor: Actor
    department: str  # the searcher's department
    target: Person

    @property
    def q(self) -> str:
        if self.kind == "phone_tail":
            return self.target.tail
        if self.kind == "name":
            return self.target.name
        if self.kind == "condition":
            return self.target.condition[0].split(".")[0]
        return self.target.national_id  # national_id, other_department


def plan_searches(count: int, seed: int, cast: Cast, persons: list[Person]) -> list[Search]:
    rng = random.Random(seed + 1)  # noqa: S311 - reproducible test data, not security
    by_dept: dict[str, list[Person]] = {code: [] for code, _zh, _en in DEPARTMENTS}
    for p in persons:
        by_dept[p.department].append(p)
    searchers = [(code, a) for code in by_dept for a in cast.nurses[code] + cast.doctors[code]]
    kinds = [k for k, _w in SEARCH_MIX]
    weights = [w for _k, w in SEARCH_MIX]
    plan = []
    for _ in range(count):
        dept, actor = rng.choice(searchers)
        kind = rng.choices(kinds, weights)[0]
        pool_dept = dept if kind != "other_department" else next(c for c in by_dept if c != dept)
        plan.append(Search(kind, actor, dept, rng.choice(by_dept[pool_dept])))
    return plan


def search_problem(s: Search, total: int, found: list[int], dept_of: dict[int, str]) -> str | None:
    """What is wrong with one search's answer, if anything."""
    strays = [pk for pk in found if dept_of.get(pk) != s.department]
    if strays:
        return f"{s.kind} {s.q!r} by {s.actor.user}: results outside the department: {strays[:5]}"
    if s.kind == "other_department" and total != 0:
        return f"{s.kind} {s.q!r} by {s.actor.user}: found {total}, expected none"
    if s.kind == "national_id" and (total != 1 or found != [s.target.pk]):
        return f"{s.kind} {s.q!r} by {s.actor.user}: found {found[:5]}, expected {s.target.pk}"
    if s.kind in ("phone_tail", "name", "condition") and total < 1:
        return f"{s.kind} {s.q!r} by {s.actor.user}: found nothing"
    return None


# --- floors --------------------------------------------------------------------------------

FLOOR_TABLES = ("bench_floor_medication", "bench_floor_condition", "bench_floor_patient")
FLOOR_DDL = (
    """CREATE TABLE bench_floor_patient (
        id BIGINT PRIMARY KEY, organisation_id BIGINT NOT NULL, department_id BIGINT NOT NULL,
        record_number VARCHAR(40) NOT NULL, name VARCHAR(100) NOT NULL, sex VARCHAR(10) NOT NULL,
        date_of_birth DATE NOT NULL, national_id VARCHAR(18) NOT NULL, address TEXT NOT NULL,
        phone VARCHAR(20) NOT NULL, phone_tail VARCHAR(4) NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL)""",
    "CREATE INDEX bench_floor_patient_tail ON bench_floor_patient (department_id, phone_tail)",
    "CREATE INDEX bench_floor_patient_nid ON bench_floor_patient (national_id)",
    "CREATE INDEX bench_floor_patient_name ON bench_floor_patient (organisation_id, name)",
    """CREATE TABLE bench_floor_condition (
        id BIGINT PRIMARY KEY, patient_id BIGINT NOT NULL, icd10_code VARCHAR(20) NOT NULL,
        display VARCHAR(200) NOT NULL, onset_date DATE, status VARCHAR(12) NOT NULL)""",
    "CREATE INDEX bench_floor_condition_patient ON bench_floor_condition (patient_id)",
    """CREATE TABLE bench_floor_medication (
        id BIGINT PRIMARY KEY, patient_id BIGINT NOT NULL, name VARCHAR(200) NOT NULL,
        dose NUMERIC(10, 3) NOT NULL, unit VARCHAR(20) NOT NULL, route VARCHAR(4) NOT NULL,
        frequency VARCHAR(4) NOT NULL, start_date DATE, status VARCHAR(10) NOT NULL)""",
    "CREATE INDEX bench_floor_medication_patient ON bench_floor_medication (patient_id)",
)
INSERT_PATIENT = (
    "INSERT INTO bench_floor_patient (id, organisation_id, department_id, record_number, name,"
    " sex, date_of_birth, national_id, address, phone, phone_tail, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_CONDITION = (
    "INSERT INTO bench_floor_condition (id, patient_id, icd10_code, display, onset_date, status)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
INSERT_MEDICATION = (
    "INSERT INTO bench_floor_medication (id, patient_id, name, dose, unit, route, frequency,"
    " start_date, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
FLOOR_SEARCH = {
    "phone_tail": "SELECT id, name FROM bench_floor_patient WHERE department_id = %s"
    " AND phone_tail = %s ORDER BY id DESC LIMIT 25",
    "name": "SELECT id, name FROM bench_floor_patient WHERE department_id = %s"
    " AND name LIKE %s ORDER BY id DESC LIMIT 25",
    "national_id": "SELECT id, name FROM bench_floor_patient WHERE department_id = %s"
    " AND national_id = %s ORDER BY id DESC LIMIT 25",
    "condition": "SELECT p.id, p.name FROM bench_floor_patient p WHERE p.department_id = %s"
    " AND EXISTS (SELECT 1 FROM bench_floor_condition c WHERE c.patient_id = p.id"
    " AND c.icd10_code LIKE %s) ORDER BY p.id DESC LIMIT 25",
}
FLOOR_SEARCH["other_department"] = FLOOR_SEARCH["national_id"]


def _reset_floor_tables() -> None:
    with connection.cursor() as cur:
        for table in FLOOR_TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - constant names
        for stmt in FLOOR_DDL:
            cur.execute(stmt)


def _drop_floor_tables() -> None:
    with connection.cursor() as cur:
        for table in FLOOR_TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - constant names


def floor_rows(cast: Cast, persons: list[Person]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the service writes, as plain tuples ready for `executemany`."""
    ops = connection.ops
    now = ops.adapt_datetimefield_value(utc_now())
    patients, conditions, medications = [], [], []
    for p in persons:
        row_id = p.index + 1
        patients.append(
            (
                row_id,
                cast.org.pk,
                cast.departments[p.department].pk,
                p.record_number,
                p.name,
                p.sex,
                ops.adapt_datefield_value(p.born),
                p.national_id,
                p.address,
                p.phone,
                p.tail,
                now,
            )
        )
        code, display = p.condition
        conditions.append(
            (row_id, row_id, code, display, ops.adapt_datefield_value(p.onset), "active")
        )
        name, dose, unit, route, frequency = p.medication
        medications.append(
            (
                row_id,
                row_id,
                name,
                dose,
                unit,
                route,
                frequency,
                ops.adapt_datefield_value(p.started),
                "active",
            )
        )
    return {"patients": patients, "conditions": conditions, "medications": medications}


def floor_insert(rows: dict[str, list[tuple[Any, ...]]], *, record: bool) -> float:
    """Seconds to insert the patient rows (and, with `record`, their condition and medication)
    with one `executemany` per table in one transaction."""
    _reset_floor_tables()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(INSERT_PATIENT, rows["patients"])
        if record:
            cur.executemany(INSERT_CONDITION, rows["conditions"])
            cur.executemany(INSERT_MEDICATION, rows["medications"])
    return time.perf_counter() - started


def floor_search(plan: list[Search], cast: Cast) -> float:
    """Seconds to answer every planned search with one plain SELECT on the floor tables."""
    started = time.perf_counter()
    with connection.cursor() as cur:
        for s in plan:
            value = s.q
            if s.kind == "name":
                value = f"%{value}%"
            elif s.kind == "condition":
                value = f"{value}%"
            cur.execute(FLOOR_SEARCH[s.kind], [cast.departments[s.department].pk, value])
            cur.fetchall()
    return time.perf_counter() - started


# --- checks --------------------------------------------------------------------------------


def _finds(actor: Actor, tail: str, pk: int) -> bool:
    """Whether searching the phone tail as `actor` lists patient `pk` on any page."""
    page_no = 1
    while True:
        page = selectors.search_patients(actor, Criteria(q=tail, page=page_no, size=200))
        if any(p.pk == pk for p in page.items):
            return True
        if not page.has_next:
            return False
        page_no += 1


def check(
    cast: Cast, persons: list[Person], searches_done: int, problems: list[str]
) -> dict[str, dict[str, Any]]:
    """Each check's verdict (`ok` and what was counted)."""
    org = cast.org
    n = len(persons)
    checks: dict[str, dict[str, Any]] = {}

    def verdict(name: str, ok: bool, **detail: Any) -> None:
        checks[name] = {"ok": bool(ok), **detail}

    per_dept = {code: sum(1 for p in persons if p.department == code) for code in cast.departments}
    counted = {
        "patients": pm.Patient.objects.filter(organisation=org).count(),
        "conditions": pm.Condition.objects.filter(organisation=org).count(),
        "medications": pm.Medication.objects.filter(organisation=org).count(),
        "versions": pm.RecordVersion.objects.filter(organisation=org).count(),
    }
    expected = {"patients": n, "conditions": n, "medications": n, "versions": 3 * n}
    verdict("counts", counted == expected, counted=counted, expected=expected)
    links = {
        code: pm.PatientDepartment.objects.filter(department=d).count()
        for code, d in cast.departments.items()
    }
    verdict("departments", links == per_dept, counted=links, expected=per_dept)

    verdict("searches", not problems, failures=len(problems), examples=problems[:10])

    step = max(1, n // CHECK_SAMPLE)
    sample = persons[::step]
    other = {c: next(d for d in cast.departments if d != c) for c in cast.departments}
    extra = 0
    missing, leaked = [], []
    for i, p in enumerate(sample):
        own = cast.nurses[p.department][i % NURSES_PER_DEPARTMENT]
        foreign = cast.nurses[other[p.department]][i % NURSES_PER_DEPARTMENT]
        pk = p.pk or 0
        if not _finds(own, p.tail, pk):
            missing.append(pk)
        if _finds(foreign, p.tail, pk):
            leaked.append(pk)
        extra += 2  # at least one page each
    verdict("phone_tail_own_department", not missing, sampled=len(sample), missing=missing[:10])
    verdict("phone_tail_not_other_department", not leaked, sampled=len(sample), leaked=leaked[:10])
    outsider_hits = [
        p.pk
        for p in sample[:50]
        if selectors.search_patients(cast.outsider, Criteria(q=p.national_id)).total
    ]
    verdict(
        "other_organisation_finds_nothing",
        not outsider_hits,
        sampled=min(50, len(sample)),
        found=outsider_hits[:10],
    )

    audited = {
        action: AuditEvent.objects.filter(
            organisation_id=org.pk, action=action, outcome="success"
        ).count()
        for action in ("patient.create", "conditions.create", "medications.create")
    }
    verdict(
        "audited_writes",
        audited == {"patient.create": n, "conditions.create": n, "medications.create": n},
        counted=audited,
    )
    searched = AuditEvent.objects.filter(organisation_id=org.pk, action="patient.search").count()
    verdict(
        "audited_searches",
        searched >= searches_done + extra,
        counted=searched,
        at_least=searches_done + extra,
    )
    started = time.perf_counter()
    chain = audit.verify()
    verdict(
        "audit_chain",
        chain.ok,
        events=chain.checked,
        problems=chain.problems[:5],
        seconds=round(time.perf_counter() - started, 3),
    )
    return checks


def refresh_statistics() -> str:
    """Give PostgreSQL's planner the statistics autovacuum would have gathered by now.

    Right after a bulk load the planner still believes the tables are nearly empty and picks
    plans that scan every patient (and a server may run with autovacuum off). SQLite is left as
    a deployment leaves it: nothing runs ANALYZE there.
    """
    if connection.vendor != "postgresql":
        return "none"
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return "ANALYZE after the create phase"


# --- the run --------------------------------------------------------------------------------


def _ratio(service: float, floor: float) -> float:
    return round(service / floor, 5) if floor > 0 else 0.0


def run(size: str, seed: int, emit: Emit | None = None) -> dict[str, Any]:
    plan_size = SIZES[size]
    say = emit or (lambda _text: None)
    phases: dict[str, float] = {}
    say(
        f"registry/{size} on {connection.vendor}: {plan_size.patients:,} patients, "
        f"{plan_size.searches:,} searches, seed {seed}"
    )

    t = time.perf_counter()
    cast = set_up(seed)
    persons = generate_people(plan_size.patients, seed)
    phases["setup"] = time.perf_counter() - t

    # Create, as the department's nurses take turns.
    say("creating patients through the services (create_patient + 2 x add_record)")
    progress = Progress("created", len(persons), emit, "patients")
    with CaptureQueriesContext(connection) as first:
        persons[0].pk = create_one(
            cast.nurses[persons[0].department][0],
            cast.departments[persons[0].department],
            persons[0],
        )
    started = time.perf_counter()
    for i, p in enumerate(persons[1:], start=1):
        nurse = cast.nurses[p.department][i % NURSES_PER_DEPARTMENT]
        p.pk = create_one(nurse, cast.departments[p.department], p)
        progress.tick(i + 1)
    create_seconds = time.perf_counter() - started
    created = len(persons) - 1  # the first one ran with query capture, outside the clock
    phases["create"] = create_seconds
    dept_of = {p.pk: p.department for p in persons if p.pk is not None}
    t = time.perf_counter()
    statistics = refresh_statistics()
    phases["statistics"] = time.perf_counter() - t

    # Search, as different users.
    plan = plan_searches(plan_size.searches, seed, cast, persons)
    say(
        f"searching: {len(plan):,} scoped searches as "
        f"{sum(len(v) for v in cast.nurses.values()) + sum(len(v) for v in cast.doctors.values())}"
        f" nurses and doctors"
    )
    progress = Progress("searched", len(plan), emit, "searches")
    latencies: dict[str, list[float]] = {kind: [] for kind, _w in SEARCH_MIX}
    problems: list[str] = []
    with CaptureQueriesContext(connection) as one_search:
        selectors.search_patients(plan[0].actor, Criteria(q=plan[0].q))
    search_started = time.perf_counter()
    for i, s in enumerate(plan, start=1):
        t = time.perf_counter()
        page = selectors.search_patients(s.actor, Criteria(q=s.q))
        latencies[s.kind].append(time.perf_counter() - t)
        problem = search_problem(s, page.total, [p.pk for p in page.items], dept_of)
        if problem:
            problems.append(problem)
        progress.tick(i)
    search_seconds = time.perf_counter() - search_started
    phases["search"] = search_seconds
    all_latencies = [x for values in latencies.values() for x in values]
    overall = latency_summary(all_latencies)

    # Floors: the same rows and the same searches by the plainest means, same database.
    say("floors: executemany of the same rows; one plain SELECT per search")
    t = time.perf_counter()
    rows = floor_rows(cast, persons)
    try:
        floor_patients_s = floor_insert(rows, record=False)
        floor_record_s = floor_insert(rows, record=True)
        floor_search_s = floor_search(plan, cast)
    finally:
        _drop_floor_tables()
    phases["floors"] = time.perf_counter() - t

    say("checking the results")
    t = time.perf_counter()
    checks = check(cast, persons, len(plan) + 1, problems)
    phases["checks"] = time.perf_counter() - t
    correct = all(c["ok"] for c in checks.values())

    patients_per_s = rate(created, create_seconds)
    searches_per_s = rate(len(plan), search_seconds)
    floors = {
        "executemany_patients": rate(len(persons), floor_patients_s),
        "executemany_record": rate(len(persons), floor_record_s),
        "raw_select_search": rate(len(plan), floor_search_s),
    }
    ratios = {
        "service_vs_executemany_patients": _ratio(patients_per_s, floors["executemany_patients"]),
        "service_vs_executemany_record": _ratio(patients_per_s, floors["executemany_record"]),
        "search_vs_raw_select": _ratio(searches_per_s, floors["raw_select_search"]),
    }
    say(
        f"  {patients_per_s:,.1f} patients/s; search p50 {overall['p50_ms']} ms, "
        f"p99 {overall['p99_ms']} ms; correct: {correct}"
    )
    return {
        "n": len(persons),
        "unit": "patients",
        "seconds": round(create_seconds + search_seconds, 3),
        "rate_per_s": patients_per_s,
        "searches": len(plan),
        "searches_per_s": searches_per_s,
        "search_p50_ms": overall["p50_ms"],
        "search_p99_ms": overall["p99_ms"],
        "metrics": {
            "patients_per_s": patients_per_s,
            "rows_per_s": rate(3 * created, create_seconds),
            "create_seconds": round(create_seconds, 3),
            "ms_per_patient": round(1000 * create_seconds / max(1, created), 3),
            "queries_per_patient": len(first.captured_queries),
            "searches_per_s": searches_per_s,
            "search_seconds": round(search_seconds, 3),
            "search": overall,
            "search_by_kind": {
                kind: latency_summary(values) for kind, values in latencies.items() if values
            },
            "queries_per_search": len(one_search.captured_queries),
        },
        "floors": floors,
        "floor_seconds": {
            "executemany_patients": round(floor_patients_s, 4),
            "executemany_record": round(floor_record_s, 4),
            "raw_select_search": round(floor_search_s, 4),
        },
        "ratios": ratios,
        "correct": correct,
        "checks": checks,
        "phases": {k: round(v, 3) for k, v in phases.items()},
        "statistics": statistics,
        "notes": (
            "rate_per_s is patients created per second through services.create_patient plus two "
            "services.add_record calls (a condition and a medication), each its own transaction. "
            "Floors run in the same database: executemany_patients writes the same patient rows "
            "with one executemany in one transaction; executemany_record adds their condition and "
            "medication rows; raw_select_search answers each planned search with one indexed "
            "SELECT ... LIMIT 25 (no count, no scoping join, no audit). Ratios are service rate "
            "over floor rate."
        ),
    }

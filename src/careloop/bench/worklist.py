"""`careloop bench worklist`: a nurse's and a doctor's "my work today" with 100k patients and
300k alerts and tasks: the service (alerts.selectors.worklist) and the page over HTTP on
loopback (`careloop serve` in a child process), both as p50/p99 over many requests with
varying filters and pages."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from careloop.bench.harness import Emit, latency_summary
from careloop.bench.reminders import _say, refresh_statistics

ORG_CODE = "bench-worklist"
PASSWORD = "Bench-worklist-2026!"  # noqa: S105 - a scratch database's account


@dataclass(frozen=True)
class Size:
    patients: int
    items: int  # alerts + tasks
    requests: int


SIZES = {
    "tiny": Size(2_000, 6_000, 60),  # for the test suite
    "small": Size(100_000, 300_000, 400),
    "full": Size(100_000, 300_000, 2_000),
}
RULES = [
    ("bp-crisis", "urgent", "critical"),
    ("glucose-low", "urgent", "high"),
    ("bp-high-twice", "urgent", "high"),
    ("phq9-item9", "stat", "critical"),
    ("missed-doses", "routine", "moderate"),
    ("glucose-absent-3d", "routine", "moderate"),
    ("bp-trend-up", "routine", "moderate"),
]


def _set_up(size: Size, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.db import transaction

    from careloop.accounts import services as accounts
    from careloop.accounts.models import CareTeam, CareTeamMember, Department, Organisation
    from careloop.accounts.roles import Role
    from careloop.alerts import models as am
    from careloop.kit.clock import utc_now
    from careloop.patients import models as pm

    rng = random.Random(seed)
    org = Organisation.objects.create(name="Bench Worklist Hospital", code=ORG_CODE)
    depts = [
        Department.objects.create(organisation=org, code=code, name=name, name_en=en)
        for code, name, en in (
            ("cardiology", "心内科", "Cardiology"),
            ("endocrinology", "内分泌科", "Endocrinology"),
        )
    ]
    staff: dict[str, Any] = {}
    teams = []
    for dept in depts:
        for role in (Role.NURSE, Role.DOCTOR):
            for n in range(3):
                name = f"{role}{n}.{dept.code}"
                staff[name] = accounts.create_staff(
                    organisation_id=org.pk,
                    username=name,
                    password=PASSWORD,
                    role=role,
                    department_ids=[dept.pk],
                    display_name=name,
                )
        for n in range(3):
            team = CareTeam.objects.create(
                department=dept,
                name=f"{dept.code}-{n}",
                responsible_doctor=staff[f"{Role.DOCTOR}{n}.{dept.code}"],
            )
            CareTeamMember.objects.create(team=team, staff=staff[f"{Role.NURSE}{n}.{dept.code}"])
            teams.append(team)
    _say(emit, f"set-up: {size.patients:,} patients, {size.items:,} alerts and tasks")
    now = utc_now()
    patients: list[tuple[int, Any]] = []
    for start in range(0, size.patients, 5000):
        batch = [
            pm.Patient(
                organisation_id=org.pk,
                name=f"患者{start + i}",
                sex=rng.choice(["male", "female"]),
                date_of_birth=date(1940 + rng.randint(0, 45), 1 + rng.randint(0, 11), 1),
            )
            for i in range(min(5000, size.patients - start))
        ]
        made = pm.Patient.objects.bulk_create(batch)
        links = []
        for p in made:
            team = rng.choice(teams)
            links.append(
                pm.PatientDepartment(
                    patient_id=p.pk, department_id=team.department_id, care_team=team
                )
            )
            patients.append((p.pk, team))
        pm.PatientDepartment.objects.bulk_create(links)
    alerts: list[Any] = []
    tasks: list[Any] = []
    nurses = {
        t.pk: t.memberships.values_list("staff_id", flat=True).order_by("id")[0] for t in teams
    }
    for i in range(size.items):
        pid, team = patients[rng.randrange(len(patients))]
        closed = rng.random() < 0.9  # most work is done; the worklist reads the open rest
        if rng.random() < 0.4:
            rule, priority, severity = rng.choice(RULES)
            status = rng.choice(["resolved", "dismissed"]) if closed else "open"
            alerts.append(
                am.Alert(
                    organisation_id=org.pk,
                    patient_id=pid,
                    department_id=team.department_id,
                    rule=rule,
                    stage=f"b{i}",  # one active alert per patient and rule: distinct stages
                    key=f"bench:{i}",
                    status=status,
                    severity=severity,
                    priority=priority,
                    priority_rank=am.PRIORITY_RANK[priority],
                    performer_role="doctor" if priority != "routine" else "nurse",
                    owner_id=(
                        team.responsible_doctor_id if priority != "routine" else nurses[team.pk]
                    ),
                    text_zh="血压 185/115 mmHg",
                    text_en="Blood pressure 185/115 mmHg",
                    triggered_at=now - timedelta(hours=rng.randint(1, 200)),
                    raised_at=now - timedelta(hours=rng.randint(1, 200)),
                    due_at=now + timedelta(hours=rng.randint(-100, 48)),
                )
            )
        else:
            tasks.append(
                am.Task(
                    organisation_id=org.pk,
                    patient_id=pid,
                    department_id=team.department_id,
                    kind=rng.choice(["call_patient", "review", "fix_contact"]),
                    assignee_id=nurses[team.pk] if rng.random() < 0.8 else None,
                    status="done" if closed else "open",
                    reason="未确认服药",
                    source_key=f"bench:{i}",
                    due_at=now + timedelta(hours=rng.randint(-72, 72)),
                )
            )
    with transaction.atomic():
        am.Alert.objects.bulk_create(alerts, batch_size=5000)
        am.Task.objects.bulk_create(tasks, batch_size=5000)
    refresh_statistics()
    return {"org": org, "departments": depts, "staff": staff}


def _criteria(rng: random.Random, depts: list[Any]) -> dict[str, Any]:
    """A mix of what people ask for: the default view, their department, my work, a priority,
    unassigned work, a later page."""
    return rng.choice(
        [
            {},
            {"department": rng.choice(depts).pk},
            {"owner": "me"},
            {"priority": "urgent"},
            {"owner": "unassigned"},
            {"page": 2},
            {"condition": "I10"},
        ]
    )


def _label(raw: dict[str, Any]) -> str:
    return ",".join(sorted(raw)) or "default"


def _service(
    world: dict[str, Any], n: int, seed: int, by_label: dict[str, list[float]] | None = None
) -> list[float]:
    from careloop.accounts.actor import Actor
    from careloop.alerts import selectors

    rng = random.Random(seed)
    users = [u for name, u in world["staff"].items() if "cardiology" in name]
    times: list[float] = []
    for _ in range(n):
        actor = Actor(user=rng.choice(users), source="bench")
        raw = _criteria(rng, [d for d in world["departments"] if d.code == "cardiology"])
        criteria = selectors.WorklistCriteria(**raw)
        t = time.perf_counter()
        page = selectors.worklist(actor, criteria)
        list(page.items)
        took = time.perf_counter() - t
        times.append(took)
        if by_label is not None:
            by_label.setdefault(_label(raw), []).append(took)
    return times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(world: dict[str, Any], n: int, seed: int, emit: Emit | None) -> list[float]:
    from django.test import Client

    rng = random.Random(seed)
    port = _free_port()
    user = world["staff"]["nurse0.cardiology"]
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    server = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-m", "careloop.cli", "serve", "--port", str(port), "--threads", "4"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.3)
        _say(emit, f"page: {n} requests of /worklist/ on {base}")
        dept = [d for d in world["departments"] if d.code == "cardiology"][0]
        times: list[float] = []
        for i in range(n + 10):
            raw = _criteria(rng, [dept])
            query = "&".join(f"{k}={v}" for k, v in raw.items())
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{base}/worklist/?{query}", headers={"Cookie": cookie}
            )
            t = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                body = response.read()
                status = response.status
            took = time.perf_counter() - t
            if status != 200 or b"worklist" not in body.lower():
                raise RuntimeError(f"the worklist page answered {status}")
            if i >= 10:  # the first requests warm the server up
                times.append(took)
        return times
    finally:
        server.terminate()
        server.wait(timeout=30)


def _check(world: dict[str, Any]) -> dict[str, Any]:
    """The page's figures against plain counts: the nurse's urgent section holds every active
    urgent alert of her department, most urgent first."""
    from careloop.accounts.actor import Actor
    from careloop.alerts import models as am
    from careloop.alerts import selectors

    actor = Actor(user=world["staff"]["nurse0.cardiology"], source="bench")
    page = selectors.worklist(actor, selectors.WorklistCriteria(size=50))
    expected = am.Alert.objects.filter(
        department_id__in=actor.department_ids,
        status__in=am.Alert.ACTIVE,
        priority_rank__lte=am.PRIORITY_RANK["urgent"],
    ).count()
    ranks = [i.obj.priority_rank for i in page.items if i.kind == "alert" and i.section == "urgent"]
    return {
        "urgent_count": page.counts.get("urgent"),
        "urgent_expected": min(expected, selectors.SECTION_LIMIT),
        "urgent_first": bool(page.items) and page.items[0].section == "urgent",
        "ordered": ranks == sorted(ranks),
    }


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    plan = SIZES[size]
    t = time.perf_counter()
    world = _set_up(plan, seed, emit)
    set_up = time.perf_counter() - t
    _say(emit, f"service: {plan.requests} worklist queries")
    _service(world, 20, seed)  # warm caches
    by_label: dict[str, list[float]] = {}
    service = _service(world, plan.requests, seed + 1, by_label)
    page = _http(world, plan.requests // 2, seed + 2, emit)
    checks = _check(world)
    s = latency_summary(service)
    p = latency_summary(page)
    return {
        "n": plan.requests,
        "seconds": round(sum(service), 3),
        "rate_per_s": round(len(service) / sum(service), 1),
        "patients": plan.patients,
        "alerts_and_tasks": plan.items,
        "set_up_seconds": round(set_up, 1),
        "service": s,
        "service_by_filter": {k: latency_summary(v) for k, v in sorted(by_label.items())},
        "page": p,
        "floors": {},
        "ratios": {},
        "targets": {
            "service_p99": {
                "target": "<= 10 ms",
                "measured": s["p99_ms"],
                "met": s["p99_ms"] <= 10,
            },
            "page_p99": {"target": "<= 50 ms", "measured": p["p99_ms"], "met": p["p99_ms"] <= 50},
        },
        "checks": {
            "urgent_section": {
                "ok": checks["urgent_count"] == checks["urgent_expected"]
                and checks["urgent_first"]
                and checks["ordered"],
                **checks,
            }
        },
        "correct": checks["urgent_count"] == checks["urgent_expected"]
        and checks["urgent_first"]
        and checks["ordered"],
    }

"""`careloop bench rules`: the rule engine on its own and against SQL.

1. Incremental: states built from a history of readings, then new readings fed one by one in
   time order across all patients (one core), as ingest does.
2. Full recompute of one rule (≥ 2 readings ≥ 180/110 within 24 h) over the stored history,
   reading it from the database, against a hand-written SQL window query for the same rule in
   the same run; the two sets of (patient, time) must be identical.
3. The absence sweep with 100k patients expected to send glucose daily: the first sweep (looks
   at everyone) and the steady-state sweep a minute later (looks only at gaps that reached
   three days since the previous run).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from careloop.bench.harness import Emit, latency_summary, rate
from careloop.bench.reminders import _say, refresh_statistics

ORG_CODE = "bench-rules"
DAY = 86400


@dataclass(frozen=True)
class Size:
    patients: int
    history: int
    new: int
    sweep_patients: int


SIZES = {
    "tiny": Size(200, 20_000, 4_000, 2_000),  # for the test suite
    "small": Size(10_000, 1_000_000, 200_000, 100_000),
    "full": Size(10_000, 1_000_000, 200_000, 100_000),
}


def synthetic_events(patients: int, count: int, start: int, days: int, seed: int) -> list[Any]:
    """Readings of all kinds the default rules listen to, in time order across patients."""
    from careloop.rules import Event

    rng = random.Random(seed)
    base = {pid: (rng.gauss(132, 12), rng.random() < 0.3) for pid in range(1, patients + 1)}
    span = days * DAY
    events = []
    for i in range(count):
        pid = rng.randint(1, patients)
        at = start + int(span * i / count) + rng.randint(0, 59)
        day, hour = divmod(at + 8 * 3600, DAY)
        hour //= 3600
        local_day = date(1970, 1, 1).toordinal() + day
        roll = rng.random()
        sys_base, diabetic = base[pid]
        if roll < 0.5:
            s = rng.gauss(sys_base, 14)
            events.append(
                Event(pid, "bp", at, local_day, hour, s, s * 0.62 + rng.gauss(0, 6), "", (), i + 1)
            )
        elif roll < 0.75:
            g = max(2.0, rng.gauss(7.5 if diabetic else 5.6, 1.5))
            events.append(Event(pid, "glucose", at, local_day, hour, g, None, "fasting", (), i + 1))
        elif roll < 0.9:
            events.append(
                Event(
                    pid, "heart_rate", at, local_day, hour, rng.gauss(76, 14), None, "", (), i + 1
                )
            )
        else:
            events.append(
                Event(pid, "weight", at, local_day, hour, rng.gauss(70, 1.5), None, "", (), i + 1)
            )
    return events


def incremental(size: Size, seed: int, emit: Emit | None) -> dict[str, Any]:
    from careloop.rules import RuleSet

    ruleset = RuleSet.default()
    now = int(datetime.now(UTC).timestamp())
    history = synthetic_events(size.patients, size.history, now - 120 * DAY, 100, seed)
    new = synthetic_events(size.patients, size.new, now - 20 * DAY, 20, seed + 1)
    by_patient: dict[int, list[Any]] = {}
    for event in history:
        by_patient.setdefault(event.patient_id, []).append(event)
    _say(emit, f"replaying {len(history):,} history readings for {len(by_patient):,} patients")
    t = time.perf_counter()
    states = {}
    fired_history = 0
    for pid, events in by_patient.items():
        state, fired = ruleset.replay(events)
        states[pid] = state
        fired_history += len(fired)
    replay_seconds = time.perf_counter() - t
    for pid in range(1, size.patients + 1):
        states.setdefault(pid, ruleset.new_state())
    _say(emit, f"feeding {len(new):,} new readings one by one")
    feed = ruleset.feed
    t = time.perf_counter()
    outputs = 0
    for event in new:
        outputs += len(feed(states[event.patient_id], event))
    feed_seconds = time.perf_counter() - t
    return {
        "history": len(history),
        "new": len(new),
        "replay_per_s": round(rate(len(history), replay_seconds), 1),
        "incremental_per_s": round(rate(len(new), feed_seconds), 1),
        "incremental_seconds": round(feed_seconds, 3),
        "fires_history": fired_history,
        "outputs_new": outputs,
    }


def _store_history(org_id: int, patient_ids: list[int], events: list[Any]) -> int:
    """The history as stored readings (bp only: the rule compared with SQL reads bp)."""
    from django.db import connection, transaction

    from careloop.observations import models as om

    table = om.Observation._meta.db_table
    sqlite = connection.vendor == "sqlite"
    rows = []
    for e in events:
        if e.kind != "bp":
            continue
        moment = datetime.fromtimestamp(e.at, UTC)
        at: Any = str(moment.replace(tzinfo=None)) if sqlite else moment
        rows.append(
            (
                org_id, patient_ids[e.patient_id - 1], "bp", "85354-9", round(e.value),
                round(e.value2), "mm[Hg]", "", "device", "", at, "Asia/Shanghai", e.day, e.hour,
                "", at,
            )
        )  # fmt: skip
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} (organisation_id, patient_id, kind, code, value, value2, "  # noqa: S608
            "unit, context, source, device_id, effective_at, time_zone, local_day, local_hour, "
            "original, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )
    return len(rows)


COUNT_RULE = {
    "code": "bench-bp-high-twice",
    "kind": "count_window",
    "event": "bp",
    "condition": "value >= 180 or value2 >= 110",
    "count": 2,
    "window": "24h",
    "severity": "high",
    "priority": "urgent",
    "route": "doctor",
    "sla": "1h",
    "dedupe": "0s",
    "text": {"zh-hans": "24小时内两次血压≥180/110", "en": "Two readings ≥ 180/110 within 24 h"},
}


def _sql_window(org_id: int) -> set[tuple[int, int]]:
    """The same rule as one SQL window query: each qualifying reading with another qualifying
    reading of the same patient in the 24 hours up to it."""
    from django.db import connection

    from careloop.observations import models as om

    table = om.Observation._meta.db_table
    epoch = (
        "CAST(strftime('%%s', substr(effective_at, 1, 19)) AS INTEGER)"
        if connection.vendor == "sqlite"
        else "CAST(extract(epoch FROM effective_at) AS BIGINT)"
    )
    sql = f"""
        SELECT patient_id, t FROM (
            SELECT patient_id, t, COUNT(*) OVER (
                PARTITION BY patient_id ORDER BY t RANGE BETWEEN 86400 PRECEDING AND CURRENT ROW
            ) AS n
            FROM (
                SELECT patient_id, {epoch} AS t FROM {table}
                WHERE organisation_id = %s AND kind = 'bp' AND (value >= 180 OR value2 >= 110)
            ) q
        ) w WHERE n >= 2
    """  # noqa: S608 - fixed names
    with connection.cursor() as cur:
        cur.execute(sql, [org_id])
        return {(int(pid), int(t)) for pid, t in cur.fetchall()}


def _engine_recompute(org_id: int, ruleset: Any) -> set[tuple[int, int]]:
    """The rule engine over the stored history, reading only the rows its condition can act
    on (the rule's own SQL predicate), every patient replayed from a fresh state."""
    from careloop.observations import selectors as observation_selectors
    from careloop.rules import Fire

    where = ruleset.prefilter(COUNT_RULE["code"])
    found: set[tuple[int, int]] = set()
    for pid, events in observation_selectors.organisation_history(org_id, "bp", where):
        _state, fired = ruleset.replay(events)
        found.update((pid, f.at) for f in fired if isinstance(f, Fire))
    return found


def _add_patients(org_id: int, dept_id: int, count: int) -> list[int]:
    """Bare patient rows, written in bulk (setting up is not measured)."""
    from careloop.patients import models as pm

    made: list[int] = []
    for start in range(0, count, 5000):
        batch = [
            pm.Patient(
                organisation_id=org_id,
                name=f"患者{start + i}",
                date_of_birth=date(1950 + (start + i) % 40, 1, 1),
            )
            for i in range(min(5000, count - start))
        ]
        made += [p.pk for p in pm.Patient.objects.bulk_create(batch)]
        pm.PatientDepartment.objects.bulk_create(
            [pm.PatientDepartment(patient_id=p.pk, department_id=dept_id) for p in batch]
        )
    return made


def sweep(org_id: int, dept_id: int, size: Size, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.db import transaction

    from careloop.alerts import models as am
    from careloop.alerts import sweeps
    from careloop.kit.clock import utc_now
    from careloop.observations import models as om

    _say(emit, f"absence sweep: {size.sweep_patients:,} patients expected to send glucose daily")
    rng = random.Random(seed)
    now = utc_now()
    pids = _add_patients(org_id, dept_id, size.sweep_patients)
    rows = []
    absent = 0
    for pid in pids:
        since = now - timedelta(days=60)
        if rng.random() < 0.01:
            last = now - timedelta(days=3, hours=rng.randint(1, 48))
            absent += 1
        else:
            last = now - timedelta(hours=rng.randint(0, 47))
        rows.append(
            om.Latest(
                patient_id=pid,
                organisation_id=org_id,
                kind="glucose",
                last_at=last,
                value=6.0,
                context="fasting",
                expected_since=since,
            )
        )
    with transaction.atomic():
        om.Latest.objects.bulk_create(rows, batch_size=5000)
    refresh_statistics()
    t = time.perf_counter()
    first = sweeps.absence(now, organisation_id=org_id)
    first_seconds = time.perf_counter() - t
    steady: list[float] = []
    again = 0
    for minute in range(1, 21):
        t = time.perf_counter()
        again += sweeps.absence(now + timedelta(minutes=minute), organisation_id=org_id)
        steady.append(time.perf_counter() - t)
    alerts = am.Alert.objects.filter(organisation_id=org_id, rule="glucose-absent-3d").count()
    return {
        "patients": size.sweep_patients,
        "absent": absent,
        "first_sweep_ms": round(first_seconds * 1000, 2),
        "first_sweep_alerts": first,
        "steady_sweep": latency_summary(steady),
        "steady_alerts": again,
        "alerts_stored": alerts,
        "one_alert_per_gap": alerts == absent,
    }


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from careloop.accounts.models import Department, Organisation

    plan = SIZES[size]
    result: dict[str, Any] = {}
    inc = incremental(plan, seed, emit)
    result["incremental"] = inc

    org = Organisation.objects.create(name="Bench Rules Hospital", code=ORG_CODE)
    dept = Department.objects.create(
        organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
    )
    _say(emit, "storing the history's blood pressure readings for the recompute comparison")
    patient_ids = _add_patients(org.pk, dept.pk, plan.patients)
    now = int(datetime.now(UTC).timestamp())
    history = synthetic_events(plan.patients, plan.history, now - 120 * DAY, 100, seed)
    stored = _store_history(org.pk, patient_ids, history)
    refresh_statistics()
    from careloop.rules import RuleSet

    ruleset = RuleSet.compile([COUNT_RULE])  # compiled once, as the service does
    t = time.perf_counter()
    engine = _engine_recompute(org.pk, ruleset)
    engine_seconds = time.perf_counter() - t
    t = time.perf_counter()
    sql = _sql_window(org.pk)
    sql_seconds = time.perf_counter() - t
    result["recompute"] = {
        "readings": stored,
        "engine_seconds": round(engine_seconds, 3),
        "sql_window_seconds": round(sql_seconds, 3),
        "fires": len(engine),
        "identical": engine == sql,
    }
    result["sweep"] = sweep(org.pk, dept.pk, plan, seed, emit)

    inc_rate = inc["incremental_per_s"]
    steady_p99 = result["sweep"]["steady_sweep"]["p99_ms"]
    result.update(
        {
            "n": inc["new"],
            "seconds": inc["incremental_seconds"],
            "rate_per_s": inc_rate,
            "floors": {"sql_window_readings_per_s": round(rate(stored, sql_seconds), 1)},
            "ratios": {
                "recompute_to_sql_window": round(sql_seconds / engine_seconds, 4)
                if engine_seconds
                else 0.0
            },
            "targets": {
                "incremental": {
                    "target": ">= 150,000 readings/s per core",
                    "measured": inc_rate,
                    "met": inc_rate >= 150_000,
                },
                "absence_sweep": {
                    "target": "<= 50 ms for the patients (steady state p99)",
                    "measured": round(steady_p99, 2),
                    "met": steady_p99 <= 50,
                },
                "recompute_vs_sql": {
                    "target": "no slower than the SQL window query",
                    "measured": result["recompute"]["engine_seconds"],
                    "met": engine_seconds <= sql_seconds,
                },
            },
            "correct": result["recompute"]["identical"] and result["sweep"]["one_alert_per_gap"],
        }
    )
    return result

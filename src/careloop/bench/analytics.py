"""`careloop bench analytics`: the adherence and dashboard figures of a whole population.

Set-up (not timed for the targets): `careloop.analytics.synthetic.generate` writes an
organisation with `patients` patients, 7–12 dispensings each over the last year, about ten
blood-pressure readings each, follow-up tasks and appointments.

Measured, in the same process and database:

1. PDC of the full population, reading the fills included (`careloop.analytics.pdc.pdc`: one
   aggregate query, numpy), the median of three runs: seconds and fills/s;
2. the floor: a plain Python loop computing the same PDCs over tuples grouped beforehand by
   patient, class and drug (grouping not timed), and the ratio of its time to (1);
3. the control cascade (registry "htn_cascade") for one month and for 12 months, after a full
   state refresh (`careloop.analytics.state.refresh`), and the completion rate (registry
   "completion") for one month and 12 months;
4. small and tiny sizes only: a naive per-patient loop over the ORM (one query per patient) for
   contrast.

Checks: the floor and the naive loop find the same PDC for every patient and class.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from careloop.bench.harness import Emit, rate

TARGET_SECONDS = 2.0
TARGET_RATIO = 0.5
TARGET_METRIC_MS = 300.0
REFRESH_LIMIT_S = 600.0  # a state refresh taking longer is stopped and reported
RUNS = 3
TODAY = date(2026, 6, 15)  # a fixed day: the same seed gives the same data on any day


@dataclass(frozen=True)
class Size:
    patients: int
    naive: bool  # measure the naive per-patient ORM loop


SIZES = {
    "tiny": Size(300, True),  # for the test suite
    "small": Size(10_000, True),
    "full": Size(100_000, False),
}

# (patient → class → [(drug, day, supply)] sorted by drug then day), the floor's input.
Grouped = dict[int, dict[int, list[tuple[int, int, int]]]]
Answer = dict[tuple[int, str], tuple[int, int, int]]  # (patient, class) → covered, days, pdc


def _say(emit: Emit | None, text: str) -> None:
    if emit is not None:
        emit(text)


def group(fills: Any) -> Grouped:
    grouped: Grouped = defaultdict(lambda: defaultdict(list))
    for p, c, g, d, s in zip(
        fills.patient.tolist(),
        fills.klass.tolist(),
        fills.drug.tolist(),
        fills.day.tolist(),
        fills.supply.tolist(),
        strict=True,
    ):
        grouped[p][c].append((g, d, s))
    for classes in grouped.values():
        for rows in classes.values():
            rows.sort()
    return grouped


def loop_pdc(grouped: Grouped, classes: list[str], lo: int, hi: int) -> Answer:
    """PDC in plain Python: shift forward per drug, then the union of the class's supplies."""
    out: Answer = {}
    for patient, by_class in grouped.items():
        for cls, fills in by_class.items():
            intervals = []
            drug_now, free = -1, 0
            first_day, last_day = hi + 1, lo - 1
            for drug, day, supply in fills:
                if day < lo or day > hi:
                    continue
                if drug != drug_now:
                    drug_now, free = drug, day
                start = day if day > free else free
                free = start + supply
                intervals.append((start, min(start + supply - 1, hi)))
                first_day, last_day = min(first_day, day), max(last_day, day)
            if not intervals:
                continue
            intervals.sort()
            covered, reach = 0, lo - 1
            for start, end in intervals:
                if end > reach and start <= end:
                    covered += end - max(start - 1, reach)
                    reach = end
            days = hi - first_day + 1
            pdc = (covered * 20000 + days) // (2 * days)
            out[(patient, classes[cls])] = (covered, days, pdc)
    return out


def _answers(result: Any) -> Answer:
    return {
        (int(p), result.classes[int(c)]): (int(cov), int(days), int(pdc))
        for p, c, cov, days, pdc in zip(
            result.patient, result.klass, result.covered, result.days, result.pdc, strict=True
        )
    }


def naive_orm(org_id: int, patient_ids: list[int], first: date, last: date) -> Answer:
    """One query per patient through the ORM, then the loop above: what a first attempt does."""
    from careloop.analytics import pdc
    from careloop.patients.models import Dispense

    classify = lru_cache(maxsize=None)(pdc.classify)
    lo, hi = pdc.day_number(first), pdc.day_number(last)
    out: Answer = {}
    for pid in patient_ids:
        classes: list[str] = []
        drugs: dict[str, int] = {}
        grouped: Grouped = {pid: defaultdict(list)}
        rows = Dispense.objects.filter(
            organisation_id=org_id,
            patient_id=pid,
            status=Dispense.Status.COMPLETED,
            deleted_at__isnull=True,
            when_handed_over__gte=first,
            when_handed_over__lte=last,
        ).values_list("drug_class", "code", "name", "when_handed_over", "days_supply")
        for drug_class, code, name, handed, supply in rows:
            for cls in classify(drug_class, code, name):
                if cls not in classes:
                    classes.append(cls)
                drug = drugs.setdefault(pdc.drug_key(code, name), len(drugs))
                day = pdc.day_number(handed) if handed else lo - 1  # undated: outside
                grouped[pid][classes.index(cls)].append((drug, day, supply))
        for fills in grouped[pid].values():
            fills.sort()
        out.update(loop_pdc(grouped, classes, lo, hi))
    return out


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _metric_timings(cohort: Any, key: str, months: list[date]) -> dict[str, Any]:
    """Milliseconds to compute a registered metric for one month and for 12 months."""
    try:
        from careloop.analytics.registry import all_metrics

        metric = all_metrics().get(key)
    except ImportError as exc:  # a metrics module not importable yet
        return {"skipped": f"metrics not importable: {exc}"}
    if metric is None:
        return {"skipped": f"metric {key!r} is not registered"}
    one, values = _timed(lambda: metric.compute(cohort, months[-1:]))
    twelve, _ = _timed(lambda: metric.compute(cohort, months))
    headline = values.get(months[-1], {}).get(metric.headline) if metric.headline else None
    return {
        "one_month_ms": round(one * 1000, 1),
        "twelve_months_ms": round(twelve * 1000, 1),
        "headline": None if headline is None else [headline.numerator, headline.denominator],
    }


def _refresh(org_id: int, today: date, emit: Emit | None = None) -> dict[str, Any]:
    try:
        from careloop.analytics import state
    except ImportError as exc:
        return {"skipped": f"careloop.analytics.state not importable: {exc}"}
    refresh = getattr(state, "refresh", None)
    if refresh is None:
        return {"skipped": "careloop.analytics.state has no refresh()"}
    said = [0]

    def progress(done: int, total: int) -> None:
        if emit is not None and (done - said[0] >= max(1, total // 10) or done == total):
            said[0] = done
            emit(f"  state refresh: {done:,}/{total:,} patients")

    from django.db import DatabaseError, connection

    connection.ensure_connection()
    raw = connection.connection  # connections are per thread: take this one's along
    stop = raw.interrupt if connection.vendor == "sqlite" else raw.cancel

    def cancel() -> None:  # stop the running statement
        stop()

    timer = threading.Timer(REFRESH_LIMIT_S, cancel)
    timer.start()
    try:
        seconds, _ = _timed(lambda: refresh(org_id, full=True, today=today, progress=progress))
    except DatabaseError as exc:
        return {"skipped": f"state refresh stopped after {REFRESH_LIMIT_S:.0f} s ({exc})"}
    finally:
        timer.cancel()
    return {"seconds": round(seconds, 3)}


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.db import connection

    from careloop.analytics import pdc, synthetic
    from careloop.analytics.registry import Cohort, last_months
    from careloop.bench.reminders import refresh_statistics

    plan = SIZES[size]
    _say(emit, f"set-up: {plan.patients:,} synthetic patients")
    setup_s, population = _timed(
        lambda: synthetic.generate(
            plan.patients, seed=seed, today=TODAY, code="bench-analytics", emit=emit
        )
    )
    statistics_note = refresh_statistics()
    org_id = population.organisation_id
    first, last = pdc.rolling_period(TODAY)
    lo, hi = pdc.day_number(first), pdc.day_number(last)

    _say(emit, "PDC: full population, reading the fills included")
    runs = []
    result: Any = None
    for _ in range(RUNS):
        seconds, result = _timed(lambda: pdc.pdc(org_id, first, last))
        runs.append(seconds)
    seconds = statistics.median(runs)
    read_s, fills = _timed(lambda: pdc.read_fills(org_id, first, last))
    compute_s, _ = _timed(lambda: pdc.compute(fills, first, last))
    n = len(fills)
    _say(emit, f"  {n:,} fills in {seconds:.3f} s ({rate(n, seconds):,.0f}/s)")

    _say(emit, "floor: plain Python loop over pre-grouped tuples")
    grouped = group(fills)
    floor_runs = []
    floor: Answer = {}
    for _ in range(RUNS):
        floor_s, floor = _timed(lambda: loop_pdc(grouped, fills.classes, lo, hi))
        floor_runs.append(floor_s)
    floor_s = statistics.median(floor_runs)
    ratio = round(floor_s / seconds, 4) if seconds else 0.0
    _say(emit, f"  floor {floor_s:.3f} s; ratio {ratio}")
    answers = _answers(result)
    eligible, adherent = result.patient_status()

    cohort = Cohort(organisation_id=org_id, today=TODAY)
    months = last_months(TODAY, 12)
    _say(emit, "state refresh, cascade and completion")
    refreshed = _refresh(org_id, TODAY, emit)
    if "skipped" in refreshed:
        cascade: dict[str, Any] = {"skipped": refreshed["skipped"]}
    else:
        cascade = _metric_timings(cohort, "htn_cascade", months)
    completion = _metric_timings(cohort, "completion", months)
    adherence = _metric_timings(cohort, "pdc", months)

    naive: dict[str, Any] = {"skipped": "measured at the small and tiny sizes only"}
    naive_ok = True
    if plan.naive:
        _say(emit, "naive: one ORM query per patient")
        naive_s, naive_answers = _timed(
            lambda: naive_orm(org_id, population.patient_ids, first, last)
        )
        naive_ok = naive_answers == answers
        naive = {
            "seconds": round(naive_s, 3),
            "patients_per_s": rate(len(population.patient_ids), naive_s),
            "vectorised_speedup": round(naive_s / seconds, 1) if seconds else None,
            "same_answers": naive_ok,
        }
        _say(emit, f"  naive {naive_s:.3f} s")

    def target(met: bool, wanted: str, measured: Any) -> dict[str, Any]:
        return {"target": wanted, "measured": measured, "met": met}

    def ms_target(found: dict[str, Any]) -> dict[str, Any]:
        if "skipped" in found:
            return target(False, f"<= {TARGET_METRIC_MS:.0f} ms", found["skipped"])
        return target(
            found["one_month_ms"] <= TARGET_METRIC_MS,
            f"<= {TARGET_METRIC_MS:.0f} ms (one month)",
            found["one_month_ms"],
        )

    checks: dict[str, dict[str, Any]] = {
        "floor_same_answers": {"ok": floor == answers, "pairs": len(answers)},
        "naive_same_answers": {"ok": naive_ok},
        "population": {
            "ok": population.counts["dispenses"] >= 7 * plan.patients,
            "counts": population.counts,
        },
        "some_adherent_some_not": {
            "ok": 0 < len(adherent) < len(eligible),
            "eligible": len(eligible),
            "adherent": len(adherent),
        },
    }
    return {
        "n": n,
        "seconds": round(seconds, 4),
        "rate_per_s": rate(n, seconds),
        "patients": plan.patients,
        "pdc": {
            "runs_s": [round(r, 4) for r in runs],
            "read_s": round(read_s, 4),
            "compute_s": round(compute_s, 4),
            "patient_class_pairs": len(answers),
            "eligible_patients": len(eligible),
            "adherent_patients": len(adherent),
            "period": [first.isoformat(), last.isoformat()],
        },
        "floors": {"python_loop_pregrouped_per_s": rate(n, floor_s)},
        "floor_seconds": round(floor_s, 4),
        "floor_runs_s": [round(r, 4) for r in floor_runs],
        "ratios": {"speed_vs_python_loop": ratio},
        "state_refresh": refreshed,
        "cascade": cascade,
        "completion": completion,
        "pdc_metric": adherence,
        "naive_orm": naive,
        "setup_s": round(setup_s, 1),
        "statistics": statistics_note,
        "targets": {
            "pdc_seconds": target(seconds <= TARGET_SECONDS, f"<= {TARGET_SECONDS} s", seconds),
            "pdc_vs_floor": target(ratio >= TARGET_RATIO, f">= {TARGET_RATIO}x", ratio),
            "cascade_ms": ms_target(cascade),
            "completion_ms": ms_target(completion),
        },
        "database_vendor": connection.vendor,
        "checks": checks,
        "correct": all(c["ok"] for c in checks.values()),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": (
            "seconds is the median of three full-population PDC runs including the read of "
            "the fills (one aggregate query). The floor is a plain Python loop over tuples "
            "grouped by patient, class and drug beforehand (grouping not timed); the ratio is "
            "floor seconds over PDC seconds (>= 1 means faster than the floor). Metric timings "
            "follow a full state refresh."
        ),
    }

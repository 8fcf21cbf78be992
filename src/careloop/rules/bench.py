"""Micro benchmark of the rule engine: feed() over seeded synthetic events, on one core.

Pure (no database, no files but the shipped rules): ``measure(n_events, seed)`` returns a dict
the `careloop bench rules` command prints. The events look like a cohort of hypertensive and
diabetic patients at home in Asia/Shanghai (UTC+8, no DST): blood pressure, glucose, night-time
heart rate, doses, weight and the rest, with a share of out-of-range values so rules do fire,
and personal thresholds for one patient in ten.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import date
from typing import Any

from careloop.rules.engine import Personal, RuleSet, State
from careloop.rules.events import Clear, Event, Fire

START = 1_735_660_800  # 2025-01-01T00:00:00+08:00
OFFSET = 8 * 3600
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EVENTS_PER_PATIENT = 200

# (kind, weight) of the event mix.
MIX = (
    ("bp", 25),
    ("glucose", 15),
    ("heart_rate", 15),
    ("dose", 20),
    ("weight", 7),
    ("spo2", 5),
    ("temperature", 3),
    ("steps", 4),
    ("sleep", 2),
    ("symptom", 2),
    ("questionnaire", 1),
    ("adr", 1),
)


def synthetic_events(n_events: int, seed: int) -> list[Event]:
    """`n_events` events of n_events/200 patients, in effective-time order."""
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not security
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    patients = max(1, n_events // EVENTS_PER_PATIENT)
    clock = [START + rng.randrange(0, 86400) for _ in range(patients)]
    weight_base = [rng.gauss(70, 12) for _ in range(patients)]
    events: list[Event] = []
    for i in range(n_events):
        pid = i % patients + 1
        at = clock[pid - 1] = clock[pid - 1] + rng.randrange(600, 4 * 3600)
        local = at + OFFSET
        day = local // 86400 + EPOCH_ORDINAL
        hour = local % 86400 // 3600
        kind = rng.choices(kinds, weights)[0]
        value: float
        value2: float | None = None
        context = ""
        items: tuple[float, ...] = ()
        if kind == "bp":
            value = round(rng.gauss(138, 20))
            value2 = round(rng.gauss(86, 11))
        elif kind == "glucose":
            context = rng.choice(("fasting", "random", "postprandial"))
            value = round(rng.lognormvariate(1.9, 0.35), 1)
        elif kind == "heart_rate":
            value = round(rng.gauss(80, 14))
        elif kind == "dose":
            context = rng.choices(("taken", "late", "skipped", "missed"), (85, 5, 5, 5))[0]
            value = 1.0 if context in ("taken", "late") else 0.0
        elif kind == "weight":
            value = round(weight_base[pid - 1] + rng.gauss(0, 1.2), 1)
        elif kind == "spo2":
            value = min(100, round(rng.gauss(96, 2.5)))
        elif kind == "temperature":
            value = round(rng.gauss(36.8, 0.6), 1)
        elif kind == "questionnaire":
            context = "phq9"
            items = tuple(float(rng.choices((0, 1, 2, 3), (60, 25, 10, 5))[0]) for _ in range(9))
            value = float(sum(items))
        elif kind == "adr":
            value = float(rng.choices((1, 2, 3, 4), (50, 30, 15, 5))[0])
        else:
            value = round(rng.uniform(0, 10000), 1)
        events.append(Event(pid, kind, at, day, hour, value, value2, context, items, ref=i + 1))
    events.sort(key=lambda e: e.at)
    return events


def personal_thresholds(patients: int, seed: int) -> dict[int, Personal]:
    """Personal thresholds for one patient in ten."""
    rng = random.Random(seed + 1)  # noqa: S311 - synthetic benchmark data, not security
    out: dict[int, Personal] = {}
    for pid in range(1, patients + 1):
        if rng.random() < 0.1:
            out[pid] = {
                "bp-crisis": {"sys": rng.choice((160, 170)), "dia": 100},
                "hr-night-high-3": {"hr_max": rng.choice((90, 110))},
            }
    return out


def measure(n_events: int = 200_000, seed: int = 1, rules: RuleSet | None = None) -> dict[str, Any]:
    """Time feed() over `n_events` synthetic events; events/s and what fired."""
    rules = rules or RuleSet.default()
    events = synthetic_events(n_events, seed)
    patients = max(1, n_events // EVENTS_PER_PATIENT)
    personal = personal_thresholds(patients, seed)
    states: dict[int, State] = {pid: rules.new_state() for pid in range(1, patients + 1)}
    work = [(states[e.patient_id], e, personal.get(e.patient_id)) for e in events]

    fired: Counter[str] = Counter()
    clears = 0
    feed = rules.feed
    started = time.perf_counter()
    for state, event, mine in work:
        out = feed(state, event, mine)
        if out:
            for item in out:
                if isinstance(item, Fire):
                    fired[item.rule] += 1
                elif isinstance(item, Clear):
                    clears += 1
    seconds = time.perf_counter() - started

    encoded = [s.to_json() for s in states.values()]
    started = time.perf_counter()
    for text in encoded:
        State.from_json(text).to_json()
    json_seconds = time.perf_counter() - started

    return {
        "workload": "rules",
        "events": n_events,
        "patients": patients,
        "rules": len(rules.codes),
        "version": rules.version,
        "seed": seed,
        "seconds": round(seconds, 4),
        "events_per_s": round(n_events / seconds) if seconds else None,
        "us_per_event": round(seconds / n_events * 1e6, 3) if n_events else None,
        "fires": sum(fired.values()),
        "clears": clears,
        "fires_by_rule": dict(sorted(fired.items())),
        "state_json_bytes_mean": round(sum(map(len, encoded)) / len(encoded)),
        "state_json_roundtrips_per_s": round(len(encoded) / json_seconds) if json_seconds else None,
    }

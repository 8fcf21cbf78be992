"""`careloop bench ingest`: readings from an NDJSON file, stored durably and indexed, with every
rule evaluated, through the same service as the API and file imports.

The file holds device uploads as a gateway sends them: each patient's readings arrive as bursts
(a few weeks of one patient's meters at a time), bursts of all patients interleaved. Floors in
the same run: a raw `executemany` (SQLite) or COPY (PostgreSQL) of the same index rows into a
copy of the table, and full pydantic validation of the same readings as FHIR Observations.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from careloop.bench.harness import Emit, Progress, rate
from careloop.bench.reminders import Clinic, _say, add_patients, refresh_statistics

ORG_CODE = "bench-ingest"
FLOOR_TABLE = "bench_observation_floor"
DAYS = 120


@dataclass(frozen=True)
class Size:
    patients: int
    readings: int
    validate: int  # readings put through the FHIR-model floor


SIZES = {
    "tiny": Size(200, 5_000, 2_000),  # for the test suite
    "small": Size(10_000, 100_000, 20_000),
    "full": Size(10_000, 1_000_000, 50_000),
}


def _rss() -> int:
    """Resident memory of this process now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_file(path: Path, patient_ids: list[int], count: int, seed: int, end: datetime) -> int:
    """NDJSON readings: bursts of 50 of one patient's readings, bursts of patients interleaved."""
    import orjson

    rng = random.Random(seed)
    start = end - timedelta(days=DAYS)
    per_patient = -(-count // len(patient_ids))
    step = (DAYS * 86400) / per_patient
    written = 0
    cursors = {pid: 0 for pid in patient_ids}
    traits = {pid: (rng.gauss(128, 10), rng.random() < 0.3) for pid in patient_ids}
    with path.open("wb") as out:
        while written < count:
            order = [pid for pid in patient_ids if cursors[pid] < per_patient]
            rng.shuffle(order)
            for pid in order:
                if written >= count:
                    break
                base_sys, diabetic = traits[pid]
                lines = []
                for _ in range(min(50, count - written, per_patient - cursors[pid])):
                    n = cursors[pid]
                    cursors[pid] = n + 1
                    at = start + timedelta(seconds=n * step + rng.random() * 60)
                    roll = rng.random()
                    stamp = at.isoformat()
                    if roll < 0.5:
                        sys_ = round(rng.gauss(base_sys, 6))
                        dia = round(sys_ * 0.62 + rng.gauss(0, 5))
                        item = {
                            "patient": pid, "code": "85354-9", "systolic": sys_, "diastolic": dia,
                            "unit": "mm[Hg]", "effective": stamp, "device": f"bp-{pid}",
                        }  # fmt: skip
                    elif roll < 0.75:
                        mmol = max(3.0, round(rng.gauss(7.0 if diabetic else 5.4, 0.9), 1))
                        if rng.random() < 0.3:
                            item = {
                                "patient": pid, "code": "2339-0", "value": round(mmol * 18),
                                "unit": "mg/dL", "effective": stamp, "context": "fasting",
                                "device": f"gm-{pid}",
                            }  # fmt: skip
                        else:
                            item = {
                                "patient": pid, "code": "glucose", "value": mmol,
                                "unit": "mmol/L", "effective": stamp, "context": "fasting",
                                "device": f"gm-{pid}",
                            }  # fmt: skip
                    elif roll < 0.9:
                        item = {
                            "patient": pid, "code": "8867-4", "value": round(rng.gauss(74, 12)),
                            "unit": "/min", "effective": stamp, "device": f"watch-{pid}",
                        }  # fmt: skip
                    else:
                        item = {
                            "patient": pid, "code": "29463-7", "value": round(rng.gauss(70, 8), 1),
                            "unit": "kg", "effective": stamp, "device": f"scale-{pid}",
                        }  # fmt: skip
                    lines.append(orjson.dumps(item))
                    written += 1
                out.write(b"\n".join(lines) + b"\n")
    return written


def read_file(path: Path) -> Iterator[Any]:
    import orjson

    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                yield orjson.loads(raw)


def _floor(org_id: int) -> tuple[int, float]:
    """Seconds to write the stored index rows again into a copy of the table (same indexes):
    executemany on SQLite, COPY on PostgreSQL."""
    from django.db import connection, transaction

    from careloop.observations import models as om

    table = om.Observation._meta.db_table
    columns = [str(f.column) for f in om.Observation._meta.concrete_fields if not f.primary_key]
    names = ", ".join(columns)
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")  # noqa: S608 - constant name
        if connection.vendor == "sqlite":
            cur.execute(f"CREATE TABLE {FLOOR_TABLE} AS SELECT * FROM {table} WHERE 0")  # noqa: S608
        else:
            cur.execute(
                f"CREATE TABLE {FLOOR_TABLE} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY)"
            )
        cur.execute(
            f"CREATE UNIQUE INDEX {FLOOR_TABLE}_key ON {FLOOR_TABLE} "
            "(patient_id, kind, effective_at, source, device_id)"
        )
        cur.execute(
            f"SELECT {names} FROM {table} WHERE organisation_id = %s ORDER BY id",  # noqa: S608
            [org_id],
        )
        rows = cur.fetchall()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "sqlite":
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(
                f"INSERT INTO {FLOOR_TABLE} ({names}) VALUES ({marks})",  # noqa: S608
                rows,
            )
        else:
            with cur.cursor.copy(f"COPY {FLOOR_TABLE} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    seconds = time.perf_counter() - started
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")  # noqa: S608 - constant name
    return len(rows), seconds


def _fhir_floor(path: Path, limit: int) -> tuple[int, float]:
    """Seconds to validate the same readings as FHIR Observation resources (pydantic models)."""
    from fhir.resources.R4B.observation import Observation

    resources: list[dict[str, Any]] = []
    for item in read_file(path):
        if len(resources) >= limit:
            break
        resources.append(_as_fhir(item))
    started = time.perf_counter()
    for resource in resources:
        Observation.model_validate(resource)
    return len(resources), time.perf_counter() - started


def _as_fhir(item: dict[str, Any]) -> dict[str, Any]:
    loinc = "http://loinc.org"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{item['patient']}"},
        "effectiveDateTime": item["effective"],
        "device": {"display": item["device"]},
        "code": {"coding": [{"system": loinc, "code": item["code"]}]},
    }
    if "systolic" in item:
        resource["code"] = {"coding": [{"system": loinc, "code": "85354-9"}]}
        resource["component"] = [
            {
                "code": {"coding": [{"system": loinc, "code": code}]},
                "valueQuantity": {
                    "value": item[name],
                    "unit": "mmHg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            }
            for code, name in (("8480-6", "systolic"), ("8462-4", "diastolic"))
        ]
    else:
        resource["valueQuantity"] = {
            "value": item["value"],
            "unit": item["unit"],
            "system": "http://unitsofmeasure.org",
            "code": item["unit"],
        }
    return resource


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.conf import settings

    from careloop.accounts.models import Department, Organisation
    from careloop.alerts import evaluation
    from careloop.alerts import models as am
    from careloop.kit.clock import utc_now
    from careloop.observations import models as om
    from careloop.observations import services as observation_services

    plan = SIZES[size]
    var_dir = Path(settings.VAR_DIR)
    org = Organisation.objects.create(name="Bench Ingest Hospital", code=ORG_CODE)
    dept = Department.objects.create(
        organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
    )
    clinic = Clinic(org.pk, dept.pk, 0)
    today = utc_now().date()
    _say(emit, f"set-up: {plan.patients:,} patients")
    patient_ids = add_patients(clinic, plan.patients, seed=seed, today=today, emit=emit)
    refresh_statistics()
    path = var_dir / "bench-readings.ndjson"
    written = write_file(path, patient_ids, plan.readings, seed, utc_now() - timedelta(hours=1))
    size_bytes = path.stat().st_size
    _say(emit, f"{written:,} readings in {size_bytes / 1e6:.1f} MB of NDJSON")

    progress = Progress("ingest", written, emit, "readings")
    memory: list[tuple[int, int]] = []

    def on_progress(report: observation_services.IngestReport) -> None:
        progress.tick(report.received)
        memory.append((report.received, _rss()))

    rss_before = _rss()
    started = time.perf_counter()
    report = observation_services.ingest(
        None,
        read_file(path),
        organisation_id=org.pk,
        source="device",
        origin="bench",
        progress=on_progress,
        chunk_size=2000,
    )
    seconds = time.perf_counter() - started
    _say(
        emit,
        f"ingested {report.accepted:,} in {seconds:.1f} s "
        f"({rate(report.accepted, seconds):,.0f}/s)",
    )

    stored = om.Observation.objects.filter(organisation_id=org.pk).count()
    again = observation_services.ingest(
        None,
        (item for _, item in zip(range(5000), read_file(path), strict=False)),
        organisation_id=org.pk,
        source="device",
        origin="bench",
    )
    alerts = am.Alert.objects.filter(organisation_id=org.pk).count()
    _say(emit, "recomputing every patient's rules over the stored history")
    t = time.perf_counter()
    recomputed = evaluation.recompute(org.pk)
    recompute_seconds = time.perf_counter() - t

    _say(emit, "floor: raw insert of the same rows")
    floor_rows, floor_seconds = _floor(org.pk)
    _say(emit, "floor: FHIR-model validation of the same readings")
    fhir_rows, fhir_seconds = _fhir_floor(path, plan.validate)
    path.unlink(missing_ok=True)

    observed_rate = rate(report.accepted, seconds)
    floor_rate = rate(floor_rows, floor_seconds)
    fhir_rate = rate(fhir_rows, fhir_seconds)
    # Memory after the first tenth versus the end: bounded means it does not keep growing.
    early = next((m for n, m in memory if n >= written // 10), memory[0][1] if memory else 0)
    late = memory[-1][1] if memory else 0
    correct = (
        report.accepted == written - report.rejected - report.duplicates
        and stored == report.accepted
        and again.accepted == 0
        and report.rejected == 0
        and recomputed["identical"]
    )
    from django.db import connection

    target = 60_000 if connection.vendor == "sqlite" else 40_000
    within = 7 if connection.vendor == "sqlite" else 8
    return {
        "n": report.accepted,
        "seconds": round(seconds, 3),
        "rate_per_s": round(observed_rate, 1),
        "patients": plan.patients,
        "file_bytes": size_bytes,
        "alerts_raised": alerts,
        "rules_recompute": {
            "seconds": round(recompute_seconds, 3),
            "fires": recomputed["fires"],
            "identical": recomputed["identical"],
        },
        "memory": {
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_after_first_tenth_mb": round(early / 2**20, 1),
            "rss_at_end_mb": round(late / 2**20, 1),
            "growth_after_first_tenth_mb": round((late - early) / 2**20, 1),
        },
        "floors": {
            "raw_insert_per_s": round(floor_rate, 1),
            "fhir_validation_per_s": round(fhir_rate, 1),
        },
        "floor_method": "executemany" if connection.vendor == "sqlite" else "COPY",
        "floor_rows": {"raw_insert": floor_rows, "fhir_validation": fhir_rows},
        "ratios": {
            "to_raw_insert": round(observed_rate / floor_rate, 4) if floor_rate else 0.0,
            "to_fhir_validation": round(observed_rate / fhir_rate, 4) if fhir_rate else 0.0,
        },
        "targets": {
            "rate": {
                "target": f">= {target:,}/s",
                "measured": round(observed_rate, 1),
                "met": observed_rate >= target,
            },
            "within_floor": {
                "target": f"within {within}x of the raw floor",
                "measured": round(floor_rate / observed_rate, 2) if observed_rate else None,
                "met": observed_rate * within >= floor_rate,
            },
        },
        "checks": {
            "stored_equals_accepted": {"ok": stored == report.accepted, "stored": stored},
            "resend_adds_nothing": {"ok": again.accepted == 0, "duplicates": again.duplicates},
            "no_rejects": {"ok": report.rejected == 0, "rejected": report.rejected},
            "recompute_identical": {"ok": recomputed["identical"]},
        },
        "correct": correct,
    }

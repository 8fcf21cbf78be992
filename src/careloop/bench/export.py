"""`careloop bench export`: a system-level FHIR Bulk Data $export of every reading, end to end
through the export job (careloop.fhir.bulk.run_export: scope, chunked streaming through the
Observation serialiser, NDJSON files, progress, audit) as the background worker runs it.

Floor in the same run: a plain ``values_list`` iteration over the same rows, each written as a
JSON line (no FHIR shape, no scope). Memory: the resident size sampled while the export runs,
and the peak of Python allocations (tracemalloc) in a second, unmeasured-for-speed run.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from careloop.bench.harness import Emit, Progress, rate
from careloop.bench.reminders import Clinic, _say, add_patients, refresh_statistics

ORG_CODE = "bench-export"
DAYS = 365
# Targets of the issue: throughput, against the raw read floor, and memory that stays bounded.
TARGET_RATE = 200_000
TARGET_RATIO = 0.3
TARGET_PEAK_MB = 64


@dataclass(frozen=True)
class Size:
    patients: int
    readings: int
    checked: int  # lines compared with the mapper's own read()


SIZES = {
    "tiny": Size(200, 5_000, 500),  # for the test suite
    "small": Size(3_000, 100_000, 2_000),
    "full": Size(5_000, 1_000_000, 5_000),
}

_KINDS = (
    ("bp", "85354-9", "mm[Hg]"),
    ("glucose", "2339-0", "mmol/L"),
    ("heart_rate", "8867-4", "/min"),
    ("weight", "29463-7", "kg"),
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """The highest resident size seen while a block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def add_readings(
    org_id: int, patient_ids: list[int], count: int, seed: int, emit: Emit | None
) -> int:
    """Readings spread over the patients and the last year, written with executemany in
    batches (setting up is not measured; the rows are those ingest would store)."""
    from django.db import connection, transaction

    from careloop.kit.clock import utc_now
    from careloop.observations import models as om

    rng = random.Random(seed)
    end = utc_now() - timedelta(hours=1)
    per_patient = -(-count // len(patient_ids))
    step = DAYS * 86400 / per_patient
    progress = Progress("readings", count, emit, "rows")
    columns = ("organisation_id", "patient_id", "kind", "code", "value", "value2", "unit",
               "context", "source", "device_id", "effective_at", "time_zone", "local_day",
               "local_hour", "original", "created_at")  # fmt: skip
    table = om.Observation._meta.db_table
    marks = ", ".join(["%s"] * len(columns))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    made = 0
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        with transaction.atomic(), connection.cursor() as cur:
            cur.executemany(insert, batch)
        batch.clear()
        progress.tick(made)

    for n in range(per_patient):
        for pid in patient_ids:
            if made >= count:
                break
            kind, code, unit = _KINDS[(n + pid) % len(_KINDS)]
            at = end - timedelta(seconds=n * step + rng.random() * 30)
            if kind == "bp":
                value, value2 = float(rng.randint(105, 165)), float(rng.randint(65, 100))
            elif kind == "glucose":
                value, value2 = round(rng.uniform(4.0, 11.0), 1), None
            elif kind == "heart_rate":
                value, value2 = float(rng.randint(52, 110)), None
            else:
                value, value2 = round(rng.uniform(45, 110), 1), None
            local = at.astimezone(UTC) + timedelta(hours=8)
            stamp = adapt(at)
            batch.append(
                (org_id, pid, kind, code, value, value2, unit, "", "device", f"dev-{pid}",
                 stamp, "Asia/Shanghai", local.date().toordinal(), local.hour, "", stamp)
            )  # fmt: skip
            made += 1
            if len(batch) >= 10_000:
                flush()
    if batch:
        flush()
    return made


def _raw_floor(org_id: int, path: Path, chunk: int) -> tuple[int, float]:
    """Seconds to read the same rows with a plain values_list and write each as a JSON line."""
    import orjson

    from careloop.observations import models as om

    fields = ("pk", "patient_id", "kind", "code", "value", "value2", "unit", "effective_at",
              "time_zone", "created_at")  # fmt: skip
    rows = om.Observation.objects.filter(organisation_id=org_id).order_by("pk")
    count = 0
    started = time.perf_counter()
    with path.open("wb", buffering=1 << 20) as out:
        for row in rows.values_list(*fields).iterator(chunk_size=chunk):
            out.write(orjson.dumps(row))
            out.write(b"\n")
            count += 1
    return count, time.perf_counter() - started


def _new_job(staff: Any) -> Any:
    from careloop.fhir.models import ExportJob

    return ExportJob.objects.create(
        key=f"bench-{time.time_ns()}",
        requester=staff,
        organisation_id=staff.organisation_id,
        level="system",
        types=["Observation"],
        scopes="*",
        source="bench",
        request_url="http://bench/fhir/$export?_type=Observation",
    )


def _check_lines(path: Path, sample: int, seed: int) -> tuple[int, int, int]:
    """(lines, checked, wrong): every line is JSON; a sample equals the mapper's read()."""
    from careloop.fhir.registry import mapper_for
    from careloop.observations import models as om

    mapper = mapper_for("Observation")
    rng = random.Random(seed)
    lines = 0
    picked: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for raw in f:
            resource = json.loads(raw)
            lines += 1
            if resource.get("resourceType") != "Observation":
                return lines, 0, 1
            if len(picked) < sample:
                picked.append(resource)
            elif rng.random() < sample / lines:
                picked[rng.randrange(sample)] = resource
    rows = om.Observation.objects.in_bulk([int(r["id"]) for r in picked])
    wrong = sum(1 for r in picked if mapper.read(rows[int(r["id"])]) != r)
    return lines, len(picked), wrong


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    from careloop.accounts import services as accounts
    from careloop.accounts.models import Department, Organisation
    from careloop.audit.models import AuditEvent
    from careloop.fhir import bulk
    from careloop.fhir.models import ExportJob
    from careloop.fhir.registry import mappers
    from careloop.kit.clock import utc_now

    plan = SIZES[size]
    org = Organisation.objects.create(name="Bench Export Hospital", code=ORG_CODE)
    dept = Department.objects.create(
        organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
    )
    staff = accounts.create_staff(
        organisation_id=org.pk, username="bench.export", password="bench-export-Pw-1",  # noqa: S106
        role="org_admin", department_ids=[dept.pk], language="en",
    )  # fmt: skip
    _say(emit, f"set-up: {plan.patients:,} patients, {plan.readings:,} readings")
    patient_ids = add_patients(
        Clinic(org.pk, dept.pk, 0), plan.patients, seed=seed, today=utc_now().date(), emit=emit
    )
    written = add_readings(org.pk, patient_ids, plan.readings, seed, emit)
    refresh_statistics()

    _say(emit, "export: system $export of Observation through the export job")
    mappers()  # a running worker has the resource modules loaded already
    job = _new_job(staff)
    rss_before = _rss()
    with RssSampler() as sampler:
        started = time.perf_counter()
        bulk.run_export(job.pk)
        seconds = time.perf_counter() - started
    job.refresh_from_db()
    counts = {o["type"]: o["count"] for o in job.output}
    exported = int(counts.get("Observation", 0))
    path = bulk.job_dir(job) / "Observation.ndjson"
    file_bytes = path.stat().st_size if path.exists() else 0
    observed = rate(exported, seconds)
    _say(emit, f"exported {exported:,} in {seconds:.2f} s ({observed:,.0f}/s)")

    _say(emit, "checking the file against the mapper")
    lines, checked, wrong = _check_lines(path, plan.checked, seed)

    _say(emit, "floor: values_list over the same rows, written as JSON lines")
    floor_rows, floor_seconds = _raw_floor(
        org.pk, Path(settings.VAR_DIR) / "bench-floor.ndjson", bulk.CHUNK
    )
    (Path(settings.VAR_DIR) / "bench-floor.ndjson").unlink(missing_ok=True)
    floor_rate = rate(floor_rows, floor_seconds)

    _say(emit, "memory: the same export again under tracemalloc")
    second = _new_job(staff)
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    bulk.run_export(second.pk)
    traced_seconds = time.perf_counter() - t
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    second.refresh_from_db()
    second_count = sum(o["count"] for o in second.output if o["type"] == "Observation")

    audited = AuditEvent.objects.filter(
        action="fhir.export", object_id__in=[str(job.pk), str(second.pk)]
    ).count()
    ratio = round(observed / floor_rate, 4) if floor_rate else 0.0
    peak_mb = round(peak / 2**20, 1)
    checks = {
        "all_rows_exported": {"ok": exported == written, "exported": exported, "rows": written},
        "lines_are_resources": {"ok": lines == exported, "lines": lines},
        "sample_equals_read": {"ok": wrong == 0 and checked > 0, "checked": checked,
                               "wrong": wrong},
        "job_complete": {"ok": job.status == ExportJob.Status.DONE, "status": job.status},
        "second_run_same_count": {"ok": second_count == exported, "count": second_count},
        "audited_once_per_export": {"ok": audited == 2, "events": audited},
    }  # fmt: skip
    return {
        "n": exported,
        "seconds": round(seconds, 3),
        "rate_per_s": round(observed, 1),
        "patients": plan.patients,
        "file_bytes": file_bytes,
        "chunk_size": bulk.CHUNK,
        "memory": {
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_peak_during_export_mb": round(sampler.peak / 2**20, 1),
            "rss_growth_mb": round((sampler.peak - rss_before) / 2**20, 1),
            "tracemalloc_peak_mb": peak_mb,
            "tracemalloc_run_seconds": round(traced_seconds, 3),
        },
        "floors": {"raw_values_list_per_s": round(floor_rate, 1)},
        "floor_method": "values_list(...).iterator() + orjson line per row",
        "floor_rows": {"raw_values_list": floor_rows},
        "ratios": {"to_raw_values_list": ratio},
        "targets": {
            "rate": {
                "target": f">= {TARGET_RATE:,}/s",
                "measured": round(observed, 1),
                "met": observed >= TARGET_RATE,
            },
            "within_floor": {
                "target": f">= {TARGET_RATIO}x the raw read floor",
                "measured": ratio,
                "met": ratio >= TARGET_RATIO,
            },
            "memory_bounded": {
                "target": f"tracemalloc peak < {TARGET_PEAK_MB} MB whatever the size",
                "measured": peak_mb,
                "met": peak_mb < TARGET_PEAK_MB,
            },
        },
        "database_vendor": connection.vendor,
        "checks": checks,
        "correct": all(c["ok"] for c in checks.values()),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }

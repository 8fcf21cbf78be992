"""`careloop bench fhir`: the FHIR interface over loopback HTTP, one `careloop serve` process.

Two operations a device gateway and an app do all day:

- durable `POST /fhir/Observation` of a blood-pressure panel (validated, stored through the
  ingest service, rules evaluated, committed before the 201);
- `GET /fhir/Observation?subject=…&code=http://loinc.org|85354-9&date=ge…` (a patient's recent
  blood pressure) over a table of stored observations (small: 100k, full: 1M).

The same run measures the ceiling of the server setup: a minimal Django view (`/healthz`) over
the same persistent connection. Requests are sent one after another by one client, so a rate
is the inverse of the mean latency.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from careloop.bench.harness import Emit, latency_summary, rate
from careloop.bench.reminders import Clinic, _say, add_patients, refresh_statistics
from careloop.bench.worklist import _free_port

ORG_CODE = "bench-fhir"
LOINC = "http://loinc.org"
BP_PANEL = "85354-9"


@dataclass(frozen=True)
class Size:
    patients: int
    stored: int  # observations in the table before the measured requests
    posts: int
    searches: int
    ceiling: int


SIZES = {
    "tiny": Size(200, 5_000, 60, 60, 60),  # for the test suite
    "small": Size(10_000, 100_000, 1_000, 1_000, 1_000),
    "full": Size(10_000, 1_000_000, 3_000, 3_000, 3_000),
}


def _set_up(plan: Size, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.conf import settings

    from careloop.accounts import services as accounts
    from careloop.accounts.models import Department, Organisation
    from careloop.accounts.roles import Role
    from careloop.bench import ingest
    from careloop.kit.clock import utc_now
    from careloop.observations import services as observation_services

    org = Organisation.objects.create(name="Bench FHIR Hospital", code=ORG_CODE)
    dept = Department.objects.create(
        organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
    )
    staff = accounts.create_staff(
        organisation_id=org.pk,
        username="gateway.cardiology",
        password="Bench-fhir-2026!",  # noqa: S106 - a scratch database's account
        role=Role.NURSE,
        department_ids=[dept.pk],
        display_name="Device gateway",
    )
    token = accounts.issue_token(staff, "bench fhir")
    _say(emit, f"set-up: {plan.patients:,} patients")
    patient_ids = add_patients(
        Clinic(org.pk, dept.pk, 0), plan.patients, seed=seed, today=utc_now().date(), emit=emit
    )
    path = Path(settings.VAR_DIR) / "bench-fhir-readings.ndjson"
    end = utc_now() - timedelta(days=1)
    written = ingest.write_file(path, patient_ids, plan.stored, seed, end)
    _say(emit, f"set-up: storing {written:,} observations")
    report = observation_services.ingest(
        None,
        ingest.read_file(path),
        organisation_id=org.pk,
        source="device",
        origin="bench",
        chunk_size=2000,
    )
    path.unlink(missing_ok=True)
    refresh_statistics()
    return {
        "org": org,
        "token": token,
        "patient_ids": patient_ids,
        "stored": report.accepted,
        "end": end,
    }


def _bp(patient_id: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    systolic = round(rng.gauss(130, 12))
    diastolic = round(systolic * 0.62 + rng.gauss(0, 5))

    def part(code: str, value: int) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {
                "value": value,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        }

    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": BP_PANEL}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": at.isoformat(),
        "component": [part("8480-6", systolic), part("8462-4", diastolic)],
    }


class _Server:
    """`careloop serve` in a child process and one keep-alive connection to it."""

    def __init__(self, token: str) -> None:
        self.port = _free_port()
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        self.proc = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", "careloop.cli", "serve", "--port", str(self.port)],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.request("GET", "/healthz")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.3)

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes, float]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/fhir+json"
        t = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - t

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _timed(server: _Server, n: int, call: Any) -> list[float]:
    times = []
    for i in range(n + 10):
        took = call(server, i)
        if i >= 10:  # the first requests warm the server up
            times.append(took)
    return times


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from careloop.observations import models as om

    plan = SIZES[size]
    t = time.perf_counter()
    world = _set_up(plan, seed, emit)
    set_up = time.perf_counter() - t
    rng = random.Random(seed + 1)
    patients: list[int] = world["patient_ids"]
    server = _Server(world["token"])
    posted: list[int] = []
    failures: list[str] = []
    try:
        _say(emit, f"ceiling: {plan.ceiling} requests of /healthz")

        def ceiling(s: _Server, i: int) -> float:
            status, _body, took = s.request("GET", "/healthz")
            if status != 200:
                failures.append(f"healthz {status}")
            return took

        ceiling_times = _timed(server, plan.ceiling, ceiling)

        _say(emit, f"write: {plan.posts} POST /fhir/Observation")
        base = world["end"] + timedelta(hours=2)

        def post(s: _Server, i: int) -> float:
            patient = rng.choice(patients)
            body = json.dumps(_bp(patient, base + timedelta(seconds=i), rng)).encode()
            status, data, took = s.request("POST", "/fhir/Observation", body)
            if status != 201:
                failures.append(f"POST {status}: {data[:200]!r}")
            else:
                posted.append(patient)
            return took

        post_times = _timed(server, plan.posts, post)

        _say(emit, f"search: {plan.searches} GET /fhir/Observation?subject=…&code=…&date=ge…")
        since_at = (world["end"] - timedelta(days=30)).astimezone(UTC).replace(microsecond=0)
        since = since_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        sampled: list[tuple[int, int]] = []
        world["since_at"] = since_at

        def search(s: _Server, i: int) -> float:
            patient = rng.choice(patients)
            query = (
                f"/fhir/Observation?subject=Patient/{patient}"
                f"&code={LOINC}|{BP_PANEL}&date=ge{since}&_count=50"
            )
            status, data, took = s.request("GET", query)
            if status != 200:
                failures.append(f"search {status}: {data[:200]!r}")
            elif len(sampled) < 20:
                sampled.append((patient, int(json.loads(data).get("total", -1))))
            return took

        search_times = _timed(server, plan.searches, search)
    finally:
        server.close()

    # Correctness: every 201 stored exactly one reading; search totals equal a direct count.
    stored_after = om.Observation.objects.filter(organisation_id=world["org"].pk).count()
    since_at = world["since_at"]
    mismatches = []
    for patient, total in sampled:
        direct = om.Observation.objects.filter(
            patient_id=patient, kind="bp", effective_at__gte=since_at
        ).count()
        if direct != total:
            mismatches.append({"patient": patient, "search_total": total, "direct": direct})

    ceiling_s = latency_summary(ceiling_times)
    post_s = latency_summary(post_times)
    search_s = latency_summary(search_times)
    ceiling_rate = rate(len(ceiling_times), sum(ceiling_times))
    post_rate = rate(len(post_times), sum(post_times))
    search_rate = rate(len(search_times), sum(search_times))
    post_ratio = round(post_rate / ceiling_rate, 4) if ceiling_rate else 0.0
    stored_ok = stored_after == world["stored"] + len(posted)
    correct = not failures and stored_ok and not mismatches
    return {
        "n": len(post_times) + len(search_times),
        "seconds": round(sum(post_times) + sum(search_times), 3),
        "rate_per_s": post_rate,
        "patients": plan.patients,
        "stored_observations": world["stored"],
        "set_up_seconds": round(set_up, 1),
        "post": {"rate_per_s": post_rate, **post_s},
        "search": {"rate_per_s": search_rate, **search_s},
        "ceiling": {"rate_per_s": ceiling_rate, **ceiling_s},
        "floors": {"minimal_view_per_s": ceiling_rate},
        "ratios": {"post_to_minimal_view": post_ratio},
        "targets": {
            "post_rate": {
                "target": ">= 0.5x the minimal view",
                "measured": post_ratio,
                "met": post_ratio >= 0.5,
            },
            "search_p50": {
                "target": "<= 3 ms",
                "measured": search_s["p50_ms"],
                "met": search_s["p50_ms"] <= 3,
            },
            "search_p99": {
                "target": "<= 15 ms",
                "measured": search_s["p99_ms"],
                "met": search_s["p99_ms"] <= 15,
            },
        },
        "checks": {
            "all_requests_succeeded": {"ok": not failures, "failures": failures[:5]},
            "every_post_stored_once": {
                "ok": stored_ok,
                "stored_after": stored_after,
                "expected": world["stored"] + len(posted),
            },
            "search_totals_match_direct_counts": {
                "ok": not mismatches,
                "sampled": len(sampled),
                "mismatches": mismatches[:5],
            },
        },
        "correct": correct,
    }

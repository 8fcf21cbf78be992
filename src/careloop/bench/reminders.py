"""The `reminders` workload: materialise a day of reminders, then dispatch bursts of them.

Phases, in one scratch database (the SQL work through the product's own services):

1. set-up: an organisation whose SMS channel is the fake Aliyun API, running in its own
   process on loopback with a JSON-lines log of every accepted message; patients over 40 IANA
   zones, each with a phone, SMS consent, a hypertension diagnosis and a three-times-a-day
   prescription, enrolled in the shipped hypertension plan (written in bulk: this is not what
   is measured);
2. materialise: one simulated day (a UTC day a few days ahead chosen so that no zone crosses a
   DST change, a Saturday or the 15th) through `careplans.services.materialise_many`: four
   reminders per patient (doses at 08:00, 14:00, 20:00 and the morning blood pressure at 08:30,
   local time). Timed: occurrences/s;
3. floor: the same occurrence rows inserted with one `executemany` into a copy of the table;
4. bursts, each a set of reminders (one per patient, `burst` patients) all due at the same
   instant while the day's rows wait in the table:
   a. a no-op claim loop (floor): the same worker processes' batches of `dispatcher.claim()`
      then release, without sending;
   b. dispatch: `careloop worker` processes (2 on PostgreSQL, 1 on SQLite) send the burst to
      the fake provider; timed from the due instant to the last accepted message, with each
      message's lateness (accepted at the provider minus due);
   c. crash: the same again, but one worker is killed with SIGKILL while it has messages in
      flight; a replacement starts once the claim lease has run out;
5. checks: every reminder of the day planned once at the right local times; every burst
   reminder ended sent with exactly one message at the provider (no duplicates, no losses).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from careloop.bench.harness import Emit, Progress, percentile, rate

# Forty zones: every continent, whole, half and three-quarter hour offsets, with and without
# daylight saving time.
ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Urumqi",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Singapore",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Manila",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dhaka",
    "Asia/Karachi",
    "Asia/Dubai",
    "Asia/Tehran",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/London",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "America/St_Johns",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/New_York",
    "America/Toronto",
    "America/Chicago",
    "America/Mexico_City",
    "America/Denver",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Pacific/Auckland",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Perth",
)
assert len(set(ZONES)) == 40  # noqa: S101 - a constant's shape

PLAN = "hypertension"
PER_DAY = 4  # three doses (tid) and the morning blood pressure
LOCAL_TIMES = {"08:00", "08:30", "14:00", "20:00"}
ORG_CODE = "bench-reminders"
BATCH = 200


@dataclass(frozen=True)
class Size:
    patients: int
    burst: int
    # Claim lease of the workers: a crashed worker's reminders wait this long. It must be
    # well above a batch's time (see tests/fault): the default in production is 120 s.
    lease_seconds: int = 10
    # Seconds the fake provider takes to answer. With a burst of only two batches and an
    # instant provider, the crash phase can miss the moment a batch is in flight.
    provider_latency: float = 0.0


SIZES = {
    "tiny": Size(500, 400, lease_seconds=6, provider_latency=0.15),  # for the test suite
    "small": Size(10_000, 5_000),
    "full": Size(100_000, 50_000),
}


def _say(emit: Emit | None, text: str) -> None:
    if emit is not None:
        emit(text)


# --- processes: the fake provider and workers ---------------------------------------------------


class FakeProvider:
    """The fake Aliyun SMS API in its own process; accepted messages go to a JSON-lines log."""

    def __init__(self, log_path: Path, *, latency: float = 0.0) -> None:
        self.log_path = log_path
        self.latency = latency
        self.proc: subprocess.Popen[str] | None = None
        self.config: dict[str, Any] = {}

    def start(self) -> FakeProvider:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "careloop.channels.fakes",
                "aliyun_sms",
                "--port",
                "0",
                "--log",
                str(self.log_path),
                "--latency",
                str(self.latency),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None  # noqa: S101 - set by PIPE
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the fake provider did not start")
        self.config = json.loads(line)["config"]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def sent(self) -> list[dict[str, Any]]:
        """Every message the fake accepted, oldest first (a torn last line is skipped)."""
        if not self.log_path.exists():
            return []
        out = []
        with self.log_path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def message_key(sent: dict[str, Any]) -> str:
    """What names one reminder at the provider.

    A single send carries the dedupe key as its caller reference; ``SendBatchSms`` has one
    reference for a whole batch, so there a message is named by its portal link token.
    """
    token = str((sent.get("extra") or {}).get("params", {}).get("link") or "")
    ref = str(sent.get("ref") or "")
    if token:
        return "t:" + hashlib.sha256(token.encode()).hexdigest()
    return "r:" + ref


class Workers:
    """`careloop worker` processes; their output goes to log files next to each other."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env if env is not None else os.environ)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._files: list[TextIO] = []

    def start(self, *args: str, batch: int = BATCH) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        out = (self.log_dir / f"worker-{n}.log").open("w", encoding="utf-8")
        self._files.append(out)
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [
                sys.executable,
                "-m",
                "careloop.cli",
                "worker",
                "--no-jobs",
                "--batch-size",
                str(batch),
                *args,
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine loses power."""
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self, timeout: float = 30.0) -> list[int]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        for fh in self._files:
            fh.close()
        return codes

    def wait_all(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        codes = []
        for proc in self.procs:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        for fh in self._files:
            fh.close()
        return codes

    def logs(self) -> str:
        return "\n".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(self.log_dir.glob("worker-*.log"))
        )


# --- the simulated day ---------------------------------------------------------------------------


def simulated_day(today: date) -> datetime:
    """The start (UTC midnight) of the first day at least three days ahead on which no zone
    changes its offset, and whose local dates are neither a Saturday (the weekly education
    item) nor the 15th (the monthly nurse call): every patient then has exactly four reminders.
    """
    day = today + timedelta(days=3)
    while True:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        ok = True
        for name in ZONES:
            tz = ZoneInfo(name)
            a, b = start.astimezone(tz), end.astimezone(tz)
            if a.utcoffset() != b.utcoffset():
                ok = False
                break
            for local in (a, b - timedelta(minutes=1)):
                if local.weekday() == 5 or local.day == 15:
                    ok = False
            if not ok:
                break
        if ok:
            return start
        day += timedelta(days=1)


# --- the organisation and its patients -----------------------------------------------------------


@dataclass
class Clinic:
    org_id: int
    department_id: int
    template_id: int
    patient_ids: list[int] = field(default_factory=list)
    enrolment_ids: list[int] = field(default_factory=list)


def set_up_organisation(
    sms_config: dict[str, Any], *, code: str = ORG_CODE, daily_cap: int = 20
) -> Clinic:
    """An organisation that sends SMS through the given provider settings, all hours."""
    import datetime as dt

    from careloop.accounts.models import Department, Organisation
    from careloop.careplans import models as cm
    from careloop.careplans import services as plan_services
    from careloop.channels.models import ChannelConfig
    from careloop.reminders import services as reminder_services

    plan_services.load_templates()
    org = Organisation.objects.create(name="Bench Reminders Hospital", code=code)
    dept = Department.objects.create(
        organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
    )
    settings = reminder_services.settings_for(org.pk)
    # No quiet hours: the bursts are sent whatever the hour is in each zone when the bench runs.
    settings.quiet_start = settings.quiet_end = dt.time(0, 0)
    settings.daily_cap = daily_cap
    settings.save()
    cfg = ChannelConfig(organisation=org, kind="sms", provider="aliyun_sms")
    cfg.config = sms_config
    cfg.save()
    tpl = cm.PlanTemplate.objects.get(code=PLAN, organisation__isnull=True)
    return Clinic(org.pk, dept.pk, tpl.pk)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def add_patients(
    clinic: Clinic,
    count: int,
    *,
    seed: int,
    today: date,
    phones: Sequence[str] | None = None,
    emit: Emit | None = None,
) -> list[int]:
    """Patients with a phone, SMS consent, hypertension and a tid prescription, written in bulk.

    Rows are written as the services would leave them (encrypted phone and its blind indexes,
    department link) but without audit events or record versions: setting up is not measured.
    """
    from careloop.demo import people
    from careloop.kit.crypto import blind_index
    from careloop.kit.identifiers import phone_tail
    from careloop.patients import models as pm

    rng = random.Random(seed)
    progress = Progress("patients", count, emit, "patients")
    made: list[int] = []
    seen: set[str] = set()
    for chunk in _chunks(range(count), 2000):
        patients = []
        numbers = []
        for i in chunk:
            sex = rng.choice(("male", "female"))
            born = people.birth_date(rng, today, 40, 90)
            national_id = people.resident_id(rng, born, sex, serial=i % 1000)
            patients.append(
                pm.Patient(
                    organisation_id=clinic.org_id,
                    record_number=f"R{seed}-{i:07d}",
                    name=people.chinese_name(rng, sex),
                    sex=sex,
                    date_of_birth=born,
                    # Encrypted like every record's (the dispatcher must not pay for them).
                    national_id=national_id,
                    national_id_index=blind_index("national_id", national_id),
                    address=people.address(rng),
                    time_zone=ZONES[i % len(ZONES)],
                )
            )
            if phones is not None:
                number = phones[i]
            else:
                number = people.mobile(rng)
                while number in seen:
                    number = people.mobile(rng)
            seen.add(number)
            numbers.append(number)
        pm.Patient.objects.bulk_create(patients)
        ids = [p.pk for p in patients]
        pm.PatientDepartment.objects.bulk_create(
            [pm.PatientDepartment(patient_id=pk, department_id=clinic.department_id) for pk in ids]
        )
        pm.PatientPhone.objects.bulk_create(
            [
                pm.PatientPhone(
                    patient_id=pk,
                    organisation_id=clinic.org_id,
                    number=number,
                    number_index=blind_index("phone", number),
                    tail_index=blind_index("phone_tail", phone_tail(number)),
                )
                for pk, number in zip(ids, numbers, strict=True)
            ]
        )
        since = today - timedelta(days=400)
        pm.Condition.objects.bulk_create(
            [
                pm.Condition(
                    organisation_id=clinic.org_id,
                    patient_id=pk,
                    icd10_code="I10",
                    display="原发性高血压",
                    onset_date=since,
                    status=pm.Condition.Status.ACTIVE,
                )
                for pk in ids
            ]
        )
        pm.Medication.objects.bulk_create(
            [
                pm.Medication(
                    organisation_id=clinic.org_id,
                    patient_id=pk,
                    name="硝苯地平片",
                    dose=Decimal("10"),
                    unit="mg",
                    route="po",
                    frequency="tid",
                    start_date=since,
                    status=pm.Medication.Status.ACTIVE,
                )
                for pk in ids
            ]
        )
        pm.Consent.objects.bulk_create(
            [
                pm.Consent(
                    organisation_id=clinic.org_id,
                    patient_id=pk,
                    purpose="care_reminders",
                    channel="sms",
                    granted=True,
                    decided_on=since,
                    source="paper",
                )
                for pk in ids
            ]
        )
        made.extend(ids)
        progress.tick(len(made))
    clinic.patient_ids.extend(made)
    return made


def enrol_all(clinic: Clinic, patient_ids: Sequence[int], *, today: date) -> list[int]:
    """Active hypertension enrolments (not yet materialised), started over the last 60 days."""
    from careloop.careplans import models as cm

    tpl = cm.PlanTemplate.objects.get(pk=clinic.template_id)
    made: list[int] = []
    for chunk in _chunks(list(patient_ids), 2000):
        rows = [
            cm.Enrolment(
                organisation_id=clinic.org_id,
                patient_id=pk,
                template_id=tpl.pk,
                template_version=tpl.version,
                department_id=clinic.department_id,
                source=cm.Enrolment.Source.RULE,
                starts_on=today - timedelta(days=pk % 60),
            )
            for pk in chunk
        ]
        cm.Enrolment.objects.bulk_create(rows)
        made.extend(e.pk for e in rows)
    clinic.enrolment_ids.extend(made)
    return made


# What materialising reads of an enrolment and its patient.
ENROLMENT_FIELDS = (
    "pk",
    "patient_id",
    "template_id",
    "starts_on",
    "anchor_date",
    "adjustments",
    "patient__organisation_id",
    "patient__time_zone",
    "patient__date_of_birth",
    "patient__sex",
)


def materialise(
    enrolment_ids: Sequence[int], *, start: datetime, end: datetime, emit: Emit | None
) -> tuple[int, float]:
    """Occurrences of [start, end) for every enrolment through the product's bulk path."""
    from careloop.careplans import models as cm
    from careloop.careplans import services as plan_services

    progress = Progress("materialised", len(enrolment_ids), emit, "enrolments")
    total = 0
    done = 0
    started = time.perf_counter()
    for chunk in _chunks(list(enrolment_ids), 1000):
        enrolments = list(
            cm.Enrolment.objects.filter(pk__in=chunk)
            .select_related("patient")
            .only(*ENROLMENT_FIELDS)
        )
        total += plan_services.materialise_many(enrolments, start=start, end=end)
        done += len(chunk)
        progress.tick(done)
    return total, time.perf_counter() - started


def check_day(clinic: Clinic, start: datetime, end: datetime, patients: int) -> dict[str, Any]:
    """Every patient has its four reminders of the day, at the right local and UTC times."""
    from careloop.careplans import domain
    from careloop.reminders import models as rm

    day = rm.Occurrence.objects.filter(
        organisation_id=clinic.org_id, due_at__gte=start, due_at__lt=end
    )
    total = day.count()
    per_patient = Counter(day.values_list("patient_id", flat=True))
    wrong_count = sum(1 for n in per_patient.values() if n != PER_DAY)
    times = {local[11:16] for local in day.values_list("local_due", flat=True).distinct()}
    step = max(1, total // 2000)
    mismatched = 0
    sample = list(day.order_by("id").values_list("local_due", "time_zone", "due_at")[::step])
    for local_due, zone, due_at in sample:
        local = datetime.strptime(local_due, "%Y-%m-%dT%H:%M")  # noqa: DTZ007 - wall time
        if domain.to_utc(local, domain.zone(zone)) != due_at:
            mismatched += 1
    return {
        "ok": total == PER_DAY * patients
        and len(per_patient) == patients
        and wrong_count == 0
        and times == LOCAL_TIMES
        and mismatched == 0,
        "occurrences": total,
        "expected": PER_DAY * patients,
        "patients_with_other_than_4": wrong_count,
        "local_times": sorted(times),
        "sampled_utc_checks": len(sample),
        "utc_mismatches": mismatched,
    }


# --- floors -------------------------------------------------------------------------------------

FLOOR_TABLE = "bench_floor_occurrence"


def _floor_ddl() -> list[str]:
    """The occurrence table and its indexes, under another name (no rows)."""
    from django.db import connection

    from careloop.reminders import models as rm

    table = rm.Occurrence._meta.db_table
    if connection.vendor == "postgresql":
        return [f"CREATE TABLE {FLOOR_TABLE} (LIKE {table} INCLUDING ALL)"]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL"
            " ORDER BY type DESC",
            [table],
        )
        found = cur.fetchall()
    out = []
    for kind, name, ddl in found:
        ddl = ddl.replace(f'"{table}"', f'"{FLOOR_TABLE}"')
        if kind == "index":
            ddl = ddl.replace(f'"{name}"', f'"floor_{name}"')
        out.append(ddl)
    return out


def floor_insert(clinic: Clinic) -> tuple[int, float]:
    """Seconds to insert the day's occurrence rows, as stored, with one `executemany` into a
    copy of the table with the same indexes."""
    from django.db import connection, transaction

    from careloop.reminders import models as rm

    columns = [str(f.column) for f in rm.Occurrence._meta.concrete_fields if not f.primary_key]
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")  # noqa: S608 - constant name
        for ddl in _floor_ddl():
            cur.execute(ddl)
        cur.execute(
            f"SELECT {names} FROM {rm.Occurrence._meta.db_table}"  # noqa: S608 - model columns
            " WHERE organisation_id = %s ORDER BY id",
            [clinic.org_id],
        )
        rows = cur.fetchall()
    marks = ", ".join(["%s"] * len(columns))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {FLOOR_TABLE} ({names}) VALUES ({marks})",  # noqa: S608 - constants
            rows,
        )
    seconds = time.perf_counter() - started
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")  # noqa: S608 - constant name
    return len(rows), seconds


def claim_floor_loop(batch: int, interval: float, stop: Any) -> int:
    """What a worker does without sending: claim a batch, release it done. Returns rows."""
    from django.db import close_old_connections

    from careloop.kit.clock import utc_now
    from careloop.reminders import dispatcher
    from careloop.reminders import models as rm

    worker = dispatcher.new_worker_id()
    done = 0
    while not stop.is_set():
        close_old_connections()
        ids = dispatcher.claim(worker, utc_now(), batch)
        if not ids:
            stop.wait(interval)
            continue
        done += rm.Occurrence.objects.filter(pk__in=ids, claimed_by=worker).update(
            wake_at=None, claimed_by="", claim_expires=None, updated_at=utc_now()
        )
    return done


# --- bursts --------------------------------------------------------------------------------------


@dataclass
class Burst:
    label: str
    ids: list[int]
    due: datetime
    keys: dict[str, int]  # message key at the provider -> occurrence id


def add_burst(clinic: Clinic, patient_ids: Sequence[int], label: str) -> Burst:
    """One dose reminder per patient, not yet due (no wake time): `make_due` arms them."""
    from careloop.careplans import models as cm
    from careloop.patients import models as pm
    from careloop.reminders import links
    from careloop.reminders import models as rm
    from careloop.reminders import services as reminder_services

    enrolment_of = dict(
        cm.Enrolment.objects.filter(organisation_id=clinic.org_id).values_list("patient_id", "pk")
    )
    zone_of = dict(
        pm.Patient.objects.filter(organisation_id=clinic.org_id).values_list("pk", "time_zone")
    )
    placeholder = datetime(2000, 1, 1, tzinfo=UTC)
    values = []
    for pk in patient_ids:
        key = f"e{enrolment_of[pk]}:medication:{label}"
        values.append(
            {
                "organisation_id": clinic.org_id,
                "patient_id": pk,
                "enrolment_id": enrolment_of[pk],
                "activity_code": "medication",
                "kind": "medication",
                "purpose": "care_reminders",
                "source_key": key,
                "local_due": "",
                "time_zone": zone_of[pk],
                "due_at": placeholder,
                "wake_at": None,
                "link_digest": links.digest(links.token_for(key)),
                "ref": _ref(label),
                "payload": {
                    "title": "按时服药",
                    "title_en": "Take your medicine",
                    "medication": "硝苯地平片",
                    "dose": "10 mg",
                },
            }
        )
    reminder_services.insert_occurrences(values)
    rows = rm.Occurrence.objects.filter(ref=_ref(label)).values_list("pk", "link_digest")
    keys = {"t:" + digest: pk for pk, digest in rows}
    return Burst(label, sorted(keys.values()), placeholder, keys)


def _ref(label: str) -> str:
    return f"bench:{label}"


def _rows(burst: Burst) -> Any:
    from careloop.reminders import models as rm

    return rm.Occurrence.objects.filter(ref=_ref(burst.label))


def make_due(burst: Burst, due: datetime) -> None:
    """Every reminder of the burst falls due at the same instant (one UPDATE per zone)."""
    from django.db import transaction

    from careloop.careplans import domain

    with transaction.atomic():
        base = _rows(burst)
        for zone in base.values_list("time_zone", flat=True).distinct():
            local = domain.local_of(due, domain.zone(zone))
            base.filter(time_zone=zone).update(
                due_at=due, wake_at=due, local_due=f"{local:%Y-%m-%dT%H:%M}"
            )
    burst.due = due


def burst_state(burst: Burst) -> dict[str, int]:
    from django.db.models import Count

    return {
        row["status"]: row["n"]
        for row in _rows(burst).values("status").annotate(n=Count("id")).order_by()
    }


def settled(burst: Burst) -> bool:
    state = burst_state(burst)
    return not any(state.get(s, 0) for s in ("scheduled", "retrying", "sending"))


def at_provider(fake: FakeProvider, burst: Burst) -> tuple[Counter[int], list[float]]:
    """Messages the provider accepted per occurrence of the burst, and each one's lateness."""
    counts: Counter[int] = Counter()
    late: list[float] = []
    for sent in fake.sent():
        pk = burst.keys.get(message_key(sent))
        if pk is None:
            continue
        counts[pk] += 1
        at = datetime.fromisoformat(sent["at"])
        late.append((at - burst.due).total_seconds())
    return counts, late


def delivery_check(burst: Burst, counts: Counter[int]) -> dict[str, Any]:
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    losses = sum(1 for pk in burst.ids if counts.get(pk, 0) == 0)
    state = burst_state(burst)
    return {
        "ok": duplicates == 0 and losses == 0 and state == {"sent": len(burst.ids)},
        "reminders": len(burst.ids),
        "duplicates": duplicates,
        "losses": losses,
        "statuses": state,
    }


def _wait(check: Any, timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _worker_env(lease: int) -> dict[str, str]:
    env = dict(os.environ)
    env["CARELOOP_DISPATCH_LEASE_SECONDS"] = str(lease)
    env.setdefault("CARELOOP_LOG_LEVEL", "INFO")  # "started" tells that a worker is up
    return env


def _started(workers: Workers, n: int) -> bool:
    return workers.logs().count(" started") >= n


def run_claim_floor(
    burst: Burst, processes: int, log_dir: Path, lease: int, emit: Emit | None
) -> float:
    """Seconds from the burst's due instant until every row was claimed and released."""
    from django.db.models import Max

    from careloop.kit.clock import utc_now

    env = _worker_env(lease)
    procs = []
    files = []
    for i in range(processes):
        out = (log_dir / f"floor-{i}.log").open("w", encoding="utf-8")
        files.append(out)
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "careloop.bench.reminders",
                    "claim-floor",
                    "--batch",
                    str(BATCH),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        _wait(
            lambda: (
                sum(
                    (log_dir / f"floor-{i}.log").read_text().count("ready")
                    for i in range(processes)
                )
                >= processes
            ),
            60,
            "the claim loops to start",
        )
        make_due(burst, utc_now() + timedelta(seconds=1))
        base = _rows(burst)
        _wait(
            lambda: not base.filter(wake_at__isnull=False).exists(),
            600,
            "the claim floor",
            step=0.5,
        )
        last = base.aggregate(last=Max("updated_at"))["last"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fh in files:
            fh.close()
    seconds = (last - burst.due).total_seconds()
    _say(emit, f"  no-op claim loop: {len(burst.ids):,} rows in {seconds:.2f} s")
    return seconds


def run_dispatch(
    burst: Burst,
    fake: FakeProvider,
    processes: int,
    log_dir: Path,
    *,
    lease: int,
    kill_one: bool,
    emit: Emit | None,
) -> dict[str, Any]:
    """Workers send the burst; optionally one is killed mid-batch and replaced after its lease."""
    from careloop.kit.clock import utc_now
    from careloop.reminders import models as rm

    workers = Workers(log_dir, env=_worker_env(lease))
    procs = [workers.start(batch=BATCH) for _ in range(processes)]
    killed: dict[str, Any] = {}
    cpu: dict[str, float | None] = {}
    try:
        _wait(lambda: _started(workers, processes), 60, "the workers to start")
        before = _cpu_now(procs, fake)
        make_due(burst, utc_now() + timedelta(seconds=1))
        if kill_one:
            victim = procs[0]
            # The burst's rows are the newest: an id range finds their attempts by index.
            attempts = rm.Attempt.objects.filter(occurrence_id__gte=min(burst.ids))
            _wait(
                lambda: attempts.filter(outcome="accepted").count() >= len(burst.ids) // 4,
                600,
                "a quarter of the burst to be sent",
            )
            # The victim's own messages in flight: attempts committed, provider not yet answered.
            its = attempts.filter(worker=_worker_id(workers, 0))
            caught = _freeze_when(
                victim,
                lambda: its.filter(outcome="pending").exists(),
                timeout=300,
                done=lambda: settled(burst),
            )
            killed = {
                "in_doubt": its.filter(outcome="pending").count() if caught else 0,
                "accepted_before": attempts.filter(outcome="accepted").count(),
                "caught_in_flight": caught,
            }
            workers.kill(victim)
            if caught:
                _say(
                    emit,
                    f"  killed a worker (SIGKILL) with {killed['in_doubt']} messages in flight "
                    f"after {killed['accepted_before']:,} were accepted; a replacement starts "
                    f"when its {lease} s lease has run out",
                )
            else:
                _say(emit, "  the burst was all sent before a kill could catch messages in flight")
            time.sleep(lease)
            workers.start(batch=BATCH)
        _wait(lambda: settled(burst), 900, "every reminder of the burst to be settled", 0.5)
        after = _cpu_now(procs, fake)
        cpu = {k: _minus(after.get(k), before.get(k)) for k in after}
    finally:
        codes = workers.stop_all()
    counts, late = at_provider(fake, burst)
    seconds = max(late) if late else 0.0
    result: dict[str, Any] = {
        "reminders": len(burst.ids),
        "processes": processes,
        "seconds": round(seconds, 3),
        "messages_per_s": rate(len(burst.ids), seconds),
        "lateness_p50_s": round(percentile(late, 50), 3) if late else None,
        "lateness_p99_s": round(percentile(late, 99), 3) if late else None,
        "lateness_max_s": round(max(late), 3) if late else None,
        "exit_codes": codes,
        "delivery": delivery_check(burst, counts),
    }
    if not kill_one:
        result["cpu_seconds"] = {k: None if v is None else round(v, 2) for k, v in cpu.items()}
        result["cpu_us_per_message"] = {
            k: None if v is None else round(1e6 * v / max(1, len(burst.ids)))
            for k, v in cpu.items()
        }
    if kill_one:
        result["killed"] = killed
    return result


def _cpu_of(pid: int) -> float | None:
    """CPU seconds (user and system) a process has used so far; None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _database_pids() -> list[int]:
    """PostgreSQL backends serving this database (the workers'), not this process's own."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cur.fetchall()]


def _cpu_now(procs: Sequence[subprocess.Popen[bytes]], fake: FakeProvider) -> dict[str, float]:
    """CPU used so far by the workers, their database backends (PostgreSQL, same machine) and
    the fake provider. A backend that closes between two readings is not counted."""

    def total(pids: Iterable[int]) -> float | None:
        values = [_cpu_of(pid) for pid in pids]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    out: dict[str, Any] = {
        "workers": total(p.pid for p in procs if p.poll() is None),
        "provider": total([fake.proc.pid] if fake.proc is not None else []),
    }
    db = _database_pids()
    if db:
        out["database"] = {pid: _cpu_of(pid) for pid in db}
    return out


def _minus(after: Any, before: Any) -> float | None:
    if isinstance(after, dict):
        if not isinstance(before, dict):
            return None
        # Backends present at both readings.
        return sum(
            (after[pid] or 0) - (before[pid] or 0) for pid in after if before.get(pid) is not None
        )
    if after is None or before is None:
        return None
    return float(after) - float(before)


def _worker_id(workers: Workers, n: int) -> str:
    """The dispatcher id a worker logged when it started."""
    text = (workers.log_dir / f"worker-{n}.log").read_text(encoding="utf-8", errors="replace")
    found = re.search(r"dispatcher (\S+) started", text)
    if found is None:
        raise RuntimeError("the worker did not say who it is")
    return found.group(1)


def _freeze_when(
    proc: subprocess.Popen[bytes], check: Any, timeout: float, done: Any = None
) -> bool:
    """Stop the process (SIGSTOP) at a moment `check` holds, so a kill leaves that state.
    False (the process running on) when `done` says there is nothing left to catch."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("the worker ended before it could be killed")
        proc.send_signal(signal.SIGSTOP)
        try:
            if check():
                return True
            if done is not None and done():
                proc.send_signal(signal.SIGCONT)
                return False
        except Exception:  # noqa: S110 - SQLite busy while the process holds its lock
            pass
        proc.send_signal(signal.SIGCONT)
        if time.monotonic() > deadline:
            raise RuntimeError("no moment with messages in flight was found")
        time.sleep(0.05)  # let it work between looks


# --- the run -------------------------------------------------------------------------------------


def refresh_statistics() -> str:
    """Planner statistics after the bulk load, as autovacuum would have them by now."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return "none"
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return "ANALYZE after loading"


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def run(size: str, seed: int, emit: Emit | None) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    from careloop.kit.clock import utc_now

    plan_size = SIZES[size]
    n = plan_size.patients
    processes = 2 if connection.vendor == "postgresql" else 1
    var_dir = Path(settings.VAR_DIR)
    log_dir = var_dir / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    checks: dict[str, dict[str, Any]] = {}
    today = utc_now().date()

    with FakeProvider(var_dir / "sms-sent.jsonl", latency=plan_size.provider_latency) as fake:
        _say(
            emit,
            f"set-up: {n:,} patients over {len(ZONES)} zones; fake SMS API at "
            f"{fake.config['endpoint']}",
        )
        t = time.perf_counter()
        clinic = set_up_organisation(fake.config)
        patient_ids = add_patients(clinic, n, seed=seed, today=today, emit=emit)
        enrolment_ids = enrol_all(clinic, patient_ids, today=today)
        statistics = refresh_statistics()
        phases["set_up"] = time.perf_counter() - t

        start = simulated_day(today)
        end = start + timedelta(days=1)
        _say(emit, f"materialising {start:%Y-%m-%d} (UTC) for {n:,} enrolments")
        made, mat_seconds = materialise(enrolment_ids, start=start, end=end, emit=emit)
        phases["materialise"] = mat_seconds
        checks["day"] = check_day(clinic, start, end, n)
        # Materialising again changes nothing (the keys are deterministic and unique).
        again, _s = materialise(enrolment_ids[:1000], start=start, end=end, emit=None)
        checks["idempotent"] = {
            "ok": check_day(clinic, start, end, n)["occurrences"] == checks["day"]["occurrences"],
            "offered_again": again,
        }
        statistics = refresh_statistics() if statistics != "none" else statistics

        _say(emit, "floor: executemany of the same rows into a copy of the table")
        t = time.perf_counter()
        floor_rows, floor_seconds = floor_insert(clinic)
        phases["floor_insert"] = time.perf_counter() - t

        burst_n = min(plan_size.burst, n)
        chosen = patient_ids[:burst_n]
        _say(emit, f"bursts of {burst_n:,} reminders due at one instant, {processes} process(es)")
        t = time.perf_counter()
        floor_burst = add_burst(clinic, chosen, "floor")
        claim_seconds = run_claim_floor(
            floor_burst, processes, log_dir, plan_size.lease_seconds, emit
        )
        phases["claim_floor"] = time.perf_counter() - t

        t = time.perf_counter()
        burst = add_burst(clinic, chosen, "burst")
        (log_dir / "dispatch").mkdir(exist_ok=True)
        dispatch = run_dispatch(
            burst,
            fake,
            processes,
            log_dir / "dispatch",
            lease=plan_size.lease_seconds,
            kill_one=False,
            emit=emit,
        )
        phases["dispatch"] = time.perf_counter() - t
        checks["burst_delivery"] = dispatch["delivery"]
        _say(
            emit,
            f"  dispatch: {dispatch['messages_per_s']:,.0f} messages/s, lateness p50 "
            f"{dispatch['lateness_p50_s']} s, p99 {dispatch['lateness_p99_s']} s",
        )

        t = time.perf_counter()
        crash_burst = add_burst(clinic, chosen, "crash")
        (log_dir / "crash").mkdir(exist_ok=True)
        crash = run_dispatch(
            crash_burst,
            fake,
            processes,
            log_dir / "crash",
            lease=plan_size.lease_seconds,
            kill_one=True,
            emit=emit,
        )
        phases["crash"] = time.perf_counter() - t
        checks["crash_delivery"] = crash["delivery"]
        checks["crash_in_flight"] = {
            "ok": crash["killed"]["in_doubt"] > 0,
            "in_doubt_at_kill": crash["killed"]["in_doubt"],
        }
    _say(emit, "checking")
    correct = all(c["ok"] for c in checks.values())

    mat_rate = rate(made, mat_seconds)
    floor_rate = rate(floor_rows, floor_seconds)
    claim_rate = rate(burst_n, claim_seconds)
    dispatch_rate = dispatch["messages_per_s"]
    duplicates = dispatch["delivery"]["duplicates"] + crash["delivery"]["duplicates"]
    losses = dispatch["delivery"]["losses"] + crash["delivery"]["losses"]
    targets = {
        "materialise_vs_floor": _target(
            mat_rate >= floor_rate / 10, ">= 1/10 of the floor", _ratio(mat_rate, floor_rate)
        ),
        "materialise_sqlite_50k": _target(mat_rate >= 50_000, ">= 50,000/s (SQLite)", mat_rate)
        if connection.vendor == "sqlite"
        else None,
        "dispatch_5k_postgres": _target(
            dispatch_rate >= 5_000, ">= 5,000 messages/s (PostgreSQL, 2 workers)", dispatch_rate
        )
        if connection.vendor == "postgresql"
        else None,
        "dispatch_vs_claim_floor": _target(
            dispatch_rate * 1.5 >= claim_rate,
            "within 1.5x of the no-op claim floor",
            _ratio(dispatch_rate, claim_rate),
        ),
        "burst_p99": _target(
            (dispatch["lateness_p99_s"] or 0) <= 15,
            "p99 lateness <= 15 s",
            dispatch["lateness_p99_s"],
        ),
        "duplicates": _target(duplicates == 0, "0", duplicates),
        "losses": _target(losses == 0, "0", losses),
    }
    targets = {k: v for k, v in targets.items() if v is not None}
    return {
        "n": made,
        "unit": "occurrences",
        "seconds": round(mat_seconds + dispatch["seconds"], 3),
        "rate_per_s": mat_rate,
        "materialise_per_s": mat_rate,
        "dispatch_per_s": dispatch_rate,
        "burst_p50_s": dispatch["lateness_p50_s"],
        "burst_p99_s": dispatch["lateness_p99_s"],
        "duplicates": duplicates,
        "losses": losses,
        "metrics": {
            "patients": n,
            "zones": len(ZONES),
            "simulated_day": start.date().isoformat(),
            "materialise": {
                "occurrences": made,
                "seconds": round(mat_seconds, 3),
                "per_s": mat_rate,
                "per_patient_per_day": PER_DAY,
            },
            "dispatch": dispatch,
            "crash": crash,
            "worker_processes": processes,
            "batch_size": BATCH,
            "lease_seconds": plan_size.lease_seconds,
        },
        "floors": {"executemany_occurrences": floor_rate, "noop_claim_loop": claim_rate},
        "floor_seconds": {
            "executemany_occurrences": round(floor_seconds, 4),
            "noop_claim_loop": round(claim_seconds, 4),
        },
        "ratios": {
            "materialise_vs_executemany": _ratio(mat_rate, floor_rate),
            "dispatch_vs_noop_claim": _ratio(dispatch_rate, claim_rate),
        },
        "targets": targets,
        "correct": correct,
        "checks": checks,
        "phases": {k: round(v, 3) for k, v in phases.items()},
        "statistics": statistics,
        "notes": NOTES,
    }


def _target(met: bool, target: str, measured: Any) -> dict[str, Any]:
    return {"met": bool(met), "target": target, "measured": measured}


NOTES = (
    "materialise_per_s: occurrences of one simulated day written through "
    "careplans.services.materialise_many, 1,000 enrolments per call (rate_per_s is this). "
    "Floor executemany_occurrences: the same rows, as stored, inserted with one executemany "
    "into a copy of the occurrence table with the same indexes. dispatch_per_s: a burst of "
    "reminders (one per patient) all due at one instant, sent by `careloop worker` processes "
    "(2 on PostgreSQL, 1 on SQLite; batch 200, default poll interval) to the fake Aliyun SMS "
    "API (SendBatchSms, 100 per request) in its own process on loopback; timed from the due "
    "instant to the last message the provider accepted; lateness is accepted-at minus due. "
    "Floor noop_claim_loop: the same number of processes claiming the same burst with "
    "dispatcher.claim() and releasing each batch without sending. Duplicates and losses are "
    "counted at the provider (per portal link token, which SendBatchSms carries per message) "
    "for the clean burst and for a second burst during which one worker is killed with "
    "SIGKILL while messages are in flight (a replacement starts after its lease)."
)


def main(argv: list[str] | None = None) -> int:
    """`python -m careloop.bench.reminders claim-floor`: the no-op claim loop of one process."""
    import threading

    parser = argparse.ArgumentParser(prog="python -m careloop.bench.reminders")
    parser.add_argument("action", choices=["claim-floor"])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    import django

    django.setup()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    done = claim_floor_loop(args.batch, args.interval, stop)
    print(f"released {done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

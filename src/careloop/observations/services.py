"""Every write of readings, symptom-diary entries and adverse-reaction reports.

All ways in (staff form, JSON API, CSV and device files, Apple Health, HL7, FHIR) call `ingest`,
which reads items in chunks: each chunk is normalised, checked against the caller's scope,
stored in one transaction (a reading sent twice is stored once), and fed to the rule engine in
the same transaction, so an alert exists as soon as the reading does. Bad items are reported
by line and reason; the good ones are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.kit.rows import row_sources
from careloop.observations import domain
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

CHUNK = 1000
PROBLEM_LIMIT = 1000
_PG_TYPES = (
    "bigint", "bigint", "text", "text", "float8", "float8", "text", "text", "text", "text",
    "timestamptz", "text", "int", "int", "text", "timestamptz", "bigint",
)  # fmt: skip
_COLUMNS = (
    "organisation_id, patient_id, kind, code, value, value2, unit, context, source, device_id, "
    "effective_at, time_zone, local_day, local_hour, original, created_at, entered_by_id"
)


@dataclass
class LineProblem:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class IngestReport:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # ids of stored readings (first 1,000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "alerts": self.alerts,
            "problems": [p.as_dict() for p in self.problems],
            "ids": self.ids,
        }

    def problem(self, line: int, field_name: str, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < PROBLEM_LIMIT:
            self.problems.append(LineProblem(line, field_name, reason))


@dataclass
class _Patient:
    id: int
    zone: str
    problem: str = ""


class _Scope:
    """The patients a caller may write readings for, looked up once per patient per ingest."""

    def __init__(self, actor: Actor | None, organisation_id: int) -> None:
        self.actor = actor
        self.organisation_id = organisation_id
        self.known: dict[Any, _Patient] = {}

    def _base(self) -> Any:
        if self.actor is not None:
            return patient_selectors.visible_patients(self.actor)
        return pm.Patient.objects.filter(organisation_id=self.organisation_id)

    def load(self, refs: set[Any]) -> None:
        ids = {r for r in refs if isinstance(r, int) and r not in self.known}
        numbers = {r for r in refs if isinstance(r, str) and r not in self.known}
        rows: list[tuple[Any, ...]] = []
        fields = ("pk", "record_number", "time_zone", "deceased_on", "merged_into_id")
        if ids:
            rows += list(self._base().filter(pk__in=ids).values_list(*fields))
        if numbers:
            rows += list(self._base().filter(record_number__in=numbers).values_list(*fields))
        for pk, number, zone, deceased, merged in rows:
            problem = ""
            if deceased is not None:
                problem = _("the patient is recorded as deceased")
            elif merged is not None:
                problem = _("this record was merged into another patient's")
            entry = _Patient(pk, zone, problem)
            self.known[pk] = entry
            if number:
                self.known[number] = entry
        for ref in ids | numbers:
            self.known.setdefault(ref, _Patient(0, "", _("no such patient")))


def _patient_ref(raw: Any) -> Any:
    """An item names its patient by CareLoop id (number) or by record number (text)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    text = str(raw or "").strip()
    if text.isdigit() and len(text) < 16:
        return int(text)
    if text.startswith("#"):
        return text[1:]
    return text or None


def _db_time(moment: datetime) -> Any:
    """The value the database driver expects for a DateTimeField (Django's SQLite form)."""
    if connection.vendor == "sqlite":
        return str(moment.astimezone(UTC).replace(tzinfo=None))
    return moment


def _insert(rows: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    """Insert readings, skipping those already stored; the natural keys of the new ones."""
    table = om.Observation._meta.db_table
    # The time comes back exactly as it was sent: text on SQLite (an expression has no declared
    # type, so no conversion), an aware datetime on PostgreSQL.
    returned_time = "effective_at || ''" if connection.vendor == "sqlite" else "effective_at"
    inserted: set[tuple[Any, ...]] = set()
    with connection.cursor() as cursor:
        for source, params in row_sources(rows, _PG_TYPES):
            cursor.execute(
                f"INSERT INTO {table} ({_COLUMNS}) {source} "  # noqa: S608 - fixed names
                "ON CONFLICT (patient_id, kind, effective_at, source, device_id) DO NOTHING "
                f"RETURNING id, patient_id, kind, {returned_time}, source, device_id",
                params,
            )
            for pk, patient_id, kind, at, source, device in cursor.fetchall():
                inserted.add((patient_id, kind, at, source, device, pk))
    return inserted


def _update_latest(organisation_id: int, newest: dict[tuple[int, str], domain.Reading]) -> None:
    if not newest:
        return
    table = om.Latest._meta.db_table
    rows = [
        (r.patient_id, organisation_id, r.kind, _db_time(r.effective_at), r.value, r.value2,
         r.context)
        for r in newest.values()
    ]  # fmt: skip
    types = ("bigint", "bigint", "text", "timestamptz", "float8", "float8", "text")
    with connection.cursor() as cursor:
        for source, params in row_sources(rows, types):
            cursor.execute(
                f"INSERT INTO {table} "  # noqa: S608 - fixed names
                "(patient_id, organisation_id, kind, last_at, value, value2, context) "
                f"{source} ON CONFLICT (patient_id, kind) DO UPDATE SET "
                "last_at = excluded.last_at, value = excluded.value, "
                "value2 = excluded.value2, context = excluded.context "
                f"WHERE {table}.last_at IS NULL OR excluded.last_at > {table}.last_at",
                params,
            )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def ingest(
    actor: Actor | None,
    items: Iterable[tuple[int, Mapping[str, Any]] | Mapping[str, Any]],
    *,
    organisation_id: int | None = None,
    source: str = "staff",
    origin: str = "api",
    patient_id: int | None = None,
    progress: Callable[[IngestReport], None] | None = None,
    chunk_size: int = CHUNK,
    evaluate: bool = True,
) -> IngestReport:
    """Store readings and evaluate the rules on them.

    `items` are dicts (or (line, dict) pairs, so files report their own line numbers). A caller
    without an actor is the organisation's own system (HIS interface, device gateway) and must
    name the organisation. `patient_id` fixes the patient of every item (a file for one patient).
    """
    if actor is not None:
        patient_selectors.require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)
        organisation_id = actor.organisation_id
    if not organisation_id:
        raise NotFound()
    scope = _Scope(actor, organisation_id)
    if patient_id is not None:
        scope.load({patient_id})
        if scope.known[patient_id].id == 0:
            raise NotFound()
    report = IngestReport()
    entered_by = actor.user.pk if actor is not None else None
    line = 0
    for chunk in _chunks(items, chunk_size):
        numbered: list[tuple[int, Mapping[str, Any]]] = []
        for entry in chunk:
            if isinstance(entry, tuple):
                numbered.append(entry)
                line = entry[0]
            else:
                line += 1
                numbered.append((line, entry))
        _ingest_chunk(
            scope, numbered, report, organisation_id, source, origin, patient_id, entered_by,
            evaluate, actor,
        )  # fmt: skip
        if progress is not None:
            progress(report)
    return report


def _ingest_chunk(
    scope: _Scope,
    numbered: list[tuple[int, Mapping[str, Any]]],
    report: IngestReport,
    organisation_id: int,
    source: str,
    origin: str,
    fixed_patient: int | None,
    entered_by: int | None,
    evaluate: bool,
    actor: Actor | None,
) -> None:
    report.received += len(numbered)
    refs: set[Any] = set()
    for _line, item in numbered:
        if type(item) is not dict and not isinstance(item, Mapping):
            continue
        ref = fixed_patient if fixed_patient is not None else _patient_ref(item.get("patient"))
        if ref is not None:
            refs.add(ref)
    scope.load(refs)
    now = utc_now()
    created = _db_time(now)
    readings: list[tuple[int, domain.Reading]] = []
    seen: set[tuple[Any, ...]] = set()
    for line, item in numbered:
        if type(item) is not dict and not isinstance(item, Mapping):
            report.problem(line, "", _("not an object"))
            continue
        ref = fixed_patient if fixed_patient is not None else _patient_ref(item.get("patient"))
        if ref is None:
            report.problem(line, "patient", _("the patient is missing"))
            continue
        who = scope.known.get(ref)
        if who is None or who.id == 0 or who.problem:
            report.problem(line, "patient", who.problem if who else _("no such patient"))
            continue
        try:
            reading = domain.normalise(
                item, patient_id=who.id, zone_name=who.zone, source=source, now=now
            )
        except domain.Problem as problem:
            report.problem(line, problem.field, problem.message)
            continue
        key = (who.id, reading.kind, reading.effective_at, reading.source, reading.device_id)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        readings.append((line, reading))
    if not readings:
        return
    sqlite = connection.vendor == "sqlite"
    times = [
        str(r.effective_at.replace(tzinfo=None)) if sqlite else r.effective_at
        for _line, r in readings
    ]  # effective_at is UTC already
    rows = [
        (
            organisation_id, r.patient_id, r.kind, r.code, r.value, r.value2, r.unit, r.context,
            r.source, r.device_id, at, r.time_zone, r.local_day, r.local_hour, r.original,
            created, entered_by,
        )
        for (_line, r), at in zip(readings, times, strict=True)
    ]  # fmt: skip
    with transaction.atomic():
        inserted = _insert(rows)
        ids: dict[tuple[Any, ...], int] = {k[:5]: k[5] for k in inserted}
        fresh: list[tuple[int, domain.Reading]] = []
        newest: dict[tuple[int, str], domain.Reading] = {}
        for (_line, r), at in zip(readings, times, strict=True):
            pk = ids.get((r.patient_id, r.kind, at, r.source, r.device_id))
            if pk is None:
                report.duplicates += 1
                continue
            fresh.append((pk, r))
            current = newest.get((r.patient_id, r.kind))
            if current is None or r.effective_at > current.effective_at:
                newest[(r.patient_id, r.kind)] = r
        report.accepted += len(fresh)
        if len(report.ids) < PROBLEM_LIMIT:
            report.ids += [pk for pk, _r in fresh[: PROBLEM_LIMIT - len(report.ids)]]
        first_time: set[int] = set()
        if evaluate and fresh:
            # Patients with no reading before this chunk have no history to replay.
            pids = {pid for pid, _kind in newest}
            known: set[int] = set(
                om.Latest.objects.filter(patient_id__in=pids, last_at__isnull=False)
                .values_list("patient_id", flat=True)
                .distinct()
            )
            first_time = pids - known
        _update_latest(organisation_id, newest)
        if evaluate and fresh:
            from careloop.alerts import evaluation

            report.alerts += evaluation.on_readings(organisation_id, fresh, first_time)
        if fresh:
            _audit(actor, organisation_id, origin, fresh)


def _audit(
    actor: Actor | None,
    organisation_id: int,
    origin: str,
    fresh: list[tuple[int, domain.Reading]],
) -> None:
    patients = sorted({r.patient_id for _pk, r in fresh})
    detail = {"origin": origin, "readings": len(fresh)}
    if len(patients) == 1:
        target: dict[str, Any] = {"patient_id": patients[0]}
    else:
        target = {}
        detail["patients"] = patients[:CHUNK]  # type: ignore[assignment]
    if actor is not None:
        audit.record(actor, "observation.create", detail=detail, **target)
    else:
        audit.append(
            action="observation.create",
            organisation_id=organisation_id,
            actor_name=f"system:{origin}",
            source=origin,
            detail=detail,
            **target,
        )


def record_one(actor: Actor, patient_id: int, item: Mapping[str, Any]) -> om.Observation:
    """One reading entered by staff; a refused value raises ValidationFailed naming the field."""
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False)
    report = ingest(actor, [dict(item)], patient_id=patient_id, source="staff", origin="staff")
    if report.problems:
        problem = report.problems[0]
        raise ValidationFailed(details={problem.field or "value": [problem.reason]})
    if not report.ids:
        raise ValidationFailed(details={"effective": [_("This reading is already recorded.")]})
    return om.Observation.objects.get(pk=report.ids[0])


# --- adverse reactions, symptoms, expectations ----------------------------------------------


def report_adverse_reaction(
    actor: Actor,
    patient_id: int,
    *,
    drug: str,
    symptom: str,
    severity: int,
    onset: date,
    medication_id: int | None = None,
    note: str = "",
    source: str = "staff",
) -> om.AdverseReaction:
    """Record a reported adverse drug reaction; the rules route it to the attending doctor."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False
    )
    errors: dict[str, list[str]] = {}
    if not (drug or "").strip() and medication_id is None:
        errors["drug"] = [_("Name the drug.")]
    if not (symptom or "").strip():
        errors["symptom"] = [_("Describe the reaction.")]
    if severity not in om.AdverseReaction.Severity.values:
        errors["severity"] = [_("Choose a severity.")]
    if onset > utc_now().astimezone(ZoneInfo(patient.time_zone)).date():  # the patient's today
        errors["onset"] = [_("The onset cannot be in the future.")]
    medication = None
    if medication_id is not None:
        medication = pm.Medication.objects.filter(pk=medication_id, patient_id=patient.pk).first()
        if medication is None:
            errors["medication"] = [_("Choose one of the patient's medicines.")]
    if source not in domain.SOURCES:
        errors["source"] = [_("Unknown source.")]
    if errors:
        raise ValidationFailed(details=errors)
    with transaction.atomic():
        reaction = om.AdverseReaction.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            medication=medication,
            drug=(drug or (medication.name if medication else "")).strip()[:200],
            symptom=symptom.strip()[:200],
            severity=severity,
            onset=onset,
            note=(note or "").strip()[:1000],
            source=source,
            entered_by=actor.user,
        )
        audit.record(actor, "adverse_reaction.create", patient_id=patient.pk, obj=reaction)
        from careloop.alerts import evaluation

        evaluation.on_event(
            patient.organisation_id,
            patient.pk,
            kind="adr",
            at=reaction.reported_at,
            zone=patient.time_zone,
            value=float(severity),
            context=reaction.drug,
            ref=reaction.pk,
        )
    return reaction


def record_symptom(
    actor: Actor,
    patient_id: int,
    *,
    symptom: str,
    severity: int,
    effective_at: datetime | None = None,
    note: str = "",
    source: str = "staff",
) -> om.SymptomEntry:
    """Add a symptom-diary entry (severity 0–10)."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False
    )
    errors: dict[str, list[str]] = {}
    if not (symptom or "").strip():
        errors["symptom"] = [_("Name the symptom.")]
    if not isinstance(severity, int) or not 0 <= severity <= 10:
        errors["severity"] = [_("Severity is a number from 0 to 10.")]
    when = effective_at or utc_now()
    if when > utc_now():
        errors["effective"] = [_("The time cannot be in the future.")]
    if errors:
        raise ValidationFailed(details=errors)
    with transaction.atomic():
        entry = om.SymptomEntry.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            symptom=symptom.strip()[:100],
            severity=severity,
            note=(note or "").strip()[:1000],
            source=source,
            effective_at=when,
            entered_by=actor.user,
        )
        audit.record(actor, "symptom.create", patient_id=patient.pk, obj=entry)
        from careloop.alerts import evaluation

        evaluation.on_event(
            patient.organisation_id,
            patient.pk,
            kind="symptom",
            at=when,
            zone=patient.time_zone,
            value=float(severity),
            context=entry.symptom,
            ref=entry.pk,
        )
    return entry


def set_expectations(patient_id: int, expected: Mapping[str, datetime | None]) -> None:
    """Record which readings the patient's plans ask for daily (kind → since), for absence
    rules; kinds not named stop being expected."""
    patient = pm.Patient.objects.only("organisation_id").get(pk=patient_id)
    with transaction.atomic():
        om.Latest.objects.filter(patient_id=patient_id).exclude(kind__in=list(expected)).update(
            expected_since=None
        )
        for kind, since in expected.items():
            row, created = om.Latest.objects.get_or_create(
                patient_id=patient_id,
                kind=kind,
                defaults={"organisation_id": patient.organisation_id, "expected_since": since},
            )
            if not created and (row.expected_since is None) != (since is None):
                row.expected_since = since
                row.save(update_fields=["expected_since"])

"""Bulk import of FHIR R4 resources: transaction/batch Bundles, NDJSON files, or folders of them.

Every resource goes through the facade's mappers (``careloop.fhir.registry.mappers()``, looked
up at run time, so a type added to the registry is imported too) and so through the same
services as the staff pages: validation, audit, versioning, alert rules on readings, and the
care-plan enrolment rules on coded diagnoses. The writes are made by a service account of the
organisation (``fhir-import.<code>``), like the HL7 v2 interface's.

Each file gets a report: per resource type, how many entries it holds and how many were
imported, updated, already present, skipped (a type or code CareLoop does not keep, with the
reason) or refused (with the OperationOutcome message); these always add up to the entries.

Imports are idempotent and resumable. Every imported resource is remembered in
``onboarding.FhirSourceLink`` (organisation, source, type, source id → CareLoop id), so an entry
seen before is "already present" (or updated, when its content changed and the type can be
updated) instead of stored twice, and references resolve across files and runs. A file that
finished (same path, same SHA-256) is skipped unless ``again`` is set. Each entry is its own
transaction: an interrupted run keeps what it stored and the next run resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation
from careloop.fhir import engine, registry
from careloop.fhir.outcome import FhirError
from careloop.fhir.scopes import Scopes
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import CareLoopError, ValidationFailed
from careloop.kit.identifiers import normalise_resident_id
from careloop.onboarding.models import FhirImportFile, FhirSourceLink
from careloop.patients import models as pm
from careloop.patients import services as patient_services

UUID_SOURCE = "urn:uuid"
SUFFIXES = (".json", ".ndjson", ".jsonl")
# Types created first, so the entries after them can refer to them.
FIRST = ("Patient", "Encounter")
BASE = "/fhir/"
OUTCOMES = ("imported", "updated", "present", "skipped", "refused")
PATIENT_FIELDS = {
    "name": "name",
    "sex": "gender",
    "date_of_birth": "birthDate",
    "national_id": "identifier",
    "record_number": "identifier",
    "phones": "telecom",
    "address": "address",
    "deceased_on": "deceasedDateTime",
    "preferred_language": "communication",
    "department": "managingOrganization",
}


class Unreadable(Exception):
    """The file cannot be read as FHIR JSON at all; nothing of it is imported."""


class Interrupted(Exception):
    """Raised by a progress callback to stop an import (what was stored stays)."""


@dataclass
class Entry:
    index: int  # position in the file (entry number, or line number - 1)
    full_url: str
    resource: Any


@dataclass
class TypeFigures:
    total: int = 0
    imported: int = 0
    updated: int = 0
    present: int = 0
    skipped: int = 0
    refused: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)

    def counted(self) -> int:
        return sum(getattr(self, name) for name in OUTCOMES)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"total": self.total}
        out.update({name: getattr(self, name) for name in OUTCOMES})
        out["skip_reasons"] = dict(self.skip_reasons.most_common())
        out["refusals"] = dict(self.refusals.most_common())
        return out


@dataclass
class FileReport:
    path: str
    sha256: str = ""
    entries: int = 0
    # imported (read to the end) | already-imported (skipped) | failed
    status: str = "imported"
    error: str = ""
    seconds: float = 0.0
    types: dict[str, TypeFigures] = field(default_factory=dict)

    def figures(self, resource_type: str) -> TypeFigures:
        return self.types.setdefault(resource_type, TypeFigures())

    def counted(self) -> int:
        return sum(t.counted() for t in self.types.values())

    def total(self, outcome: str) -> int:
        return sum(getattr(t, outcome) for t in self.types.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "status": self.status,
            "error": self.error,
            "entries": self.entries,
            "seconds": round(self.seconds, 3),
            **{name: self.total(name) for name in OUTCOMES},
            "types": {name: self.types[name].as_dict() for name in sorted(self.types)},
        }


@dataclass
class Progress:
    files_total: int
    resources_total: int
    files_done: int = 0
    resources_done: int = 0
    started: float = field(default_factory=time.monotonic)
    current: str = ""

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.resources_done / elapsed if elapsed > 0 else 0.0


# --- reading files -----------------------------------------------------------------------------


def files_in(path: Path) -> list[Path]:
    """The files a path names: itself, or a folder's .json/.ndjson/.jsonl files (Patient and
    Encounter files first, so references to them resolve), sorted by name."""
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES]

        def rank(p: Path) -> tuple[int, str]:
            first = [i for i, t in enumerate(FIRST) if p.name.startswith(t)]
            return (first[0] if first else len(FIRST), p.name)

        return sorted(found, key=rank)
    if path.is_file():
        return [path]
    raise Unreadable(_("There is no file or folder at %(path)s.") % {"path": str(path)[:200]})


def read_entries(data: bytes, name: str) -> list[Entry]:
    """The resources in a file's bytes: a Bundle's entries, a single resource, or NDJSON."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(_("The file is not UTF-8 text.")) from exc
    stripped = text.strip()
    if not stripped:
        raise Unreadable(_("The file is empty."))
    whole: Any = None
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError as exc:
        if "\n" not in stripped:
            raise Unreadable(_("The file is not valid JSON: %(error)s") % {"error": exc}) from exc
    if whole is None:
        return list(_ndjson(text))
    if not isinstance(whole, dict) or not isinstance(whole.get("resourceType"), str):
        raise Unreadable(_("The file holds no FHIR resource (no resourceType)."))
    if whole["resourceType"] != "Bundle":
        return [Entry(0, "", whole)]
    raw = whole.get("entry") or []
    if not isinstance(raw, list):
        raise Unreadable(_("Bundle.entry is not a list."))
    entries = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, dict) else {}
        url = item.get("fullUrl")
        entries.append(Entry(i, url if isinstance(url, str) else "", item.get("resource")))
    return entries


def _ndjson(text: str) -> Iterator[Entry]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Unreadable(
                _("Line %(line)d is not valid JSON: %(error)s") % {"line": number, "error": exc}
            ) from exc
        yield Entry(number - 1, "", resource)


def digest_of(resource: Any) -> str:
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the service account -----------------------------------------------------------------------


def import_actor(org: Organisation) -> Actor:
    """Imports act as a service account of the organisation that cannot sign in (as the HL7 v2
    interface does): department head in every department, so its writes go through the same
    checks as a member of staff registering patients and recording their care."""
    username = f"fhir-import.{org.code}"
    staff = accounts.service_account(org, username, "FHIR import")
    return Actor(user=staff, source="fhir-import", channel="fhir-import")


# --- the import --------------------------------------------------------------------------------


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Importer:
    """Imports files into one organisation. ``on_progress`` is called after every entry."""

    def __init__(
        self,
        organisation: Organisation,
        *,
        department: Department | None = None,
        source: str = "",
        again: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.org = organisation
        self.actor = import_actor(organisation)
        self.caller = engine.Caller(actor=self.actor, scopes=Scopes.full())
        self.department_id = department.pk if department else None
        self.source = source
        self.again = again
        self.on_progress = on_progress
        self.mappers = registry.mappers()
        self.progress = Progress(0, 0)
        self.stopped = False  # set once a progress callback interrupted the run
        # The links of the file being imported: (source, type, source id) → link.
        self.links: dict[tuple[str, str, str], FhirSourceLink] = {}
        # References found to name nothing imported, not looked up again in this run.
        self.unlinked: set[tuple[str, str]] = set()

    # -- files --

    def run(self, path: Path) -> list[FileReport]:
        """Import a file or every file of a folder; one report per file. A file that cannot be
        read is reported as failed and the others are imported all the same."""
        files = files_in(path)
        source = self.source or f"file:{path.resolve().name}"
        loaded: list[tuple[Path, bytes | None, list[Entry] | None, str]] = []
        for file in files:
            try:
                raw = file.read_bytes()
                loaded.append((file, raw, read_entries(raw, file.name), ""))
            except (OSError, Unreadable) as exc:
                loaded.append((file, None, None, str(exc)))
        total = sum(len(entries or []) for _f, _d, entries, _e in loaded)
        self.progress = Progress(files_total=len(files), resources_total=total)
        reports = []
        for file, data, entries, error in loaded:
            self.progress.current = file.name
            if self.stopped:
                error = _("Not imported: the run was interrupted.")
            if data is None or entries is None or self.stopped:
                reports.append(FileReport(str(file.resolve()), status="failed", error=error))
            else:
                reports.append(self.import_entries(file, data, entries, source))
            self.progress.files_done += 1
            if not self.stopped:
                self._tell()
        return reports

    def import_entries(
        self, file: Path, data: bytes, entries: list[Entry], source: str
    ) -> FileReport:
        started = time.monotonic()
        path = str(file.resolve())
        sha = hashlib.sha256(data).hexdigest()
        report = FileReport(path, sha, len(entries))
        record, _new = FhirImportFile.objects.get_or_create(
            organisation=self.org, path=path[:500], sha256=sha, defaults={"entries": len(entries)}
        )
        if record.status == FhirImportFile.Status.DONE and not self.again:
            report.status = "already-imported"
            self.progress.resources_done += len(entries)
            return report
        record.status = FhirImportFile.Status.RUNNING
        record.started_at = utc_now()
        record.finished_at = None
        record.error = ""
        record.save(update_fields=["status", "started_at", "finished_at", "error"])
        types = {}
        for entry in entries:
            if isinstance(entry.resource, dict) and entry.full_url:
                types[entry.full_url] = str(entry.resource.get("resourceType") or "")
        references: dict[str, str] = {}
        self.links = self._links_of(entries, source)
        order = sorted(entries, key=lambda e: (_rank(e.resource), e.index))
        try:
            for entry in order:
                self._entry(report, entry, source, references, types)
                self.progress.resources_done += 1
                self._tell()
        except Interrupted:
            self.stopped = True
            report.status = "failed"
            report.error = _("Interrupted; run the import again to resume.")
        except Exception as exc:  # a fault: say so, keep what was stored, go on to other files
            report.status = "failed"
            report.error = f"{type(exc).__name__}: {exc}"[:500]
        report.seconds = time.monotonic() - started
        done = report.status == "imported"
        record.status = FhirImportFile.Status.DONE if done else FhirImportFile.Status.FAILED
        record.report = report.as_dict()
        record.error = report.error[:500]
        record.finished_at = utc_now()
        record.save(update_fields=["status", "report", "error", "finished_at"])
        return report

    def _links_of(
        self, entries: list[Entry], source: str
    ) -> dict[tuple[str, str, str], FhirSourceLink]:
        """The links already stored for a file's entries, read in a few queries."""
        wanted: dict[str, set[str]] = {}
        for entry in entries:
            if isinstance(entry.resource, dict):
                plain = bool(entry.full_url or entry.resource.get("id"))
                digest = "" if plain else digest_of(entry.resource)
                key = _key(entry.full_url, entry.resource, source, digest)
                wanted.setdefault(key[0], set()).add(key[1])
        found: dict[tuple[str, str, str], FhirSourceLink] = {}
        for link_source, ids in wanted.items():
            listed = sorted(ids)
            for start in range(0, len(listed), 500):
                for link in FhirSourceLink.objects.filter(
                    organisation=self.org,
                    source=link_source,
                    source_id__in=listed[start : start + 500],
                ):
                    found[(link.source, link.resource_type, link.source_id)] = link
        return found

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -- entries --

    def _entry(
        self,
        report: FileReport,
        entry: Entry,
        source: str,
        references: dict[str, str],
        types: dict[str, str],
    ) -> None:
        resource = entry.resource
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        figures = report.figures(rtype if isinstance(rtype, str) and rtype else "(none)")
        figures.total += 1
        if not isinstance(resource, dict) or not isinstance(rtype, str) or not rtype:
            figures.refused += 1
            figures.refusals[_("The entry holds no resource with a resourceType.")] += 1
            return
        try:
            outcome = self._store(resource, rtype, entry.full_url, source, references, types)
        except _Skip as skip:
            figures.skipped += 1
            figures.skip_reasons[skip.reason] += 1
            return
        except FhirError as exc:
            if exc.issues and all(i.code == "not-supported" for i in exc.issues):
                figures.skipped += 1
                figures.skip_reasons[_message(exc)] += 1
            else:
                figures.refused += 1
                figures.refusals[_message(exc)] += 1
            return
        setattr(figures, outcome, getattr(figures, outcome) + 1)

    def _store(
        self,
        resource: dict[str, Any],
        rtype: str,
        full_url: str,
        source: str,
        references: dict[str, str],
        types: dict[str, str],
    ) -> str:
        mapper = self.mappers.get(rtype)
        if mapper is None:
            raise _Skip(_("CareLoop does not keep %(type)s resources.") % {"type": rtype[:64]})
        if "create" not in mapper.interactions:
            raise _Skip(_("%(type)s is read-only in CareLoop.") % {"type": rtype})
        digest = digest_of(resource)
        link_source, source_id = _key(full_url, resource, source, digest)
        link = self.links.get((link_source, rtype, source_id))
        if link is not None and link.digest == digest:
            outcome, local = "present", link.local_id
        else:
            rewritten = self._resolve(resource, source, references, types)
            with transaction.atomic():
                if link is not None:
                    outcome, local = "present", link.local_id
                    if "update" in mapper.interactions:
                        self._update(mapper, rtype, local, rewritten)
                        outcome = "updated"
                    link.digest = digest
                    link.updated_at = utc_now()
                    link.save(update_fields=["digest", "updated_at"])
                else:
                    if rtype == "Patient":
                        local, created = self._create_patient(rewritten)
                    else:
                        result = engine.create(self.caller, rtype, rewritten, BASE, references)
                        if result.resource is None:  # pragma: no cover - creates answer the row
                            raise FhirError.of(500, _("The resource was not stored."))
                        local, created = str(result.resource["id"]), result.status == 201
                    self.links[(link_source, rtype, source_id)] = FhirSourceLink.objects.create(
                        organisation=self.org,
                        source=link_source,
                        resource_type=rtype,
                        source_id=source_id,
                        local_id=local,
                        digest=digest,
                    )
                    outcome = "imported" if created else "present"
        if full_url:
            references[full_url] = f"{rtype}/{local}"
        if isinstance(resource.get("id"), str):
            references[f"{rtype}/{resource['id']}"] = f"{rtype}/{local}"
        return outcome

    def _update(self, mapper: registry.Mapper, rtype: str, local: str, resource: Any) -> None:
        if rtype == "Patient":
            data = _patient_data(mapper, resource)
            try:
                patient = patient_services.update_patient_from_feed(self.actor, int(local), data)
            except CareLoopError as exc:
                raise _service_error(exc) from exc
            mapper.keep(patient, resource)
            return
        engine.update(self.caller, rtype, local, {**resource, "id": local}, None, {})

    def _create_patient(self, resource: dict[str, Any]) -> tuple[str, bool]:
        """Register the patient, or find them by identifier (record number or ID number).

        As the Patient mapper does, but in the chosen department; a patient with no number
        CareLoop can dial is registered as the HL7 v2 feed registers one: without a phone."""
        registry.check_incoming(resource, "Patient")
        mapper = self.mappers["Patient"]
        data = _patient_data(mapper, resource)
        existing = self._patient_by_identifier(data)
        if existing is not None:
            return str(existing.pk), False
        try:
            if data["phones"]:
                try:
                    patient = patient_services.create_patient(
                        self.actor, data, department_id=self.department_id, link_existing=True
                    )
                except ValidationFailed as exc:
                    if set(exc.details) != {"phones"}:
                        raise
                    data["phones"] = []
                    patient = patient_services.create_patient_from_feed(
                        self.actor, data, department_id=self.department_id
                    )
            else:
                patient = patient_services.create_patient_from_feed(
                    self.actor, data, department_id=self.department_id
                )
        except CareLoopError as exc:
            raise _service_error(exc) from exc
        mapper.keep(patient, resource)
        return str(patient.pk), True

    def _patient_by_identifier(self, data: dict[str, Any]) -> pm.Patient | None:
        base = pm.Patient.objects.filter(organisation=self.org)
        found = None
        if data.get("record_number"):
            found = base.filter(record_number=data["record_number"]).order_by("pk").first()
        if found is None and data.get("national_id"):
            index = blind_index("national_id", normalise_resident_id(data["national_id"]))
            found = base.filter(national_id_index=index).order_by("pk").first()
        while found is not None and found.merged_into_id is not None:
            found = pm.Patient.objects.get(pk=found.merged_into_id)
        return found

    # -- references --

    def _resolve(
        self, resource: Any, source: str, references: dict[str, str], types: dict[str, str]
    ) -> Any:
        """The resource with every reference to something already imported rewritten to its
        CareLoop ``Type/id``; refused when it refers to a patient that was not imported."""
        if isinstance(resource, list):
            return [self._resolve(v, source, references, types) for v in resource]
        if not isinstance(resource, dict):
            return resource
        out = {k: self._resolve(v, source, references, types) for k, v in resource.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref:
            local = references.get(ref) or self._linked(ref, source)
            if local:
                references[ref] = local
                out["reference"] = local
            elif ref.startswith("Patient/") or types.get(ref) == "Patient":
                raise FhirError.of(
                    422,
                    _("It refers to %(ref)s, which has not been imported.") % {"ref": ref[:100]},
                    code="not-found",
                )
        return out

    def _linked(self, ref: str, source: str) -> str | None:
        if (source, ref) in self.unlinked:
            return None
        found = self._lookup(ref, source)
        if found is None:
            self.unlinked.add((source, ref))
        return found

    def _lookup(self, ref: str, source: str) -> str | None:
        links = FhirSourceLink.objects.filter(organisation=self.org)
        if ref.startswith("urn:uuid:"):
            link = links.filter(source=UUID_SOURCE, source_id=ref[9:]).first()
        else:
            kind, _sep, ident = ref.rpartition("/")
            kind = kind.rsplit("/", 1)[-1]
            if not kind or not ident:
                return None
            link = links.filter(source=source, resource_type=kind, source_id=ident).first()
        return f"{link.resource_type}/{link.local_id}" if link else None


def _rank(resource: Any) -> int:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    return FIRST.index(rtype) if rtype in FIRST else len(FIRST)


def _key(full_url: str, resource: dict[str, Any], source: str, digest: str) -> tuple[str, str]:
    """Where a resource comes from and its id there: a ``urn:uuid:`` full URL is unique
    everywhere; otherwise the resource's id (or full URL, or content) within the source."""
    if full_url.startswith("urn:uuid:"):
        return UUID_SOURCE, full_url[9:][:200]
    ident = resource.get("id")
    if isinstance(ident, str) and ident:
        return source[:200], ident[:200]
    if full_url:
        return source[:200], full_url[-200:]
    return source[:200], f"sha256:{digest}"


def _patient_data(mapper: registry.Mapper, resource: dict[str, Any]) -> dict[str, Any]:
    """The patient service's fields for a Patient resource, as the Patient mapper reads them."""
    make = getattr(mapper, "_data", None)
    if make is None:  # pragma: no cover - the Patient mapper defines it
        raise FhirError.of(422, _("Patients cannot be imported here."), code="not-supported")
    data: dict[str, Any] = make(resource)
    return data


def _service_error(exc: CareLoopError) -> FhirError:
    from careloop.fhir.resources.common import service_error

    return service_error(exc, "Patient", PATIENT_FIELDS)


def _message(exc: FhirError) -> str:
    parts = []
    for issue in exc.issues:
        where = ", ".join(e for e in issue.expression if e)
        parts.append(f"{where}: {issue.diagnostics}" if where else issue.diagnostics)
    return "; ".join(parts) or str(exc)

"""FHIR Bulk Data export ($export, Bulk Data Access IG v2) over the FHIR facade's mappers.

Kick-off (``GET /fhir/$export``, ``/fhir/Patient/$export``, ``/fhir/Group/<id>/$export``)
checks the request, the caller's SMART scopes and role for every type, stores an ``ExportJob``
and queues it for the background worker; it answers 202 with the status URL. The worker
streams each type from the database in chunks through the type's mapper (a direct serialiser
for plain readings) into one NDJSON file per type under the var dir, with the same scope as a
search by the same caller: the user's organisation and departments, the patient a
patient-context token is bound to, and the group's patients. Memory stays bounded by the
chunk size whatever the number of rows.

The status URL answers 202 with ``X-Progress`` while the job runs, the manifest when it is
complete; DELETE cancels. Status and files answer only the user who started the export
(404 for anyone else). Each export is audited once (``fhir.export``, with the types and counts
written) and each download once (``fhir.export.download``); the files are removed by the
worker once ``FHIR_EXPORT_RETENTION_HOURS`` have passed.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Staff
from careloop.audit import services as audit
from careloop.audit.models import Outcome
from careloop.fhir import engine
from careloop.fhir import search as fs
from careloop.fhir.models import ExportJob
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import Mapper, instant, mapper_for, mappers
from careloop.fhir.scopes import ScopeError, Scopes
from careloop.fhir.views import _base, fhir_view
from careloop.kit.clock import utc_now

log = logging.getLogger(__name__)

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
CHUNK = 2000
RETRY_AFTER = "2"
Status = ExportJob.Status
_KEY = re.compile(r"^[0-9a-zA-Z_-]{1,40}$")
_FILE = re.compile(r"^[A-Z][A-Za-z]+\.ndjson$")


def retention() -> dt.timedelta:
    return dt.timedelta(hours=float(getattr(settings, "FHIR_EXPORT_RETENTION_HOURS", 24)))


def export_root() -> Path:
    configured = getattr(settings, "FHIR_EXPORT_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "fhir-exports"


def job_dir(job: ExportJob) -> Path:
    """The directory of an export's files (chosen when it started)."""
    return Path(job.directory) if job.directory else export_root() / f"{job.pk}-{job.key}"


# --- kick-off ------------------------------------------------------------------------------


def _may_read(caller: engine.Caller, mapper: Mapper) -> bool:
    """Whether the caller may read a type (without auditing a refusal)."""
    return (
        "read" in mapper.interactions
        and caller.scopes.allows(mapper.resource_type, "r")
        and all(caller.actor.can(a) for a in mapper.read_actions)
    )


def _exportable(level: str) -> dict[str, Mapper]:
    """The types an export at this level may hold: a patient or group export holds the
    patients' compartments only."""
    return {
        rt: m
        for rt, m in mappers().items()
        if level == "system" or (m.patient_compartment and (level == "patient" or _groupable(m)))
    }


def _groupable(mapper: Mapper) -> bool:
    """Whether a type's rows can be narrowed to a group's patients (see in_cohort)."""
    if mapper.resource_type == "Patient" or hasattr(mapper, "restrict_to_patients"):
        return True
    return "patient" in {f.name for f in mapper.model._meta.concrete_fields}


def _check_headers(request: HttpRequest) -> None:
    accept = request.headers.get("Accept", "")
    if "application/fhir+json" not in accept:
        raise FhirError.of(
            400,
            _("Send “Accept: application/fhir+json” to start an export."),
            code="invalid",
            expression="Accept",
        )
    prefer = request.headers.get("Prefer", "").replace(" ", "").lower()
    if "respond-async" not in prefer.split(","):
        raise FhirError.of(
            400,
            _("An export is asynchronous: send “Prefer: respond-async”."),
            code="invalid",
            expression="Prefer",
        )


def _since(raw: str) -> dt.datetime:
    """An instant (``2024-03-01T08:00:00Z``, fractions of a second kept)."""
    try:
        moment = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in raw:
        raise FhirError.of(
            400,
            _("_since takes an instant with its time zone, such as 2024-03-01T08:00:00Z."),
            code="value",
            expression="_since",
        )
    return moment


def _requested_types(raw: list[str], level: str) -> list[str]:
    allowed = _exportable(level)
    names: list[str] = []
    for value in raw:
        for name in (n.strip() for n in value.split(",")):
            if not name:
                continue
            if name not in allowed:
                raise FhirError.of(
                    400,
                    _("Resource type “%(type)s” cannot be exported here.") % {"type": name[:64]},
                    code="not-supported",
                    expression="_type",
                )
            if name not in names:
                names.append(name)
    return names


def group_patients(actor: Actor, group_id: str) -> QuerySet[Any]:
    """The patient ids of a group (``dept-<n>``: a department's patients; ``plan-<n>``: the
    patients enrolled in a care-plan template); 404 for a group the actor may not see."""
    from careloop.careplans import models as cm
    from careloop.patients import models as pm

    kind, _sep, number = group_id.partition("-")
    org = actor.organisation_id or 0
    ident = int(number) if number.isdigit() and len(number) < 19 else 0
    if kind == "dept":
        known = Department.objects.filter(pk=ident, organisation_id=org).exists()
        if known and (actor.is_org_wide or ident in actor.department_ids):
            return pm.PatientDepartment.objects.filter(department_id=ident).values("patient_id")
    elif kind == "plan":
        visible = cm.PlanTemplate.objects.filter(pk=ident).filter(
            organisation_id__in=[org]
        ) | cm.PlanTemplate.objects.filter(pk=ident, organisation__isnull=True)
        if visible.exists():
            return cm.Enrolment.objects.filter(
                template_id=ident, organisation_id=org, status=cm.Enrolment.Status.ACTIVE
            ).values("patient_id")
    audit.record_denied(
        actor, "fhir.export", object_type="group", object_id=group_id[:64],
        detail={"reason": "scope"},
    )  # fmt: skip
    raise FhirError.of(
        404, _("Group/%(id)s is not known.") % {"id": group_id[:64]}, code="not-found"
    )


def kick_off(
    request: HttpRequest, caller: engine.Caller, level: str, group: str = ""
) -> engine.Result:
    _check_headers(request)
    lenient = "handling=lenient" in request.headers.get("Prefer", "").replace(" ", "")
    types_raw: list[str] = []
    since: dt.datetime | None = None
    for name, values in request.GET.lists():
        if name == "_type":
            types_raw += values
        elif name == "_since":
            since = _since(values[-1])
        elif name == "_outputFormat":
            if any(v not in OUTPUT_FORMATS for v in values):
                raise FhirError.of(
                    400,
                    _("Only NDJSON (application/fhir+ndjson) is offered."),
                    code="not-supported",
                    expression="_outputFormat",
                )
        elif not lenient:
            raise FhirError.of(
                400,
                _("The parameter “%(name)s” is not supported by this export.")
                % {"name": name[:40]},
                code="not-supported",
                expression=name[:64],
            )
    if level == "group":
        group_patients(caller.actor, group)
    requested = _requested_types(types_raw, level)
    if requested:
        for rt in requested:
            engine.authorise(caller, mapper_for(rt), "read")  # 403, audited, if not allowed
        types = requested
    else:
        types = [rt for rt, m in _exportable(level).items() if _may_read(caller, m)]
        if not types:
            audit.record_denied(caller.actor, "fhir.export", detail={"reason": "role"})
            raise FhirError.of(
                403, _("You may not read any of the types this export holds."), code="forbidden"
            )
    token = caller.token
    job = ExportJob(
        key=uuid.uuid4().hex,
        requester=caller.actor.user,
        organisation_id=caller.actor.organisation_id,
        level=level,
        group=group,
        types=types,
        since=since,
        scopes="*" if caller.scopes.unrestricted else str(caller.scopes),
        token_patient_id=getattr(token, "patient_id", None) if token is not None else None,
        source=caller.actor.source[:64],
        request_url=request.build_absolute_uri()[:4000],
    )
    with transaction.atomic():
        job.save()
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue(job_id))
    status_url = f"{_base(request)}$export-status/{job.key}"
    return engine.Result(202, None, {"Content-Location": status_url})


def _enqueue(job_id: int) -> None:
    from careloop.fhir.tasks import run_export_job

    run_export_job.enqueue(job_id)


# --- status, cancel, download --------------------------------------------------------------


def _own_job(caller: engine.Caller, key: str) -> ExportJob:
    """The requester's own export by key; 404 for anyone else's, a cancelled or an expired one."""
    job = None
    if _KEY.match(key):
        job = (
            ExportJob.objects.filter(key=key, requester=caller.actor.user)
            .exclude(status=Status.CANCELLED)
            .first()
        )
    if job is not None and job.expires_at is not None and job.expires_at <= utc_now():
        job = None
    if job is None:
        audit.record_denied(
            caller.actor, "fhir.export.status", object_type="fhir.exportjob",
            object_id=key[:64], detail={"reason": "scope"},
        )  # fmt: skip
        raise FhirError.of(404, _("This export is not known."), code="not-found")
    return job


def manifest(job: ExportJob, base: str) -> dict[str, Any]:
    return {
        "transactionTime": instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [_entry(job, item, base) for item in job.output if not item.get("error")
                   and item.get("count")],
        "error": [_entry(job, item, base) for item in job.output if item.get("error")],
    }  # fmt: skip


def _entry(job: ExportJob, item: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "type": item["type"],
        "url": f"{base}$export-file/{job.key}/{item['file']}",
        "count": item["count"],
    }


def status(request: HttpRequest, caller: engine.Caller, key: str) -> engine.Result:
    job = _own_job(caller, key)
    if request.method == "DELETE":
        cancel(job)
        return engine.Result(202, None)
    if job.status in (Status.QUEUED, Status.RUNNING):
        progress = job.progress or str(_("waiting for the background worker"))
        return engine.Result(202, None, {"X-Progress": progress, "Retry-After": RETRY_AFTER})
    if job.status == Status.FAILED:
        raise FhirError.of(500, job.error or _("The export failed."), code="exception")
    return engine.Result(200, manifest(job, _base(request)), {"Expires": _http_date(job)})


def _http_date(job: ExportJob) -> str:
    from django.utils.http import http_date

    return http_date((job.expires_at or utc_now()).timestamp())


def cancel(job: ExportJob) -> None:
    """Stop a queued or running export and remove its files; a complete one is removed too."""
    ExportJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED, finished_at=utc_now())
    shutil.rmtree(job_dir(job), ignore_errors=True)


def download(caller: engine.Caller, key: str, file_name: str) -> FileResponse:
    job = _own_job(caller, key)
    item = next((o for o in job.output if o.get("file") == file_name), None)
    path = job_dir(job) / file_name if _FILE.match(file_name) else None
    if job.status != Status.DONE or item is None or path is None or not path.is_file():
        raise FhirError.of(404, _("This export file is not known."), code="not-found")
    audit.record(
        caller.actor,
        "fhir.export.download",
        object_type="fhir.exportjob",
        object_id=job.pk,
        detail={"type": item["type"], "count": item["count"], "level": job.level},
    )
    response = FileResponse(path.open("rb"), content_type=NDJSON)
    response["Cache-Control"] = "no-store"
    return response


# --- views (routes in careloop.fhir.urls, listed in careloop.web.access) -------------------


@fhir_view(("GET",))
def system_export(request: HttpRequest, caller: engine.Caller) -> engine.Result:
    """Kick off an export of every type the caller may read."""
    return kick_off(request, caller, "system")


@fhir_view(("GET",))
def patient_export(request: HttpRequest, caller: engine.Caller) -> engine.Result:
    """Kick off an export of the compartments of every patient the caller may see."""
    return kick_off(request, caller, "patient")


@fhir_view(("GET",))
def group_export(request: HttpRequest, caller: engine.Caller, group_id: str) -> engine.Result:
    """Kick off an export of a group's patients (a department, or a care-plan cohort)."""
    return kick_off(request, caller, "group", group_id)


@fhir_view(("GET", "DELETE"))
def export_status(request: HttpRequest, caller: engine.Caller, key: str) -> engine.Result:
    """Poll an export (202 while running, the manifest when complete); DELETE cancels it."""
    return status(request, caller, key)


def export_file(request: HttpRequest, key: str, file_name: str) -> HttpResponseBase:
    """One NDJSON file of a complete export, streamed (errors as OperationOutcomes)."""
    streamed: list[FileResponse] = []

    @fhir_view(("GET",))
    def checked(request: HttpRequest, caller: engine.Caller) -> engine.Result:
        streamed.append(download(caller, key, file_name))
        return engine.Result(200)

    answer = checked(request)
    return streamed[0] if streamed else answer


# --- the background job --------------------------------------------------------------------


def caller_for(job: ExportJob, user: Staff) -> engine.Caller:
    """The kick-off's caller again, as the worker: the same user, scopes and patient."""
    if job.scopes == "*":
        scopes = Scopes.full()
    else:
        try:
            scopes = Scopes.parse(job.scopes)
        except ScopeError:
            scopes = Scopes(())
    actor = Actor(user=user, source=job.source or "worker", channel="fhir-export")
    token = SimpleNamespace(patient_id=job.token_patient_id)
    return engine.Caller(actor=actor, scopes=scopes, token=token)


def export_queryset(
    caller: engine.Caller, mapper: Mapper, job: ExportJob, cohort: QuerySet[Any] | None
) -> QuerySet[Any]:
    """The rows of one type an export holds: exactly what the caller may read."""
    qs = engine.scoped(caller, mapper, "read")
    if cohort is not None and mapper.patient_compartment:
        qs = in_cohort(mapper, qs, cohort)
    if job.since is not None:
        param = mapper.search_params.get("_lastUpdated")
        if param is not None:
            qs = qs.filter(param.build(fs.DateRange("ge", job.since, job.since)))
    return qs.order_by("pk")


def in_cohort(mapper: Mapper, qs: QuerySet[Any], cohort: QuerySet[Any]) -> QuerySet[Any]:
    """Only the rows of a group's patients: by the mapper's own ``restrict_to_patients`` when
    it has one, else by the table's patient column; a type with neither is refused (never
    exported unfiltered)."""
    own = getattr(mapper, "restrict_to_patients", None)
    if own is not None:
        return own(qs, cohort)  # type: ignore[no-any-return]
    if mapper.resource_type == "Patient":
        return qs.filter(pk__in=cohort)
    names = {f.name for f in mapper.model._meta.concrete_fields}
    if "patient" in names:
        return qs.filter(patient_id__in=cohort)
    raise FhirError.of(
        400,
        _("%(type)s cannot be exported for a group.") % {"type": mapper.resource_type},
        code="not-supported",
    )


class Cancelled(Exception):
    """The requester cancelled the export while it ran."""


def run_export(job_id: int) -> None:
    """Write a queued export's files (the background job); runs once, whatever becomes of it."""
    purge_expired()
    claimed = ExportJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING, transaction_time=utc_now()
    )
    if not claimed:
        log.info("export %s: not queued (gone, cancelled or already taken); skipped", job_id)
        return
    job = ExportJob.objects.select_related("requester").get(pk=job_id)
    caller = caller_for(job, job.requester)
    directory = job_dir(job)
    ExportJob.objects.filter(pk=job_id).update(directory=str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    output: list[dict[str, Any]] = []
    patients: set[int] = set()
    outcome, error = Outcome.SUCCESS, ""
    try:
        with translation.override(job.requester.language or settings.LANGUAGE_CODE):
            cohort = group_patients(caller.actor, job.group) if job.level == "group" else None
            problems: list[str] = []
            for index, rt in enumerate(job.types):
                label = f"{rt} ({index + 1}/{len(job.types)})"
                path = directory / f"{rt}.ndjson"
                report = functools.partial(_progress, job_id, label)
                try:
                    count = write_type(
                        caller, mapper_for(rt), job, cohort, path, patients, progress=report
                    )
                except (Cancelled, FhirError):
                    raise
                except Exception as exc:  # one type failing leaves the others: named in error
                    log.exception("export %s: %s failed", job_id, rt)
                    path.unlink(missing_ok=True)
                    problems.append(
                        _("%(type)s could not be exported (%(error)s).")
                        % {"type": rt, "error": type(exc).__name__}
                    )
                    continue
                output.append({"type": rt, "file": path.name, "count": count})
                if not count:
                    path.unlink(missing_ok=True)
            if problems:
                _write_problems(directory / ERROR_FILE, problems)
                output.append(
                    {"type": "OperationOutcome", "file": ERROR_FILE, "count": len(problems),
                     "error": True}
                )  # fmt: skip
    except Cancelled:
        shutil.rmtree(directory, ignore_errors=True)
        outcome, error = Outcome.FAILURE, "cancelled"
    except FhirError as exc:
        outcome, error = Outcome.FAILURE, str(exc)
    except Exception as exc:
        log.exception("export %s failed", job_id)
        outcome, error = Outcome.FAILURE, type(exc).__name__
    now = utc_now()
    if outcome == Outcome.SUCCESS:
        expires = now + retention()
        ExportJob.objects.filter(pk=job_id, status=Status.RUNNING).update(
            status=Status.DONE, output=output, progress="", finished_at=now, expires_at=expires
        )
        _schedule_purge(job_id, expires)
    elif error != "cancelled":
        shutil.rmtree(directory, ignore_errors=True)
        reason = _("The export stopped unexpectedly (%(error)s).") % {"error": error[:200]}
        ExportJob.objects.filter(pk=job_id).exclude(status=Status.CANCELLED).update(
            status=Status.FAILED, error=reason, output=output, finished_at=now,
            expires_at=now + retention(),
        )  # fmt: skip
    ids = sorted(patients)
    audit.record(
        caller.actor,
        "fhir.export",
        outcome=outcome,
        patient_id=ids[0] if len(ids) == 1 else None,
        object_type="fhir.exportjob",
        object_id=job_id,
        detail={
            "level": job.level,
            "group": job.group,
            "types": list(job.types),
            "counts": {o["type"]: o["count"] for o in output if not o.get("error")},
            "since": instant(job.since) if job.since else None,
            "patients": ids[: engine.MAX_AUDITED_PATIENTS],
            "patient_count": len(ids),
            **({"error": error} if error else {}),
        },
    )


ERROR_FILE = "OperationOutcome.ndjson"


def _write_problems(path: Path, problems: list[str]) -> None:
    with path.open("wb") as out:
        for text in problems:
            issue = {"severity": "error", "code": "exception", "diagnostics": text}
            out.write(_dump({"resourceType": "OperationOutcome", "issue": [issue]}) + b"\n")


def _progress(job_id: int, label: str, done: int, total: int) -> None:
    share = 100 * done // total if total else 100
    still = ExportJob.objects.filter(pk=job_id, status=Status.RUNNING).update(
        progress=f"{label}: {share}%"[:200]
    )
    if not still:
        raise Cancelled()


Batch = tuple[bytes, int, set[int]]  # NDJSON lines, how many, the patients they belong to


def write_type(
    caller: engine.Caller,
    mapper: Mapper,
    job: ExportJob,
    cohort: QuerySet[Any] | None,
    path: Path,
    patients: set[int],
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> int:
    """Stream one type's rows into an NDJSON file, one resource per line, a chunk at a time;
    the count written. ``progress(done, total)`` after each chunk (it raises to stop)."""
    if hasattr(mapper, "all_for") and not mapper.patient_compartment:  # small, in memory
        found = [_dump(mapper.read(o)) for o in mapper.all_for(caller.actor)]
        batches: Iterator[Batch] = iter([(b"".join(x + b"\n" for x in found), len(found), set())])
        total = len(found)
    else:
        qs = export_queryset(caller, mapper, job, cohort)
        total = qs.count()
        serialise = FAST.get(mapper.resource_type, _generic)
        batches = serialise(mapper, qs, chunk)
    count = 0
    cap = engine.MAX_AUDITED_PATIENTS * 50
    with path.open("wb") as out:
        for blob, n, owners in batches:
            out.write(blob)
            count += n
            if len(patients) <= cap:
                patients |= owners
            if progress is not None:
                progress(count, max(count, total))
    if progress is not None:
        progress(count, max(count, total))
    return count


def _dump(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, default=str)


_PREFETCH = {"Patient": ("phones",)}


def _generic(mapper: Mapper, qs: QuerySet[Any], chunk: int) -> Iterator[Batch]:
    """Any type: rows as model objects, a chunk at a time, through the mapper's read()."""
    related = _PREFETCH.get(mapper.resource_type)
    if related:
        qs = qs.prefetch_related(*related)
    lines: list[bytes] = []
    owners: set[int] = set()
    for obj in qs.iterator(chunk_size=chunk):
        lines.append(_dump(mapper.read(obj)))
        owner = mapper.patient_id_of(obj)
        if owner is not None:
            owners.add(owner)
        if len(lines) >= chunk:
            yield b"\n".join(lines) + b"\n", len(lines), owners
            lines, owners = [], set()
    if lines:
        yield b"\n".join(lines) + b"\n", len(lines), owners


# --- a direct serialiser for readings ------------------------------------------------------

_OBS_FIELDS = (
    "pk", "patient_id", "kind", "code", "value", "value2", "unit", "effective_at", "time_zone",
    "created_at", "fhir_extra",
)  # fmt: skip


class _LocalTime:
    """UTC times as local ISO strings of a zone, with the zone's offset looked up once per
    UTC hour (and per row only in an hour where the offset changes)."""

    def __init__(self) -> None:
        self.zones: dict[str, ZoneInfo] = {}
        self.hours: dict[tuple[str, str], tuple[dt.timedelta, str] | None] = {}

    def zone(self, name: str) -> ZoneInfo:
        tz = self.zones.get(name)
        if tz is None:
            tz = self.zones[name] = ZoneInfo(name)
        return tz

    def exact(self, moment: dt.datetime, zone: str) -> str:
        return moment.replace(tzinfo=dt.UTC).astimezone(self.zone(zone)).isoformat()

    def offset(self, text: str, moment: dt.datetime, zone: str) -> tuple[dt.timedelta, str] | None:
        if len(self.hours) > 200_000:
            self.hours.clear()
        start = moment.replace(minute=0, second=0, microsecond=0, tzinfo=dt.UTC)
        tz = self.zone(zone)
        first = start.astimezone(tz).utcoffset()
        last = (start + dt.timedelta(minutes=59, seconds=59)).astimezone(tz).utcoffset()
        found = None
        if first is not None and first == last and not first.total_seconds() % 60:
            sign = "-" if first < dt.timedelta(0) else "+"
            minutes = abs(int(first.total_seconds())) // 60
            found = (first, f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
        self.hours[(zone, text[:13])] = found
        return found


def _utc_text(text: str) -> str:
    """A time's text with an offset as UTC text without one (``YYYY-MM-DD HH:MM:SS[.f]``)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat(" ")


def _observation_lines(mapper: Mapper, qs: QuerySet[Any], chunk: int) -> Iterator[Batch]:
    """Readings as NDJSON without building a model or a dict per row: the same resource as
    ``ObservationMapper.read`` (checked by the tests and the benchmark), from fragments cached
    per kind. A reading that keeps elements from a FHIR client goes through the mapper."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from careloop.fhir.resources import common as c
    from careloop.fhir.resources.observation import _LAB, CATEGORY
    from careloop.observations import domain
    from careloop.observations import models as om

    heads: dict[tuple[str, str], str] = {}
    units: dict[str, str] = {}
    utc = dt.UTC
    local = _LocalTime()
    hours = local.hours

    def head(kind: str, code: str) -> str:
        spec = domain.KINDS.get(kind)
        label = spec.label if spec else kind
        category = "laboratory" if kind in _LAB else "vital-signs"
        fragment = {
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
            "code": {
                "coding": [{"system": c.LOINC, "code": code, "display": label}],
                "text": label,
            },
        }
        heads[(kind, code)] = orjson.dumps(fragment)[1:-1].decode()
        return heads[(kind, code)]

    def unit_part(unit: str) -> str:
        quoted = orjson.dumps(unit).decode()
        units[unit] = f'"unit":{quoted},"system":"{c.UCUM}","code":{quoted}}}}}'
        return units[unit]

    loinc, ucum = c.LOINC, c.UCUM
    bp_tail = (
        f'"component":[{{"code":{{"coding":[{{"system":"{loinc}","code":"{domain.SYSTOLIC_CODE}",'
        f'"display":"Systolic blood pressure"}}]}},"valueQuantity":{{"value":%d,"unit":"mmHg",'
        f'"system":"{ucum}","code":"mm[Hg]"}}}},{{"code":{{"coding":[{{"system":"{loinc}",'
        f'"code":"{domain.DIASTOLIC_CODE}","display":"Diastolic blood pressure"}}]}},'
        f'"valueQuantity":{{"value":%d,"unit":"mmHg","system":"{ucum}","code":"mm[Hg]"}}}}]}}'
    )
    value_part = '"valueQuantity":{"value":%r,%s'
    decimals = {k: spec.decimals for k, spec in domain.KINDS.items()}
    template = (
        '{"resourceType":"Observation","id":"%d","meta":{"versionId":"1","lastUpdated":"%s"},'
        '%s,"subject":{"reference":"Patient/%d"},"effectiveDateTime":"%s",'
    )
    # The rows straight from the database cursor (server-side on PostgreSQL), a chunk at a
    # time: Django's per-row value conversion would cost more than the rest of the line. The
    # times are read as text (UTC, "YYYY-MM-DD HH:MM:SS[.ffffff]"; PostgreSQL adds "+00").
    fields: list[Any] = list(_OBS_FIELDS)
    as_text = connections[qs.db].vendor in ("sqlite", "postgresql")
    if as_text:
        qs = qs.annotate(
            _effective=Cast("effective_at", TextField()), _created=Cast("created_at", TextField())
        )
        fields[7], fields[9] = "_effective", "_created"
    rows = qs.values_list(*fields)
    sql, params = rows.query.get_compiler(using=rows.db).as_sql()
    parse = dt.datetime.fromisoformat
    with connections[rows.db].chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(chunk):
            lines: list[str] = []
            owners: set[int] = set()
            for (
                pk,
                patient_id,
                kind,
                code,
                value,
                value2,
                unit,
                effective,
                zone,
                created,
                extra,
            ) in batch:
                owners.add(patient_id)
                if extra is not None and extra != "null":
                    resource = mapper.read(om.Observation.objects.get(pk=pk))
                    lines.append(_dump(resource).decode())
                    continue
                if as_text:
                    if created[-3:] == "+00":  # PostgreSQL's text of a time (in UTC)
                        created, effective = created[:-3], effective[:-3]
                        # It drops the fraction's trailing zeros; Python writes all six.
                        if len(created) > 19:
                            created = created.ljust(26, "0")
                        if len(effective) > 19:
                            effective = effective.ljust(26, "0")
                    if created[-3:-2] in ("+", "-") or effective[-3:-2] in ("+", "-"):
                        created, effective = _utc_text(created), _utc_text(effective)
                    updated = created.replace(" ", "T") + "Z"
                    moment = parse(effective)
                    hour = (zone, effective[:13])
                    known = hours[hour] if hour in hours else local.offset(effective, moment, zone)
                    if known is None:
                        when = local.exact(moment, zone)
                    else:
                        when = (moment + known[0]).isoformat() + known[1]
                else:
                    updated = created.astimezone(utc).isoformat().replace("+00:00", "Z")
                    when = effective.astimezone(local.zone(zone)).isoformat()
                line = template % (
                    pk,
                    updated,
                    heads.get((kind, code)) or head(kind, code),
                    patient_id,
                    when,
                )
                if kind == "bp":
                    lines.append(line + bp_tail % (round(value or 0), round(value2 or 0)))
                else:
                    number = round(value, decimals.get(kind, 2))
                    lines.append(line + value_part % (number, units.get(unit) or unit_part(unit)))
            yield ("\n".join(lines) + "\n").encode(), len(lines), owners


FAST: dict[str, Callable[[Mapper, QuerySet[Any], int], Iterator[Batch]]] = {
    "Observation": _observation_lines,
}


# --- retention -----------------------------------------------------------------------------


def _schedule_purge(job_id: int, at: dt.datetime) -> None:
    try:
        from careloop.fhir.tasks import purge_export_job

        transaction.on_commit(lambda: purge_export_job.using(run_after=at).enqueue(job_id))
    except Exception:  # the next export's purge_expired() removes it instead
        log.warning("export %s: could not schedule its removal", job_id)


def purge_expired(now: dt.datetime | None = None) -> int:
    """Remove the files and rows of exports past their retention; the number removed."""
    moment = now or utc_now()
    removed = 0
    for job in ExportJob.objects.filter(expires_at__lte=moment).only("pk", "key"):
        shutil.rmtree(job_dir(job), ignore_errors=True)
        ExportJob.objects.filter(pk=job.pk).delete()
        removed += 1
    for job in ExportJob.objects.filter(status=Status.CANCELLED).only("pk", "key"):
        shutil.rmtree(job_dir(job), ignore_errors=True)
        ExportJob.objects.filter(pk=job.pk).delete()
        removed += 1
    return removed


def purge_job(job_id: int) -> None:
    """Remove one export once its retention has passed (a no-op before then)."""
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is not None and job.expires_at is not None and job.expires_at <= utc_now():
        shutil.rmtree(job_dir(job), ignore_errors=True)
        job.delete()

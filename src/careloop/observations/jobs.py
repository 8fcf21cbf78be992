"""Reading imports: an uploaded file becomes an ImportJob that the background worker reads.

The upload is checked (size, format, the patient it is for) and stored with the job in one
transaction; the job id is queued after commit (observations/tasks.py). The worker reads the file
through a reader of observations/imports.py into ``services.ingest`` chunk by chunk, writing the
progress (bytes read, counts, the line report) to the job after every chunk, so a page can show
it while it runs. Each chunk is its own transaction: a file that breaks off half way, or a
worker that fails, keeps what was stored and marks the job failed with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Membership, Staff
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import CareLoopError, NotFound, ValidationFailed
from careloop.kit.pagination import Page, to_int
from careloop.observations import imports, services
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

log = logging.getLogger(__name__)

Status = om.ImportJob.Status
# The source of a reading whose line does not name one.
DEFAULT_SOURCE = {
    "csv": "staff",
    "device_csv": "device",
    "apple_health": "device",
    "ndjson": "staff",
}
# Formats that hold one patient's readings only: the patient is chosen at upload.
ONE_PATIENT = frozenset({"apple_health"})


def max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 60 * 1024 * 1024))


# --- reads -------------------------------------------------------------------------------------


def visible_imports(actor: Actor) -> QuerySet[om.ImportJob]:
    """Imports the actor started, or that staff of the actor's departments started (all of the
    organisation's for organisation-wide roles); a file for one patient only while that patient
    is in the actor's scope."""
    patient_selectors.require(actor, Action.CLINICAL_VIEW)
    qs = om.ImportJob.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        colleagues = Membership.objects.filter(
            staff=OuterRef("created_by"), department_id__in=actor.department_ids
        )
        qs = qs.filter(Q(created_by=actor.user) | Exists(colleagues))
    return qs.filter(
        Q(patient__isnull=True)
        | Q(patient_id__in=patient_selectors.visible_patients(actor).values("pk"))
    )


def import_page(actor: Actor, page: Any = 1, size: int = 20) -> Page:
    """The newest imports the actor may see, a page at a time (audited)."""
    qs = (
        visible_imports(actor)
        .select_related("created_by", "patient")
        .order_by("-created_at", "-id")
    )
    size_n = to_int(size, 20, low=1, high=100)
    total = qs.count()
    pages = max(1, -(-total // size_n))
    number = to_int(page, 1, low=1, high=pages)
    items = list(qs[(number - 1) * size_n : number * size_n])
    audit.record(
        actor,
        "observation_import.list",
        detail={"imports": [job.pk for job in items]},
    )
    return Page(items=items, number=number, size=size_n, total=total)


def get_import(actor: Actor, import_id: int, *, audit_read: bool = True) -> om.ImportJob:
    """One import the actor may see (NotFound otherwise); the read is audited."""
    job = (
        visible_imports(actor).select_related("created_by", "patient").filter(pk=import_id).first()
    )
    if job is None:
        audit.record_denied(
            actor, "observation_import.read", object_type="observations.importjob",
            object_id=import_id, detail={"reason": "scope"},
        )  # fmt: skip
        raise NotFound()
    if audit_read:
        audit.record(actor, "observation_import.read", patient_id=job.patient_id, obj=job)
    return job


def problems_page(job: om.ImportJob, page: Any = 1, size: int = 50) -> Page:
    problems = list(job.problems or [])
    size_n = to_int(size, 50, low=1, high=500)
    pages = max(1, -(-len(problems) // size_n))
    number = to_int(page, 1, low=1, high=pages)
    items = problems[(number - 1) * size_n : number * size_n]
    return Page(items=items, number=number, size=size_n, total=len(problems))


def find_patient(actor: Actor, ref: str) -> pm.Patient:
    """A patient in the actor's scope by CareLoop id or record number (NotFound otherwise)."""
    text = (ref or "").strip().removeprefix("#")
    if text.isdigit() and len(text) < 16:
        return patient_selectors.get_patient(
            actor, int(text), action=Action.CLINICAL_WRITE, audit_read=False
        )
    patient_selectors.require(actor, Action.CLINICAL_WRITE)
    found = list(patient_selectors.visible_patients(actor).filter(record_number=text)[:2])
    if len(found) != 1:
        audit.record_denied(
            actor, "patient.read", detail={"reason": "scope", "record_number": text[:40]}
        )
        raise NotFound()
    return found[0]


# --- starting an import ------------------------------------------------------------------------


def start_import(
    actor: Actor, *, upload: UploadedFile, fmt: str, patient_ref: str = ""
) -> om.ImportJob:
    """Check and store an uploaded file as a queued import; the worker reads it after commit."""
    ref = patient_ref.strip().removeprefix("#")
    patient_selectors.require(
        actor,
        Action.CLINICAL_WRITE,
        patient_id=int(ref) if ref.isdigit() and len(ref) < 16 else None,
    )
    errors: dict[str, list[str]] = {}
    if fmt not in imports.FORMATS:
        errors["format"] = [_("Choose the format of the file.")]
    size = int(upload.size or 0)
    if size == 0:
        errors["file"] = [_("The file is empty.")]
    elif size > max_bytes():
        errors["file"] = [
            _("The file is larger than %(mb)d MB.") % {"mb": max_bytes() // (1024 * 1024)}
        ]
    patient: pm.Patient | None = None
    if patient_ref.strip():
        try:
            patient = find_patient(actor, patient_ref)
        except NotFound:
            errors["patient"] = [_("No patient with this number in your departments.")]
    elif fmt in ONE_PATIENT:
        errors["patient"] = [_("An Apple Health export holds one person's data: name the patient.")]
    if not errors:
        upload.seek(0)
        head = upload.read(imports.SNIFF_BYTES)
        upload.seek(0)
        try:
            imports.sniff(fmt, head, fixed_patient=patient is not None)
        except imports.ImportFailed as exc:
            errors["file"] = [str(exc.message)]
    if errors:
        raise ValidationFailed(details=errors)
    name = (upload.name or "upload").rsplit("/", 1)[-1][:200]
    with transaction.atomic():
        job = om.ImportJob(
            organisation_id=actor.organisation_id or 0,
            patient=patient,
            format=fmt,
            file_name=name,
            size=size,
            created_by=actor.user,
        )
        job.file.save(f"{fmt}-{utc_now():%Y%m%d%H%M%S}.upload", upload, save=False)
        job.save()
        audit.record(
            actor,
            "observation_import.create",
            patient_id=patient.pk if patient else None,
            obj=job,
            detail={"format": fmt, "size": size},
        )
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: int) -> None:
    from careloop.observations.tasks import run_import_job

    run_import_job.enqueue(job_id)


# --- reading a file ----------------------------------------------------------------------------


@dataclass
class Outcome:
    figures: dict[str, Any]  # lines, accepted, duplicates, rejected, problems (imports.combine)
    alerts: int
    error: str  # why reading stopped before the end ("" when the whole file was read)


def read_into(
    stream: IO[bytes],
    fmt: str,
    *,
    actor: Actor | None,
    organisation_id: int | None = None,
    patient_id: int | None = None,
    origin: str = "import",
    on_progress: Callable[[dict[str, Any], int], None] | None = None,
) -> Outcome:
    """Read a whole file into ingest; on_progress(figures, bytes_read) after every chunk."""
    reader = imports.open_reader(fmt, stream, fixed_patient=patient_id is not None)
    latest = services.IngestReport()

    def progress(report: services.IngestReport) -> None:
        nonlocal latest
        latest = report
        if on_progress is not None:
            on_progress(imports.combine(report, reader), reader.position())

    if on_progress is not None:
        reader.on_bytes = lambda: on_progress(imports.combine(latest, reader), reader.position())
    report = services.ingest(
        actor,
        reader.items(),
        organisation_id=organisation_id,
        source=DEFAULT_SOURCE.get(fmt, "staff"),
        origin=f"{origin}:{fmt}",
        patient_id=patient_id,
        progress=progress,
    )
    return Outcome(imports.combine(report, reader), report.alerts, reader.error)


def run_import(job_id: int) -> None:
    """Read a queued import (the background job); runs once, whatever becomes of it."""
    claimed = om.ImportJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING
    )
    if not claimed:
        log.info("import %s: not queued (gone, or already taken); skipped", job_id)
        return
    job = om.ImportJob.objects.select_related("created_by").get(pk=job_id)
    user: Staff = job.created_by
    actor = Actor(user=user, source="worker", channel="import")
    rows = om.ImportJob.objects.filter(pk=job_id)
    last: dict[str, Any] = {}

    def save_progress(figures: dict[str, Any], position: int) -> None:
        changes = {**figures, "bytes_read": min(job.size, position)}
        if changes.get("problems") == last.get("problems"):
            changes.pop("problems")  # the list is the biggest part; write it when it changes
        rows.update(**changes)
        last.update(changes)

    try:
        with translation.override(user.language or settings.LANGUAGE_CODE):
            try:
                with job.file.open("rb") as stream:
                    outcome = read_into(
                        stream, job.format, actor=actor, patient_id=job.patient_id,
                        on_progress=save_progress,
                    )  # fmt: skip
            except CareLoopError as exc:
                _finish(rows, Status.FAILED, str(exc.message) or _("The import was refused."))
                return
            except Exception as exc:  # keep what was stored; say what stopped the import
                log.exception("import %s failed", job_id)
                reason = _(
                    "The import stopped unexpectedly (%(error)s). The readings stored before "
                    "that are kept."
                ) % {"error": type(exc).__name__}
                _finish(rows, Status.FAILED, reason)
                return
        figures = {**outcome.figures, "bytes_read": job.size}
        if outcome.error:
            _finish(rows, Status.FAILED, outcome.error, figures)
        else:
            _finish(rows, Status.DONE, "", figures)
    finally:
        _remove_file(job)


def _finish(
    rows: QuerySet[om.ImportJob], status: str, error: str, figures: dict[str, Any] | None = None
) -> None:
    rows.update(status=status, error=error[:500], finished_at=utc_now(), **(figures or {}))


def _remove_file(job: om.ImportJob) -> None:
    """The uploaded file is patient data: once read, only the report stays."""
    try:
        if job.file:
            job.file.delete(save=False)
        om.ImportJob.objects.filter(pk=job.pk).update(file="")
    except OSError:
        log.warning("import %s: could not remove the uploaded file", job.pk)

"""FHIR files imported from the onboarding page: upload by an organisation admin, then a
background run of ``careloop.fhir.importer`` (the same import as ``careloop import fhir``)
whose progress and per-type report the page shows."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import translation
from django.utils.translation import gettext as _
from django_tasks import task

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.onboarding.models import FhirImportJob
from careloop.patients import selectors as patient_selectors

log = logging.getLogger(__name__)
Status = FhirImportJob.Status
SUFFIXES = (".json", ".ndjson", ".jsonl")
PROGRESS_SECONDS = 1.0  # at most one progress write a second


def max_bytes() -> int:
    return int(getattr(settings, "FHIR_IMPORT_MAX_BYTES", 50 * 1024 * 1024))


def require(actor: Actor) -> None:
    """Only organisation admins import FHIR files (the import writes organisation-wide)."""
    patient_selectors.require(actor, Action.ORG_MANAGE)


def visible_jobs(actor: Actor) -> QuerySet[FhirImportJob]:
    require(actor)
    return FhirImportJob.objects.filter(organisation_id=actor.organisation_id or 0)


def get_job(actor: Actor, job_id: int, *, audit_read: bool = True) -> FhirImportJob:
    job = visible_jobs(actor).select_related("created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(_("There is no such import."))
    if audit_read:
        audit.record(actor, "onboarding.fhir.read", obj=job)
    return job


def start(actor: Actor, *, upload: UploadedFile, department_id: Any = None) -> FhirImportJob:
    """Keep the uploaded file and queue its import."""
    require(actor)
    name = Path(upload.name or "upload.json").name[:200]
    if not name.lower().endswith(SUFFIXES):
        raise ValidationFailed(
            details={"file": [_("Upload a FHIR Bundle (.json) or an NDJSON file (.ndjson).")]}
        )
    if (upload.size or 0) > max_bytes():
        raise ValidationFailed(
            details={"file": [_("The file is larger than %(mb)d MB.") % {"mb": max_bytes() >> 20}]}
        )
    department = None
    if department_id not in (None, ""):
        department = Department.objects.filter(
            organisation_id=actor.organisation_id or 0, pk=department_id
        ).first()
        if department is None:
            raise ValidationFailed(details={"department": [_("Choose a department.")]})
    with transaction.atomic():
        job = FhirImportJob(
            organisation=actor.user.organisation,
            department=department,
            created_by=actor.user,
            file_name=name,
            size=upload.size or 0,
        )
        job.file.save(name, upload, save=False)
        job.save()
        audit.record(actor, "onboarding.fhir.upload", obj=job, detail={"size": job.size})
        job_id = job.pk
        transaction.on_commit(lambda: run_fhir_import.enqueue(job_id))
    return job


def run(job_id: int) -> None:
    """The background import of a queued file; runs once, whatever becomes of it."""
    from careloop.fhir import importer

    if not FhirImportJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING
    ):
        log.info("FHIR import %s: not queued; skipped", job_id)
        return
    job = FhirImportJob.objects.select_related("organisation", "department", "created_by").get(
        pk=job_id
    )
    rows = FhirImportJob.objects.filter(pk=job_id)
    last = [0.0]

    def progress(p: importer.Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS or p.resources_done >= p.resources_total:
            last[0] = now
            rows.update(total=p.resources_total, processed=p.resources_done)

    try:
        with translation.override(job.created_by.language or settings.LANGUAGE_CODE):
            runner = importer.Importer(
                job.organisation,
                department=job.department,
                source=f"upload:{job.file_name}",
                on_progress=progress,
            )
            reports = runner.run(Path(job.file.path))
    except Exception as exc:  # what was stored is kept; say why the run stopped
        log.exception("FHIR import %s failed", job_id)
        rows.update(status=Status.FAILED, error=str(exc)[:500], finished_at=utc_now())
        return
    report = reports[0].as_dict() if reports else {}
    failed = not reports or reports[0].status == "failed"
    rows.update(
        status=Status.FAILED if failed else Status.DONE,
        report=report,
        error=str(report.get("error") or "")[:500],
        total=report.get("entries", 0),
        processed=report.get("entries", 0),
        finished_at=utc_now(),
    )
    _remove_file(job)


def _remove_file(job: FhirImportJob) -> None:
    """The uploaded file is patient data: once imported, only the report stays."""
    try:
        job.file.delete(save=False)
    except OSError:  # pragma: no cover - already gone
        log.warning("FHIR import %s: could not remove the file", job.pk)
    FhirImportJob.objects.filter(pk=job.pk).update(file="")


@task()
def run_fhir_import(job_id: int) -> None:
    """Import an uploaded FHIR file (FhirImportJob); the payload is the job's id."""
    run(job_id)

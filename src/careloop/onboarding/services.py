"""Onboarding a clinic's patient list: upload, mapping, dry run, then the real run.

The upload is stored with its header and a proposed mapping. A dry run checks every row
(checks.Checker) and stores the per-row report without writing any patient. The real run is a
background job (tasks.py) that checks each row again and creates or updates the patient through
the patients services, so audit, versioning and the enrolment rules on coded diagnoses apply.
Each row is its own transaction: a refused row writes nothing and never stops the rows after it;
a row that matches a registered patient updates that patient, so running a file twice creates
no duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Membership
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import CareLoopError, NotFound, ValidationFailed
from careloop.onboarding import reading
from careloop.onboarding.checks import Checker, RowPlan
from careloop.onboarding.models import PatientListJob
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.patients import services as patient_services

log = logging.getLogger(__name__)
Status = PatientListJob.Status
PROGRESS_EVERY = 25  # rows between two progress writes


def max_bytes() -> int:
    return int(getattr(settings, "ONBOARDING_MAX_BYTES", 20 * 1024 * 1024))


def require(actor: Actor) -> None:
    patient_selectors.require(actor, Action.PATIENT_CREATE)


# --- reads -------------------------------------------------------------------------------------


def visible_jobs(actor: Actor) -> QuerySet[PatientListJob]:
    """Lists the actor uploaded or that staff of the actor's departments uploaded (all of the
    organisation's for organisation-wide roles)."""
    require(actor)
    qs = PatientListJob.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        colleagues = Membership.objects.filter(
            staff=OuterRef("created_by"), department_id__in=actor.department_ids
        )
        qs = qs.filter(Q(created_by=actor.user) | Exists(colleagues))
    return qs


def get_job(actor: Actor, job_id: int, *, audit_read: bool = True) -> PatientListJob:
    job = visible_jobs(actor).select_related("created_by", "department").filter(pk=job_id).first()
    if job is None:
        audit.record_denied(
            actor, "onboarding.read", object_type="onboarding.patientlistjob", object_id=job_id,
            detail={"reason": "scope"},
        )  # fmt: skip
        raise NotFound()
    if audit_read:
        audit.record(actor, "onboarding.read", obj=job)
    return job


def department_by_code(actor: Actor, code: str) -> Department:
    dept = Department.objects.filter(organisation_id=actor.organisation_id or 0, code=code).first()
    if dept is None or (not actor.is_org_wide and dept.pk not in actor.department_ids):
        raise ValidationFailed(details={"department": [_("Choose one of your own departments.")]})
    return dept


# --- upload and mapping ------------------------------------------------------------------------


def start(actor: Actor, *, upload: UploadedFile, department_id: Any = None) -> PatientListJob:
    """Store an uploaded list with its header and a proposed mapping (nothing is checked yet)."""
    require(actor)
    size = int(upload.size or 0)
    if size == 0:
        raise ValidationFailed(details={"file": [_("The file is empty.")]})
    if size > max_bytes():
        raise ValidationFailed(
            details={"file": [_("The file is larger than %(mb)d MB.") % {"mb": max_bytes() >> 20}]}
        )
    name = (upload.name or "patients").rsplit("/", 1)[-1][:200]
    upload.seek(0)
    try:
        kind = reading.kind_of(name, upload.read(8))
        upload.seek(0)
        table = reading.open_table(upload, kind)
    except reading.TableUnreadable as exc:
        raise ValidationFailed(details={"file": [str(exc.message)]}) from None
    department = None
    if department_id not in (None, ""):
        department = Department.objects.filter(
            organisation_id=actor.organisation_id or 0, pk=department_id
        ).first()
        if department is None or (
            not actor.is_org_wide and department.pk not in actor.department_ids
        ):
            raise ValidationFailed(
                details={"department": [_("Choose one of your own departments.")]}
            )
    upload.seek(0)
    with transaction.atomic():
        job = PatientListJob(
            organisation_id=actor.organisation_id or 0,
            department=department,
            created_by=actor.user,
            file_name=name,
            kind=kind,
            size=size,
            headers=table.headers,
            header_row=table.header_row,
            mapping=reading.propose(table.headers),
        )
        job.file.save(f"patients-{utc_now():%Y%m%d%H%M%S}.{kind}", upload, save=False)
        job.save()
        audit.record(actor, "onboarding.create", obj=job, detail={"kind": kind, "size": size})
    return job


def set_mapping(actor: Actor, job: PatientListJob, mapping: dict[str, str]) -> PatientListJob:
    """Keep the staff's mapping ({column index: field}); each field from one column at most."""
    clean = {k: v for k, v in mapping.items() if v}
    errors = []
    if any(not k.isdigit() or int(k) >= len(job.headers) for k in clean):
        errors.append(_("A mapped column is not in the file."))
    if any(v not in reading.FIELDS for v in clean.values()):
        errors.append(_("Unknown field in the mapping."))
    if len(set(clean.values())) != len(clean):
        errors.append(_("Each field can come from one column only."))
    if "name" not in clean.values() or "phone" not in clean.values():
        errors.append(_("Map at least the name and the phone columns."))
    if errors:
        raise ValidationFailed(details={"mapping": errors})
    if job.status not in (Status.UPLOADED, Status.CHECKED):
        raise ValidationFailed(details={"mapping": [_("This list has already been run.")]})
    job.mapping = clean
    job.status = Status.UPLOADED
    job.save(update_fields=["mapping", "status"])
    audit.record(actor, "onboarding.map", obj=job, detail={"mapping": clean})
    return job


# --- reading rows ------------------------------------------------------------------------------


@dataclass
class Summary:
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        self.total += 1
        outcome = result["outcome"]
        if outcome in ("create", "created"):
            self.created += 1
        elif outcome in ("update", "updated"):
            self.updated += 1
        elif outcome == "unchanged":
            self.unchanged += 1
        else:
            self.rejected += 1
        self.results.append(result)

    def figures(self) -> dict[str, Any]:
        return {
            "total_rows": self.total,
            "processed": self.total,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "results": self.results,
        }


def process(
    actor: Actor,
    stream: IO[bytes],
    *,
    kind: str,
    mapping: dict[str, str],
    header_row: int | None = None,
    department: Department | None = None,
    dry_run: bool,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Check every row (dry run) or check and apply it; the outcome of each row in order."""
    table = reading.open_table(stream, kind, header_row)
    columns = [(int(k), v) for k, v in mapping.items()]
    checker = Checker(actor, department)
    summary = Summary()
    for number, cells in table.rows:
        values = {name: cells[i] if i < len(cells) else "" for i, name in columns}
        plan = checker.check(number, values)
        summary.add(plan.as_result() if dry_run else apply(actor, checker, plan))
        if on_progress is not None and summary.total % PROGRESS_EVERY == 0:
            on_progress(summary)
    return summary


def _reasons(exc: CareLoopError) -> list[dict[str, str]]:
    details = exc.details if isinstance(exc.details, dict) else {}
    reasons = [
        {"field": str(name), "reason": str(text)}
        for name, texts in details.items()
        if isinstance(texts, list)
        for text in texts
    ]
    return reasons or [{"field": "", "reason": str(exc.message)}]


def apply(actor: Actor, checker: Checker, plan: RowPlan) -> dict[str, Any]:
    """Write one checked row in one transaction: all of it, or (refused) nothing."""
    result = plan.as_result()
    if plan.outcome in ("refused", "unchanged"):
        return result
    try:
        with transaction.atomic():
            patient = _write(actor, checker, plan)
    except CareLoopError as exc:
        result.update(outcome="refused", messages=_reasons(exc) + result["messages"])
        return result
    result.update(outcome="created" if plan.outcome == "create" else "updated", patient=patient.pk)
    return result


def _write(actor: Actor, checker: Checker, plan: RowPlan) -> pm.Patient:
    if plan.outcome == "create":
        patient = patient_services.create_patient(
            actor, dict(plan.data), department_id=plan.department_id
        )
    elif plan.link:
        patient = patient_services.create_patient(
            actor, dict(plan.data), department_id=plan.department_id, link_existing=True
        )
    else:
        patient = pm.Patient.objects.get(pk=plan.patient_id or 0)
        changes = checker.changes(plan, patient)
        if changes:
            patient = patient_services.update_patient(actor, patient.pk, changes, patient.version)
    if (
        plan.icd10_code
        and not pm.Condition.objects.filter(
            patient=patient, icd10_code=plan.icd10_code, deleted_at__isnull=True
        ).exists()
    ):
        patient_services.add_record(
            actor,
            patient.pk,
            "conditions",
            {"icd10_code": plan.icd10_code, "display": plan.diagnosis, "status": "active"},
        )
    return patient


# --- dry run and real run ----------------------------------------------------------------------


def dry_run(actor: Actor, job: PatientListJob) -> PatientListJob:
    """Check every row and keep the report; no patient is written."""
    require(actor)
    if job.status not in (Status.UPLOADED, Status.CHECKED) or not job.file:
        raise ValidationFailed(details={"file": [_("This list has already been run.")]})
    try:
        with job.file.open("rb") as stream:
            summary = process(
                actor, stream, kind=job.kind, mapping=job.mapping, header_row=job.header_row,
                department=job.department, dry_run=True,
            )  # fmt: skip
    except reading.TableUnreadable as exc:
        raise ValidationFailed(details={"file": [str(exc.message)]}) from None
    for name, value in summary.figures().items():
        setattr(job, name, value)
    job.status = Status.CHECKED
    job.checked_at = utc_now()
    job.save()
    audit.record(
        actor, "onboarding.check", obj=job,
        detail={"rows": summary.total, "refused": summary.rejected},
    )  # fmt: skip
    return job


def start_run(actor: Actor, job: PatientListJob) -> PatientListJob:
    """Queue the real run of a checked list (once)."""
    require(actor)
    claimed = PatientListJob.objects.filter(pk=job.pk, status=Status.CHECKED).update(
        status=Status.QUEUED, processed=0
    )
    if not claimed:
        raise ValidationFailed(details={"run": [_("Check the list (dry run) before running it.")]})
    audit.record(actor, "onboarding.run", obj=job)
    job_id = job.pk
    transaction.on_commit(lambda: _enqueue(job_id))
    job.refresh_from_db()
    return job


def _enqueue(job_id: int) -> None:
    from careloop.onboarding.tasks import run_patient_list

    run_patient_list.enqueue(job_id)


def run(job_id: int) -> None:
    """The background run of a queued list; runs once, whatever becomes of it."""
    if not PatientListJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING
    ):
        log.info("patient list %s: not queued; skipped", job_id)
        return
    job = PatientListJob.objects.select_related("created_by", "department").get(pk=job_id)
    actor = Actor(user=job.created_by, source="worker", channel="import")
    rows = PatientListJob.objects.filter(pk=job_id)

    def progress(summary: Summary) -> None:
        rows.update(
            processed=summary.total, created=summary.created, updated=summary.updated,
            unchanged=summary.unchanged, rejected=summary.rejected,
        )  # fmt: skip

    try:
        with translation.override(job.created_by.language or settings.LANGUAGE_CODE):
            with job.file.open("rb") as stream:
                summary = process(
                    actor, stream, kind=job.kind, mapping=job.mapping,
                    header_row=job.header_row, department=job.department, dry_run=False,
                    on_progress=progress,
                )  # fmt: skip
    except Exception as exc:  # the rows written are kept; say why the run stopped
        log.exception("patient list %s failed", job_id)
        reason = (
            str(exc.message)
            if isinstance(exc, CareLoopError)
            else _("The run stopped unexpectedly (%(error)s). The rows written before are kept.")
            % {"error": type(exc).__name__}
        )
        rows.update(status=Status.FAILED, error=reason[:500], finished_at=utc_now())
        return
    rows.update(status=Status.DONE, finished_at=utc_now(), **summary.figures())
    _remove_file(job)


def _remove_file(job: PatientListJob) -> None:
    """The uploaded list is patient data: once run, only the report stays."""
    try:
        if job.file:
            job.file.delete(save=False)
        PatientListJob.objects.filter(pk=job.pk).update(file="")
    except OSError:
        log.warning("patient list %s: could not remove the uploaded file", job.pk)


# --- the report --------------------------------------------------------------------------------

OUTCOME_LABELS = {
    "create": gettext_lazy("will be created"),
    "update": gettext_lazy("will be updated"),
    "created": gettext_lazy("created"),
    "updated": gettext_lazy("updated"),
    "unchanged": gettext_lazy("unchanged"),
    "refused": gettext_lazy("refused"),
}


def report_table(job: PatientListJob) -> tuple[list[str], list[list[Any]]]:
    header = [_("Row"), _("Outcome"), _("Patient"), _("Name"), _("Field"), _("Reason")]
    rows: list[list[Any]] = []
    for r in job.results or []:
        outcome = str(OUTCOME_LABELS.get(r["outcome"], r["outcome"]))
        messages = r.get("messages") or [{"field": "", "reason": ""}]
        for m in messages:
            field_label = reading.FIELDS.get(m.get("field", ""), m.get("field", ""))
            rows.append(
                [r["row"], outcome, r.get("patient") or "", r.get("name", ""), str(field_label),
                 m.get("reason", "")]
            )  # fmt: skip
    return [str(h) for h in header], rows

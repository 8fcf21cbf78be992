"""Background jobs of the FHIR interface (django-tasks; run by `careloop worker`)."""

from __future__ import annotations

from django_tasks import task

from careloop.fhir import bulk


@task()
def run_export_job(job_id: int) -> None:
    """Write the files of a queued $export (ExportJob); the payload is the job's id."""
    bulk.run_export(job_id)


@task()
def purge_export_job(job_id: int) -> None:
    """Remove an export's files once its retention has passed."""
    bulk.purge_job(job_id)

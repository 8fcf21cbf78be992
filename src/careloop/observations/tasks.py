"""Background jobs of readings (django-tasks, database backend; run by `careloop worker`)."""

from __future__ import annotations

from django_tasks import task

from careloop.observations import jobs


@task()
def run_import_job(job_id: int) -> None:
    """Read an uploaded file of readings (ImportJob); the payload is the job's id."""
    jobs.run_import(job_id)

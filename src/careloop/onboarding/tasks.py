"""Background job of patient lists (django-tasks; run by `careloop worker`)."""

from __future__ import annotations

from django_tasks import task

from careloop.onboarding import services


@task()
def run_patient_list(job_id: int) -> None:
    """Run a checked patient list (PatientListJob); the payload is the job's id."""
    services.run(job_id)

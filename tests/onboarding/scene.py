"""Patient-list onboarding in the shared security and audit tests (tests/security/scenario.py):
a checked list uploaded by the cardiology nurse, and valid input for each form."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.onboarding.models import PatientListJob

_CSV = "姓名,性别,出生日期,手机\n安全测试,男,1960-03-05,13912340000\n".encode()


def _ours(route: Any) -> bool:
    return route.transport == "page" and route.name.startswith("onboarding:")


def extend(scene: Any) -> None:
    world = scene.world
    job = PatientListJob(
        organisation=world.org,
        created_by=world.staff["nurse.cardiology"],
        file_name="patients.csv",
        kind="csv",
        size=len(_CSV),
        headers=["姓名", "性别", "出生日期", "手机"],
        header_row=1,
        mapping={"0": "name", "1": "sex", "2": "date_of_birth", "3": "phone"},
        status=PatientListJob.Status.CHECKED,
        total_rows=1,
        created=1,
        results=[
            {"row": 2, "outcome": "create", "patient": None, "name": "安全测试", "messages": []}
        ],
    )
    job.file.save("patients.csv", ContentFile(_CSV), save=False)
    job.save()
    scene.extra["patient_list"] = job


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "job_id" in route.path:
        values["job_id"] = scene.extra["patient_list"].pk
    if "fmt" in route.path:
        values["fmt"] = "csv"
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "onboarding:upload":
        return {"file": SimpleUploadedFile("patients.csv", _CSV, content_type="text/csv")}
    if route.name == "onboarding:mapping":
        return {f"col_{k}": v for k, v in scene.extra["patient_list"].mapping.items()}
    if route.name == "onboarding:run":
        return {"confirm": "yes"}
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

"""Reading imports and the readings API in the shared security and audit tests
(tests/security/scenario.py): a finished import by the cardiology nurse, and valid input for
the upload form and for each POST of the readings API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.kit.clock import utc_now
from careloop.observations import models as om

_PATIENT_PATHS = ("/observations", "/adverse-reactions", "/symptoms")


def _ours(route: Any) -> bool:
    if route.transport == "page":
        return route.name.startswith("imports:")
    return route.path.startswith("/api/observations") or (
        route.path.startswith("/api/patients/{patient_id}") and route.path.endswith(_PATIENT_PATHS)
    )


def extend(scene: Any) -> None:
    world = scene.world
    scene.extra["import"] = om.ImportJob.objects.create(
        organisation=world.org,
        format="csv",
        file="",
        file_name="readings.csv",
        size=120,
        status=om.ImportJob.Status.DONE,
        bytes_read=120,
        lines=3,
        accepted=1,
        rejected=1,
        problems=[
            {"line": 3, "field": "systolic", "reason": "systolic 400 mm[Hg] is not possible"}
        ],
        created_by=world.staff["nurse.cardiology"],
        finished_at=utc_now(),
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if _ours(route) and "import_id" in route.path:
        return {"import_id": scene.extra["import"].pk}
    return {}


def _csv(scene: Any) -> SimpleUploadedFile:
    at = (utc_now() - timedelta(hours=2)).isoformat(timespec="minutes")
    text = f"patient,code,systolic,diastolic,effective\n{scene.patient.pk},bp,150,95,{at}\n"
    return SimpleUploadedFile("readings.csv", text.encode(), content_type="text/csv")


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "imports:upload":  # a file of the scene's patient
        return {"format": "csv", "file": _csv(scene), "patient": str(scene.patient.pk)}
    return {}


def _reading(scene: Any, hours: int) -> dict[str, Any]:
    return {
        "patient": scene.patient.pk,
        "code": "85354-9",
        "systolic": 150,
        "diastolic": 95,
        "effective": (utc_now() - timedelta(hours=hours)).isoformat(),
        "source": "device",
        "device": "OMRON-0042",
    }


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    if route.transport != "api" or not _ours(route) or route.method != "POST":
        return None
    today = utc_now().date().isoformat()
    if route.path == "/api/observations":
        return _reading(scene, 1), {}
    if route.path == "/api/observations/batch":
        return {"items": [_reading(scene, 3), _reading(scene, 4)]}, {}
    if route.path.endswith("/adverse-reactions"):
        return {"drug": "氨氯地平", "symptom": "干咳", "severity": 2, "onset": today}, {}
    if route.path.endswith("/symptoms"):
        return {"symptom": "头晕", "severity": 4, "note": "晨起明显"}, {}
    return None

"""FHIR file imports (careloop.onboarding.fhir_views) in the shared security and audit tests
(tests/security/scenario.py): a finished import by the organisation admin, and a small NDJSON
upload for the form."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.kit.clock import utc_now
from careloop.onboarding.models import FhirImportJob


def _ours(route: Any) -> bool:
    return route.transport == "page" and route.name.startswith("fhirimport:")


def extend(scene: Any) -> None:
    world = scene.world
    scene.extra["fhir_import"] = FhirImportJob.objects.create(
        organisation=world.org,
        created_by=world.staff["admin"],
        file_name="export.ndjson",
        size=120,
        status=FhirImportJob.Status.DONE,
        total=1,
        processed=1,
        report={"entries": 1, "types": {"Patient": {"total": 1, "imported": 1}}},
        finished_at=utc_now(),
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if _ours(route) and "job_id" in route.path:
        return {"job_id": scene.extra["fhir_import"].pk}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "fhirimport:upload":
        patient = {
            "resourceType": "Patient",
            "id": "sec-1",
            "name": [{"family": "Test", "given": ["Security"]}],
            "gender": "female",
            "birthDate": "1960-03-05",
        }
        body = (json.dumps(patient) + "\n").encode()
        return {"file": SimpleUploadedFile("export.ndjson", body, content_type="application/json")}
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

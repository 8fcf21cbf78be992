"""The FHIR routes (careloop.fhir) in the shared security tests (tests/security/scenario.py).

Each route is called on the actor's own Organization, which every staff user may read; the
per-type authorisation and patient scope are tested in tests/fhir.

Bulk Data exports answer only the user who started them, and an export is looked up by its key
together with its requester: the scene gives every staff user a complete export of their own
Organization under the same key, so that each caller of the status and file routes polls and
downloads their own (tests/fhir/test_bulk_export.py tests that nobody reaches another's).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

EXPORT_KEY = "scene-export"
EXPORT_FILE = "Organization.ndjson"
_FILES: list[Path] = []


def _files_dir() -> Path:
    if not _FILES:
        _FILES.append(Path(tempfile.mkdtemp(prefix="careloop-scene-export-")))
        atexit.register(shutil.rmtree, _FILES[0], True)
    return _FILES[0]


def extend(scene: Any) -> None:
    """A complete export of the organisation for every staff user (the organisation itself is
    in every scene)."""
    from careloop.fhir.models import ExportJob
    from careloop.kit.clock import utc_now

    line = f'{{"resourceType":"Organization","id":"org-{scene.world.org.pk}"}}\n'
    for username, staff in scene.world.staff.items():
        directory = _files_dir() / f"{username}-{scene.world.org.pk}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / EXPORT_FILE).write_text(line)
        ExportJob.objects.create(
            key=EXPORT_KEY,
            requester=staff,
            organisation_id=staff.organisation_id,
            level="system",
            types=["Organization"],
            request_url="http://testserver/fhir/$export",
            status=ExportJob.Status.DONE,
            output=[{"type": "Organization", "file": EXPORT_FILE, "count": 1}],
            directory=str(directory),
            finished_at=utc_now(),
        )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not route.name.startswith("fhir:"):
        return {}
    values: dict[str, Any] = {}
    if "<str:resource_type>" in route.path:
        values["resource_type"] = "Organization"
    if "<str:resource_id>" in route.path:
        values["resource_id"] = f"org-{scene.world.org.pk}"
    if "<str:version_id>" in route.path:
        values["version_id"] = "1"
    if "<str:key>" in route.path:
        values["key"] = EXPORT_KEY
    if "<str:file_name>" in route.path:
        values["file_name"] = EXPORT_FILE
    if "<str:group_id>" in route.path:
        # A shipped plan's cohort: a group every staff user may name (a department's group is
        # known only to its own staff, tests/fhir/test_bulk_export.py).
        from tests.careplans.scene import ENROLLED_PLAN, _plan

        values["group_id"] = f"plan-{_plan(ENROLLED_PLAN).pk}"
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if route.name == "fhir:search":
        return {"name": "Test"}
    return None


def api_body(route: Any, scene: Any) -> Any:
    return None


def page_headers(route: Any, scene: Any) -> dict[str, str]:
    """A Bulk Data kick-off answers only an asynchronous FHIR request."""
    if route.name in ("fhir:export", "fhir:patient_export", "fhir:group_export"):
        return {"HTTP_ACCEPT": "application/fhir+json", "HTTP_PREFER": "respond-async"}
    return {}

"""The monthly report routes in the shared security tests (tests/security/scenario.py): the
scene's department and its last complete month; valid schedule input."""

from __future__ import annotations

from typing import Any

from careloop.analytics.reports import selectors
from careloop.patients import models as pm


def _ours(route: Any) -> bool:
    return str(route.name).startswith("reports:")


def extend(scene: Any) -> None:
    dept = pm.PatientDepartment.objects.get(patient=scene.patient).department
    scene.extra["report_department"] = dept


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    dept = scene.extra["report_department"]
    values: dict[str, Any] = {}
    if "department_id" in route.path:
        values["department_id"] = dept.pk
    if "month" in route.path:
        values["month"] = f"{selectors.last_month(dept):%Y-%m}"
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "reports:schedule_edit":
        return {"active": "on", "day": "3", "language": "en"}
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

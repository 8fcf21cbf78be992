"""The area estimates routes in the shared security and audit tests
(tests/security/scenario.py): one hypertension estimate of the scene's organisation."""

from __future__ import annotations

from typing import Any

from careloop.analytics import models as am


def _ours(route: Any) -> bool:
    return str(route.name).startswith("analytics_estimates:")


def extend(scene: Any) -> None:
    scene.extra["estimate"] = am.AreaEstimate.objects.create(
        organisation_id=scene.patient.organisation_id,
        condition="hypertension",
        year=2026,
        estimated_patients=12000,
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    if "<int:estimate_id>" in route.path:
        return {"estimate_id": scene.extra["estimate"].pk}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route) or route.name != "analytics_estimates:list":
        return None
    return {"condition": "diabetes", "year": "2026", "estimated_patients": "8000"}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

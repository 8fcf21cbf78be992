"""The careloop.sendtime routes in the shared route-matrix tests (tests/security/scenario.py).

The scene's organisation has send-time learning set up; the settings form is posted with
valid values (the defaults with learning switched on).
"""

from __future__ import annotations

from typing import Any


def _ours(route: Any) -> bool:
    return str(route.name).startswith("sendtime:")


def extend(scene: Any) -> None:
    from careloop.sendtime import models as m

    m.Settings.objects.update_or_create(
        organisation=scene.world.org, defaults={"enabled": True, "control_share": 0.2}
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "sendtime:settings":
        return {
            "enabled": "on",
            "control_percent": "20",
            "prior_strength": "4",
            "measurement_from": "07:00",
            "measurement_until": "21:00",
            "questionnaire_from": "08:00",
            "questionnaire_until": "21:00",
            "education_from": "08:00",
            "education_until": "21:00",
            "medication_minutes": "60",
        }
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

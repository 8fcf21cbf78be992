"""The careloop.segments routes in the shared route-matrix tests (tests/security/scenario.py).

The pages are asked about the shipped "high risk, non-adherent" segment, with the scene's
patient as a member of it.
"""

from __future__ import annotations

from typing import Any

from careloop.kit.clock import utc_now

CODE = "high_risk_non_adherent"


def _ours(route: Any) -> bool:
    return str(route.name).startswith("segments:")


def extend(scene: Any) -> None:
    """Load the shipped segments and put the scene's patient into one."""
    from careloop.segments import models as sm
    from careloop.segments import services

    services.load_defaults()
    segment = sm.Segment.objects.get(organisation__isnull=True, code=CODE)
    sm.Membership.objects.get_or_create(
        organisation_id=scene.patient.organisation_id,
        patient=scene.patient,
        segment=segment,
        left_at=None,
        defaults={"entered_at": utc_now(), "facts": {"last_sbp": 172.0, "last_dbp": 104.0}},
    )
    scene.extra["segment"] = segment


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route) or "<int:segment_id>" not in route.path:
        return {}
    return {"segment_id": scene.extra["segment"].pk}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name in ("segments:create", "segments:edit"):
        return {
            "code": "scene_segment",
            "name": "场景分组",
            "name_en": "Scene segment",
            "description": "",
            "rule": "last_sbp >= 170",
            "priority": "50",
            "strategy": '{"kind": "none"}',
            "active": "on",
        }
    if route.name == "segments:deactivate":
        return {"confirm": "1"}
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

"""The vitals routes (careloop.observations.views) in the shared security and audit tests
(tests/security/scenario.py): valid form input for each of their POSTs.

Nothing is added to the scene: the patient's medication (a record every scene has) is the drug
of the adverse reaction, and times are an hour ago on the patient's clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.kit.clock import utc_now


def extend(scene: Any) -> None:
    """Nothing up front; see the module docstring."""


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    return {}


def _an_hour_ago(scene: Any) -> str:
    local = (utc_now() - timedelta(hours=1)).astimezone(ZoneInfo(scene.patient.time_zone))
    return local.strftime("%Y-%m-%dT%H:%M")


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not route.name.startswith("vitals:"):
        return None
    today = utc_now().astimezone(ZoneInfo(scene.patient.time_zone)).date().isoformat()
    bodies: dict[str, dict[str, Any]] = {
        "vitals:reading_create": {
            "kind": "bp",
            "systolic": "150",
            "diastolic": "95",
            "effective": _an_hour_ago(scene),
        },
        "vitals:symptom_create": {
            "symptom": "头晕",
            "severity": "4",
            "effective": _an_hour_ago(scene),
        },
        "vitals:reaction_create": {
            "medication": str(scene.rows["medications"].pk),
            "symptom": "干咳",
            "severity": "2",
            "onset": today,
        },
        "vitals:thresholds": {
            "rule": "ph-bp-followup",
            "p_sys": "150",
            "p_dia": "95",
            "reason": "高龄，目标放宽",
        },
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

"""The worklist, alert and threshold routes in the shared security and audit tests
(tests/security/scenario.py).

The scene's patient gets one open urgent alert (a row as the rule engine leaves it), which every
/alerts/<id>/ and /api/alerts/{id} route acts on; a call result, an assignment and a personal
threshold get valid input.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.alerts import models as am
from careloop.kit.clock import utc_now


def _ours(route: Any) -> bool:
    return route.name.startswith(("alerts:", "worklist:")) or route.path.startswith(
        ("/api/alerts", "/api/worklist", "/api/assign")
    )


def extend(scene: Any) -> None:
    p = scene.patient
    now = utc_now()
    scene.extra["alert"] = am.Alert.objects.create(
        organisation_id=p.organisation_id,
        patient=p,
        department_id=p.department_links.first().department_id,
        rule="bp-crisis",
        key=f"bp-crisis:{p.pk}:scene",
        severity="critical",
        priority=am.Priority.URGENT,
        priority_rank=am.PRIORITY_RANK["urgent"],
        performer_role=am.Alert.Route.DOCTOR,
        text_zh="血压 185/115 mmHg，达到危急值（≥180/110）",
        text_en="Blood pressure 185/115 mmHg at crisis level (≥ 180/110)",
        values={"value": 185.0, "value2": 115.0, "sys": 180, "dia": 110},
        triggered_at=now - timedelta(minutes=5),
        raised_at=now,
        due_at=now + timedelta(minutes=15),
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if _ours(route) and "alert_id" in route.path:
        return {"alert_id": scene.extra["alert"].pk}
    return {}


def _colleague(scene: Any) -> int:
    dept = scene.patient.department_links.first().department
    return int(scene.world.staff[f"doctor.{dept.code}"].pk)


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not route.name.startswith(("alerts:", "worklist:")):
        return None
    bodies: dict[str, dict[str, Any]] = {
        "alerts:resolve": {"outcome": "advice_given", "note": "已电话指导"},
        "alerts:dismiss": {"reason": "duplicate"},
        "worklist:call_result": {"outcome": "remind_later"},
        "worklist:assign": {
            "item": [f"alert-{scene.extra['alert'].pk}"],
            "to": _colleague(scene),
        },
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    if route.transport != "api":
        return None
    if route.path.endswith("/thresholds") and route.method == "PUT":
        body = {"rule": "bp-crisis", "params": {"sys": 170, "dia": 105}, "reason": "高龄"}
        return body, {}
    if not _ours(route) or route.method != "POST":
        return None
    action = route.path.rsplit("/", 1)[-1]
    if action == "resolve":
        return {"outcome": "advice_given", "note": ""}, {}
    if action == "dismiss":
        return {"reason": "duplicate", "note": ""}, {}
    if action == "assign":
        return {"to": _colleague(scene), "alert_ids": [scene.extra["alert"].pk]}, {}
    return None, {}

"""The HL7 v2 message log in the shared security and audit tests (tests/security/scenario.py):
one failed message of the scene's organisation, for the replay route."""

from __future__ import annotations

from typing import Any

from careloop.hl7v2 import services


def _ours(route: Any) -> bool:
    return route.transport == "page" and route.name.startswith("hl7v2:")


def extend(scene: Any) -> None:
    raw = (
        b"MSH|^~\\&|HIS|H|CL|C|20240101120000||ORU^R01|SCENE1|P|2.5\r"
        b"PID|1||NOBODY^^^H^MR||Nobody^None||19600101|M\r"
        b"OBX|1|NM|8867-4^HR^LN||70|/min|||||F\r"
    )
    _answer, log = services.receive(raw, scene.world.org, channel="file")
    scene.extra["hl7v2_message"] = log


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route) or "message_id" not in route.path:
        return {}
    return {"message_id": scene.extra["hl7v2_message"].pk}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    return {} if _ours(route) else None


def api_body(route: Any, scene: Any) -> dict[str, Any] | None:
    return None

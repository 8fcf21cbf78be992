"""The analytics routes in the shared security and audit tests (tests/security/scenario.py).

The pages are asked about a real metric of the registry (the hypertension control cascade)
and its "uncontrolled" part, for the scene's department as the caller sees it.
"""

from __future__ import annotations

from typing import Any

METRIC = "htn_cascade"
PART = "uncontrolled"


def _ours(route: Any) -> bool:
    return str(route.name).startswith("analytics:")


def extend(scene: Any) -> None:
    """Nothing to make: the figures are computed from the scene's patients."""


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "<str:metric>" in route.path:
        values["metric"] = METRIC
    if "<str:part>" in route.path:
        values["part"] = PART
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    return None


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

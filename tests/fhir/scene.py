"""The FHIR routes (careloop.fhir) in the shared security tests (tests/security/scenario.py).

Each route is called on the actor's own Organization, which every staff user may read; the
per-type authorisation and patient scope are tested in tests/fhir.
"""

from __future__ import annotations

from typing import Any


def extend(scene: Any) -> None:
    """Nothing to add: the organisation is in every scene."""


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
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if route.name == "fhir:search":
        return {"name": "Test"}
    return None


def api_body(route: Any, scene: Any) -> Any:
    return None

"""The API tokens page in the shared security and audit tests (tests/security/scenario.py).

Revoking posts the number of a token of the user making the request (issued just before it);
issuing posts a valid scope list bound to the scene's patient.
"""

from __future__ import annotations

from typing import Any

from careloop.accounts import services as accounts
from careloop.accounts.models import ApiToken, Staff


def _ours(route: Any) -> bool:
    return str(route.name).startswith("tokens:")


def extend(scene: Any) -> None:
    return None


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "tokens:list":
        return {"label": "scene", "scopes": "user/Patient.rs", "days": "30"}
    staff = Staff.objects.filter(username=username or "").first()
    if staff is None:
        return {"token": "1"}
    accounts.issue_token(staff, "scene", scopes="user/Patient.rs")
    return {"token": str(ApiToken.objects.filter(staff=staff).latest("pk").pk)}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

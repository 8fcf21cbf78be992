"""Subscriptions in the shared security and audit tests (tests/security/scenario.py): one
subscription and one allowed host of the scene's organisation, for the admin page's routes."""

from __future__ import annotations

from typing import Any

from careloop.subscriptions import models as sm


def _ours(route: Any) -> bool:
    return route.transport == "page" and route.name.startswith("subscriptions:")


def extend(scene: Any) -> None:
    world = scene.world
    scene.extra["subscription"] = sm.Subscription.objects.create(
        organisation=world.org,
        created_by=world.staff["admin"],
        criteria="Observation",
        resource_type="Observation",
        endpoint="https://hooks.example.org/careloop",
        secret="whsec_scene",
        status=sm.Subscription.Status.ACTIVE,
        reason="scene",
    )
    scene.extra["allowed_host"] = sm.AllowedHost.objects.create(
        organisation=world.org, host="hooks.internal.example"
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    if "subscription_id" in route.path:
        return {"subscription_id": scene.extra["subscription"].pk}
    if "host_id" in route.path:
        return {"host_id": scene.extra["allowed_host"].pk}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    if route.name == "subscriptions:allow_host":
        return {"host": "hooks2.internal.example"}
    return {}


def api_body(route: Any, scene: Any) -> dict[str, Any] | None:
    return None

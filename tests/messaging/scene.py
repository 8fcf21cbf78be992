"""The messaging routes in the shared security and audit tests (tests/security/scenario.py).

The scene's patient writes one question with a photo to cardiology; every /inbox/<id>/,
/portal/messages/<id>/ and /api/messages/{id} route acts on that thread and photo.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.messaging import services
from careloop.portal.context import PortalActor
from tests.messaging.support import PNG

_PAGES = ("messaging:", "portal:messages", "portal:thread", "portal:message_send")


def _ours(route: Any) -> bool:
    return (
        route.name.startswith(_PAGES)
        or route.name == "portal:attachment"
        or route.path.startswith("/api/messages")
    )


def extend(scene: Any) -> None:
    p = scene.patient
    actor = PortalActor(patient_id=p.pk, organisation_id=p.organisation_id, session_id=0)
    sent = services.start_thread(
        actor,
        subject="伤口",
        body="伤口有点红，附照片",
        files=[SimpleUploadedFile("wound.png", PNG, content_type="image/png")],
        key="scene-message-0001",
    )
    scene.extra["thread"] = sent.message.thread
    scene.extra["attachment"] = sent.message.attachments.get()


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "thread_id" in route.path:
        values["thread_id"] = scene.extra["thread"].pk
    if "attachment_id" in route.path:
        values["attachment_id"] = scene.extra["attachment"].pk
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route) or route.transport != "page":
        return None
    key = f"scene-{route.name.replace(':', '-')}-{username or 'anon'}"[:100]
    bodies: dict[str, dict[str, Any]] = {
        "portal:messages": {"subject": "复诊", "body": "什么时候复诊？", "idempotency_key": key},
        "portal:message_send": {"body": "补充一下", "idempotency_key": key},
        "messaging:reply": {"body": "请明天来门诊。", "idempotency_key": key},
        "messaging:assign": {"to": "me"},
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    if route.transport != "api" or not _ours(route) or route.method != "POST":
        return None
    action = route.path.rsplit("/", 1)[-1]
    if action == "reply":
        return {"body": "请明天来门诊。"}, {}
    if action == "assign":
        return {"to": None}, {}
    return {}, {}

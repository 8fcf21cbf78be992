"""The provider callback route in the shared security and audit tests."""

from __future__ import annotations

from typing import Any


def extend(scene: Any) -> None:
    from careloop.channels.models import ChannelConfig

    cfg = ChannelConfig(organisation=scene.world.org, kind="sms", provider="aliyun_sms")
    cfg.config = {
        "endpoint": "http://127.0.0.1:9/",
        "access_key_id": "LTAIscene",
        "access_key_secret": "scene-secret",
        "sign_name": "随访",
        "template_code": "SMS_1",
        "callback_token": "scene-callback-token",
    }
    cfg.save()


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if route.name == "channels:callback":
        return {"organisation": scene.world.org.code, "provider": "aliyun_sms"}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    return {} if route.name == "channels:callback" else None


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

"""Portal sign-in, Me, push and the staff portal-access panel in the shared security and audit
tests (tests/security/scenario.py).

The scene's patient gets a family member with access (whom /portal/me/family/<id>/ and
/portal-access/<id>/family/<id>/ act on), a second one without (whom the grant forms name),
and an unused invitation link (/portal/invite/<token>). Anonymous sign-in posts are valid
requests too: a phone number to send a code to, a code typed without one asked for.
"""

from __future__ import annotations

from typing import Any

from careloop.channels.webpush import b64url, public_bytes
from careloop.patients import services as patient_services
from careloop.portal import services

_STAFF = "portal_staff:"
_MINE = {
    "portal:sign_in",
    "portal:sign_in_code",
    "portal:sign_in_choose",
    "portal:invitation",
    "portal:sign_out",
    "portal:manifest",
    "portal:service_worker",
    "portal:me",
    "portal:elder_mode",
    "portal:family_grant",
    "portal:family_revoke",
    "portal:family_notify",
    "portal:push_subscribe",
    "portal:push_unsubscribe",
}
ENDPOINT = "https://push.example.org/send/scene-subscription"


def _ours(route: Any) -> bool:
    return route.name in _MINE or route.name.startswith(_STAFF)


def _caregiver(scene: Any, name: str, phone: str) -> Any:
    return patient_services.add_record(
        scene.nurse(),
        scene.patient.pk,
        "caregivers",
        {"name": name, "relation": "儿子", "phone": phone, "is_emergency_contact": False},
    )


def _browser_keys() -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return {"p256dh": b64url(public_bytes(key.public_key())), "auth": b64url(b"0123456789abcdef")}


def extend(scene: Any) -> None:
    nurse = scene.nurse()
    with_access = _caregiver(scene, "周一", "13622220001")
    scene.extra["portal_proxy"] = services.grant_proxy(
        nurse, scene.patient.pk, with_access.pk, source="paper", consent=True, notify=True
    )
    scene.extra["portal_carer"] = _caregiver(scene, "周二", "13622220002")
    _invitation, token = services.create_invitation_cli(scene.patient.pk)
    scene.extra["portal_token"] = token
    scene.extra["portal_push_keys"] = _browser_keys()


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route) or route.transport != "page":
        return {}
    values: dict[str, Any] = {}
    if "<int:proxy_id>" in route.path:
        values["proxy_id"] = scene.extra["portal_proxy"].pk
    if "<str:token>" in route.path:
        values["token"] = scene.extra["portal_token"]
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route) or route.transport != "page":
        return None
    phone = scene.patient.phones.order_by("position").first().number
    keys = scene.extra["portal_push_keys"]
    bodies: dict[str, dict[str, Any]] = {
        "portal:sign_in": {"phone": phone, "org": scene.world.org.code},
        "portal:sign_in_code": {"code": "123456"},
        "portal:sign_in_choose": {"choice": "0"},
        "portal:elder_mode": {"elder": "1"},
        "portal:family_grant": {"caregiver": scene.extra["portal_carer"].pk, "consent": "1"},
        "portal:family_notify": {"notify": "0"},
        "portal:push_subscribe": {"endpoint": ENDPOINT, **keys},
        "portal:push_unsubscribe": {"endpoint": ENDPOINT},
        "portal_staff:proxy_grant": {
            "caregiver": scene.extra["portal_carer"].pk,
            "source": "paper",
            "consent": "on",
        },
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

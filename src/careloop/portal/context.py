"""Who is acting in the portal: the patient (or a caregiver acting for them), from the cookie.

Every portal view receives a PortalActor. Its patient is fixed by the sign-in; nothing a
request carries can change it, so every lookup is filtered by ``actor.patient_id`` and a row
of anyone else answers 404.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from careloop.accounts.actor import client_address
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.portal.models import PortalSession

COOKIE = "careloop_portal"
# A session stays signed in while used at least weekly, and at most 30 days in all.
IDLE = timedelta(days=7)
LIFETIME = timedelta(days=30)
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class PortalActor:
    """The signed-in patient, or a caregiver with proxy access to that patient."""

    patient_id: int
    organisation_id: int
    session_id: int
    caregiver_id: int | None = None
    source: str = ""
    channel: str = "portal"

    @property
    def name(self) -> str:
        if self.caregiver_id:
            return f"caregiver:{self.caregiver_id}"
        return f"patient:{self.patient_id}"

    @property
    def is_proxy(self) -> bool:
        return self.caregiver_id is not None

    def audit(
        self,
        action: str,
        *,
        outcome: str = "success",
        object_type: str = "",
        object_id: Any = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit event for this patient, as the patient (or caregiver)."""
        audit.append(
            action=action,
            outcome=outcome,
            actor_name=self.name,
            organisation_id=self.organisation_id,
            patient_id=self.patient_id,
            object_type=object_type,
            object_id=object_id,
            source=self.source,
            detail={"via": "portal", **(detail or {})},
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    request: HttpRequest,
    response: HttpResponse,
    patient: Any,
    *,
    method: str,
    caregiver: Any = None,
) -> PortalSession:
    """Sign a browser in: a new random token in the cookie, its digest in a new session row."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    session = PortalSession.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        caregiver=caregiver,
        token_digest=_digest(token),
        method=method,
        source=client_address(request),
        user_agent=str(request.META.get("HTTP_USER_AGENT", ""))[:200],
        created_at=now,
        last_seen=now,
        expires_at=now + LIFETIME,
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    actor = _actor(session, request)
    actor.audit("portal.sign_in", object_type="portal.session", object_id=session.pk,
                detail={"method": method})  # fmt: skip
    return session


def _actor(session: PortalSession, request: HttpRequest) -> PortalActor:
    return PortalActor(
        patient_id=session.patient_id,
        organisation_id=session.organisation_id,
        session_id=session.pk,
        caregiver_id=session.caregiver_id,
        source=client_address(request),
    )


def current(request: HttpRequest) -> PortalActor | None:
    """The portal actor of this request, or None when not (or no longer) signed in."""
    if hasattr(request, "_portal_actor"):
        cached: PortalActor | None = request._portal_actor
        return cached
    actor = _lookup(request)
    request._portal_actor = actor  # type: ignore[attr-defined]
    return actor


def _lookup(request: HttpRequest) -> PortalActor | None:
    token = request.COOKIES.get(COOKIE, "")
    if not token or len(token) > 100:
        return None
    session = (
        PortalSession.objects.select_related("patient")
        .filter(token_digest=_digest(token), ended_at__isnull=True)
        .first()
    )
    if session is None:
        return None
    now = utc_now()
    patient = session.patient
    reason = ""
    if session.expires_at <= now:
        reason = "expired"
    elif now - session.last_seen > IDLE:
        reason = "idle"
    elif patient.merged_into_id is not None or patient.deceased_on is not None:
        reason = "record_closed"
    elif session.caregiver_id is not None and not _proxy_holds(session):
        reason = "proxy_revoked"
    if reason:
        end_session(session, reason)
        return None
    if now - session.last_seen > _TOUCH_EVERY:
        PortalSession.objects.filter(pk=session.pk).update(last_seen=now)
    return _actor(session, request)


def _proxy_holds(session: PortalSession) -> bool:
    """A family member's session lasts only while their access (the patient's consent) does."""
    from careloop.portal.models import PortalProxy

    return PortalProxy.objects.filter(
        patient_id=session.patient_id,
        caregiver_id=session.caregiver_id or 0,
        revoked_at__isnull=True,
        caregiver__deleted_at__isnull=True,
    ).exists()


def end_session(session: PortalSession, reason: str) -> None:
    PortalSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
        ended_at=utc_now(), end_reason=reason[:20]
    )


def sign_out(request: HttpRequest, response: HttpResponse) -> None:
    """End this browser's session (the row, so a copied cookie is dead too) and drop the cookie."""
    actor = current(request)
    if actor is not None:
        session = PortalSession.objects.get(pk=actor.session_id)
        end_session(session, "signed_out")
        actor.audit("portal.sign_out", object_type="portal.session", object_id=session.pk)
    response.delete_cookie(COOKIE, samesite="Lax")


def end_all_for(patient_id: int, reason: str) -> int:
    """End every portal session of a patient (staff revocation, record closed)."""
    return PortalSession.objects.filter(patient_id=patient_id, ended_at__isnull=True).update(
        ended_at=utc_now(), end_reason=reason[:20]
    )

"""Signed-in portal clients for tests: a real PortalSession row and its cookie."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.test import Client

from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.identifiers import normalise_phone
from careloop.portal.context import COOKIE
from careloop.portal.models import PortalSession


def portal_token(patient: Any, caregiver: Any = None) -> str:
    """Start a portal session for a patient (or a caregiver by proxy); the cookie value."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    if caregiver is not None:
        _ensure_proxy(patient, caregiver)
    PortalSession.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        caregiver=caregiver,
        token_digest=hashlib.sha256(token.encode()).hexdigest(),
        method=PortalSession.Method.INVITATION,
        created_at=now,
        last_seen=now,
        expires_at=now + timedelta(days=30),
    )
    return token


def _ensure_proxy(patient: Any, caregiver: Any) -> None:
    """A caregiver session holds only with family access (the patient's recorded consent)."""
    from careloop.portal.models import PortalProxy

    if PortalProxy.objects.filter(
        patient=patient, caregiver=caregiver, revoked_at__isnull=True
    ).exists():
        return
    number = normalise_phone(caregiver.phone) or caregiver.phone
    PortalProxy.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        caregiver=caregiver,
        phone_index=blind_index("phone", number),
        consented_at=utc_now(),
        consent_source=PortalProxy.ConsentSource.PAPER,
    )


def portal_client(patient: Any, caregiver: Any = None, language: str = "en") -> Client:
    """A test client signed in to the portal as the patient, in the given language."""
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.cookies[COOKIE] = portal_token(patient, caregiver)
    client.cookies["django_language"] = language
    return client


class PortalUser:
    """Who a portal session is, for access-rule checks: no staff rights at all."""

    is_authenticated = False
    is_active = False
    is_staff = False
    is_portal_patient = True
    organisation_id = None
    role = ""

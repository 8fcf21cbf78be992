"""Opaque links in outbound messages: derived from the occurrence key, stored only as a digest."""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings


def _key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"careloop-reminder-links", "sha256").digest()


def token_for(source_key: str) -> str:
    mac = hmac.new(_key(), source_key.encode(), "sha256").digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_for(token: str) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/r/{token}"

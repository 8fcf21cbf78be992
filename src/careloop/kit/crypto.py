"""Field encryption (keys outside the database) and keyed blind indexes for exact search."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


def _fernet_key(secret: str) -> bytes:
    # Any configured secret becomes a 32-byte Fernet key by SHA-256 (keys are random tokens).
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


@lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.FIELD_KEYS))


def encrypt(value: str) -> str:
    return cipher().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("encrypted value cannot be read with the configured keys") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the newest key (the first of CARELOOP_FIELD_KEYS)."""
    return cipher().rotate(token.encode()).decode()


def blind_index(kind: str, value: str) -> str:
    """A keyed hash of a normalised value: equal inputs match, nothing is revealed."""
    key = settings.INDEX_KEY.encode()
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; reads return the plaintext."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str:
        if value in (None, ""):
            return ""
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return ""
        return encrypt(str(value))

"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), as authenticator apps make them.

Secrets are 20 random bytes (160 bits, RFC 4226's recommendation), shown to the user in base32
and as an ``otpauth://`` URI. A code is accepted in the 30-second step it belongs to or one step
either side (clock drift between the phone and the server); the caller keeps the last accepted
step so that a code is never accepted twice.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    """A fresh secret in base32 without padding (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226: HMAC of the 8-byte counter, dynamically truncated to `digits` decimal digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_of(unix_seconds: float) -> int:
    return int(unix_seconds // STEP_SECONDS)


def code_for_step(secret: str, step: int) -> str:
    return hotp(_key(secret), step)


def code_at(secret: str, unix_seconds: float) -> str:
    return code_for_step(secret, step_of(unix_seconds))


def matching_step(
    secret: str, code: str, unix_seconds: float, *, after_step: int | None = None
) -> int | None:
    """The step whose code `code` is, within the allowed drift and later than `after_step`
    (the last step accepted for this secret); None when it matches none. Compared in constant
    time; anything but `DIGITS` digits never matches."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    key = _key(secret)
    now = step_of(unix_seconds)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads (usually from a QR code)."""
    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": 30}
    )
    return f"otpauth://totp/{label}?{query}"

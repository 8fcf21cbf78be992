"""Web Push to the installable patient portal: RFC 8030 delivery, RFC 8291 message encryption
(``aes128gcm``, RFC 8188) and RFC 8292 VAPID sender identification, with ``cryptography``.

Settings (``webpush``):
  ``vapid_private_key``  the application server's P-256 key (secret): PEM, or the 32-byte
                         private scalar in base64url (what :func:`generate_vapid_key` returns)
  ``vapid_subject``      ``mailto:`` or ``https:`` contact for the push service operator
  ``ttl``                seconds the push service keeps an undelivered message (default 86400)
  ``urgency``            ``very-low`` | ``low`` | ``normal`` (default) | ``high``
  ``allow_insecure``     accept ``http://`` and IP-literal endpoints (tests and local fakes only)
  ``timeout``            seconds, default 10

A message's ``to`` is the browser's subscription as JSON: ``{"endpoint": ..., "keys": {"p256dh":
..., "auth": ...}}``. The payload is JSON ``{"title", "body", "url", "tag", "lang"}`` for the
portal's service worker. The ``Topic`` header is derived from the dedupe key, so a repeated send
of the same occurrence replaces a copy still waiting at the push service. Push services offer
no lookup of a delivered message: ``reconcile`` answers ``UNKNOWN``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from careloop.channels.base import BaseAdapter, no_address
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    PermanentReason,
    SendResult,
    TransientError,
    require,
)
from careloop.channels.transport import flag, log_result, request

RECORD_SIZE = 4096
MAX_PLAINTEXT = RECORD_SIZE - 16 - 1  # one record: tag and padding delimiter must fit
JWT_LIFETIME = 12 * 3600
URGENCIES = ("very-low", "low", "normal", "high")

CONFIG_KEYS = ("vapid_private_key", "vapid_subject", "ttl", "urgency", "allow_insecure", "timeout")
SECRET_KEYS = ("vapid_private_key",)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _keys(
    ecdh_secret: bytes, auth_secret: bytes, ua_public: bytes, as_public: bytes, salt: bytes
) -> tuple[bytes, bytes]:
    """RFC 8291 section 3.4 and RFC 8188 section 2.2: the content key and the nonce."""
    prk_key = _hmac_sha256(auth_secret, ecdh_secret)
    ikm = _hmac_sha256(prk_key, b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    prk = _hmac_sha256(salt, ikm)
    cek = _hmac_sha256(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac_sha256(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    return cek, nonce


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes | None = None,
    as_private: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The ``aes128gcm`` body for one subscription: header (salt, rs, keyid) + one record.

    ``salt`` and ``as_private`` are fresh for every message; tests pass fixed ones to check the
    result against RFC 8291's worked example.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("payload too large for one record")
    salt = salt if salt is not None else os.urandom(16)
    as_private = as_private or ec.generate_private_key(ec.SECP256R1())
    as_public = public_bytes(as_private.public_key())
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_key)
    cek, nonce = _keys(ecdh_secret, auth_secret, ua_public, as_public, salt)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + record


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """What a browser does with an ``aes128gcm`` push body (used by the fake push service)."""
    if len(body) < 21:
        raise ValueError("body too short")
    salt = body[:16]
    rs, idlen = struct.unpack("!IB", body[16:21])
    as_public = body[21 : 21 + idlen]
    records = body[21 + idlen :]
    if rs < 18 or not records or len(records) > rs:
        raise ValueError("only single-record bodies are expected")
    ua_public = public_bytes(ua_private.public_key())
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    ecdh_secret = ua_private.exchange(ec.ECDH(), sender)
    cek, nonce = _keys(ecdh_secret, auth_secret, ua_public, as_public, salt)
    try:
        padded = AESGCM(cek).decrypt(nonce, records, None)
    except InvalidTag:
        raise ValueError("authentication tag does not match") from None
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x02"):
        raise ValueError("last record lacks its delimiter")
    return stripped[:-1]


def load_vapid_key(value: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM or a base64url private scalar."""
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise ValueError("not a P-256 key")
            return key
        return ec.derive_private_key(int.from_bytes(b64url_decode(text), "big"), ec.SECP256R1())
    except (ValueError, TypeError):
        raise PermanentError(
            "webpush: VAPID private key is not readable",
            code="bad_vapid_key",
            reason=PermanentReason.CONFIGURATION,
        ) from None


def generate_vapid_key() -> tuple[str, str]:
    """A new VAPID key pair: (private scalar, public point), both base64url.

    The public half is the portal's ``applicationServerKey``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(private), b64url(public_bytes(key.public_key()))


def vapid_public_key(config: Mapping[str, Any]) -> str:
    """The ``applicationServerKey`` the portal subscribes with, for these settings."""
    (private,) = require(config, "vapid_private_key")
    return b64url(public_bytes(load_vapid_key(private).public_key()))


def vapid_authorization(
    key: ec.EllipticCurvePrivateKey, *, audience: str, subject: str, now: float | None = None
) -> str:
    """``vapid t=<ES256 JWT>, k=<public key>`` (RFC 8292 section 3)."""
    issued = int(now if now is not None else time.time())
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    claims = {"aud": audience, "exp": issued + JWT_LIFETIME, "sub": subject}
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    public = b64url(public_bytes(key.public_key()))
    return f"vapid t={header}.{body}.{signature}, k={public}"


def verify_vapid(authorization: str) -> dict[str, Any]:
    """The JWT claims when the ES256 signature checks against ``k``; else ``ValueError``."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid authorization")
    parts = {}
    for item in params.split(","):
        name, _, value = item.strip().partition("=")
        parts[name] = value
    token, public = parts.get("t", ""), parts.get("k", "")
    pieces = token.split(".")
    if len(pieces) != 3 or not public:
        raise ValueError("malformed vapid token")
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public))
    raw = b64url_decode(pieces[2])
    if len(raw) != 64:
        raise ValueError("bad signature length")
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    try:
        key.verify(signature, f"{pieces[0]}.{pieces[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("vapid signature does not verify") from None
    header = json.loads(b64url_decode(pieces[0]))
    if header.get("alg") != "ES256":
        raise ValueError("vapid token is not ES256")
    claims: dict[str, Any] = json.loads(b64url_decode(pieces[1]))
    claims["_k"] = public
    return claims


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: bytes
    auth: bytes


def parse_subscription(text: str, *, allow_insecure: bool) -> Subscription:
    """The browser's PushSubscription JSON, checked before anything is sent to it."""
    bad = PermanentError(
        "webpush: subscription is not valid",
        code="bad_subscription",
        reason=PermanentReason.INVALID_ADDRESS,
    )
    try:
        data = json.loads(text)
        endpoint = str(data["endpoint"])
        p256dh = b64url_decode(str(data["keys"]["p256dh"]))
        auth = b64url_decode(str(data["keys"]["auth"]))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except (ValueError, KeyError, TypeError):
        raise bad from None
    if len(auth) != 16:
        raise bad
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if not host or parts.scheme not in ("https", "http"):
        raise bad
    if not allow_insecure:
        # The endpoint comes from a browser: only public https push services are reachable.
        if parts.scheme != "https" or host == "localhost" or _is_ip(host):
            raise bad
    return Subscription(endpoint=endpoint, p256dh=p256dh, auth=auth)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def topic_for(dedupe_key: str) -> str:
    """At most 32 characters of the URL-safe base64 alphabet (RFC 8030 section 5.4)."""
    return b64url(hashlib.sha256(dedupe_key.encode("utf-8")).digest())[:32]


class WebPushAdapter(BaseAdapter):
    kind = ChannelKind.PUSH
    provider = "webpush"
    batch_size = 1

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        private, subject = require(self.config, "vapid_private_key", "vapid_subject")
        key = load_vapid_key(private)
        sub = parse_subscription(message.to, allow_insecure=flag(self.config, "allow_insecure"))
        payload = json.dumps(
            {
                "title": message.subject,
                "body": message.body,
                "url": message.link,
                "tag": topic_for(message.dedupe_key),
                "lang": message.language,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        if len(payload) > MAX_PLAINTEXT:
            raise PermanentError(
                "webpush: message too long for a push", code="too_long", reason=_REJECTED
            )
        parts = urlsplit(sub.endpoint)
        urgency = self.setting("urgency", "normal")
        headers = {
            "Authorization": vapid_authorization(
                key, audience=f"{parts.scheme}://{parts.netloc}", subject=subject
            ),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(max(self.number("ttl", 86400), 0)),
            "Urgency": urgency if urgency in URGENCIES else "normal",
            "Topic": topic_for(message.dedupe_key),
        }
        body = encrypt(payload, sub.p256dh, sub.auth)
        try:
            resp = request(
                self.provider,
                "POST",
                sub.endpoint,
                timeout=self.timeout,
                headers=headers,
                body=body,
            )
            if resp.status not in (200, 201, 202):
                raise classify(resp.status)
        except ChannelError as exc:
            log_result(self.provider, "push", message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, "push", message.dedupe_key, "accepted")
        location = resp.headers.get("location", "")
        return SendResult(provider_message_id=location or f"webpush-{uuid.uuid4().hex}")


_REJECTED = PermanentReason.REJECTED


def classify(status: int) -> ChannelError:
    detail = f"webpush: push service answered HTTP {status}"
    code = f"http_{status}"
    if status in (404, 410):
        return PermanentError(detail, code=code, reason=PermanentReason.UNSUBSCRIBED)
    if status == 429 or status >= 500:
        return TransientError(detail, code=code)
    if status in (401, 403):
        return PermanentError(detail, code=code, reason=PermanentReason.CONFIGURATION)
    return PermanentError(detail, code=code, reason=_REJECTED)

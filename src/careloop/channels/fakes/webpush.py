"""A fake push service: hands out subscriptions, checks VAPID, decrypts what it receives."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Sent
from careloop.channels.webpush import (
    b64url,
    decrypt,
    generate_vapid_key,
    public_bytes,
    verify_vapid,
)


@dataclass
class _Browser:
    private: ec.EllipticCurvePrivateKey
    auth: bytes
    active: bool = True


class FakePushService(FakeServer):
    """``POST /push/{id}`` as a browser vendor's push service answers it.

    Every accepted message is decrypted with the subscription's private key (what the browser
    would do) and recorded with the plaintext, so tests see exactly what the patient's device
    would show. The VAPID JWT is verified: ES256 signature against ``k``, audience equal to this
    service's origin, expiry in the future and at most 24 hours away, a ``sub`` contact.
    """

    name = "webpush"

    def __init__(self, *, expected_vapid_key: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vapid_private, self.vapid_public = generate_vapid_key()
        self.expected_vapid_key = expected_vapid_key or self.vapid_public
        self._browsers: dict[str, _Browser] = {}
        self._state = threading.Lock()

    def config(self) -> dict[str, Any]:
        return {
            "vapid_private_key": self.vapid_private,
            "vapid_subject": "mailto:care@example.org",
            "allow_insecure": True,
            "timeout": 5,
        }

    def subscribe(self) -> dict[str, Any]:
        """A new browser subscription (what ``pushManager.subscribe`` hands the portal)."""
        private = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        sub_id = uuid.uuid4().hex
        with self._state:
            self._browsers[sub_id] = _Browser(private, auth)
        return {
            "endpoint": f"{self.url}/push/{sub_id}",
            "keys": {"p256dh": b64url(public_bytes(private.public_key())), "auth": b64url(auth)},
        }

    def unsubscribe(self, subscription: dict[str, Any]) -> None:
        sub_id = str(subscription["endpoint"]).rsplit("/", 1)[-1]
        with self._state:
            if sub_id in self._browsers:
                self._browsers[sub_id].active = False

    @staticmethod
    def _error(status: int, errno: int, message: str) -> FakeResponse:
        return FakeResponse.of_json(
            {"code": status, "errno": errno, "error": message, "message": message}, status
        )

    def handle(self, req: FakeRequest) -> FakeResponse:
        if req.method != "POST" or not req.path.startswith("/push/"):
            return self._error(404, 102, "Not Found")
        sub_id = req.path.rsplit("/", 1)[-1]
        with self._state:
            browser = self._browsers.get(sub_id)
        if browser is None or not browser.active:
            return self._error(410, 106, "Gone")
        try:
            claims = verify_vapid(req.headers.get("authorization", ""))
        except ValueError:
            return self._error(401, 109, "Unauthorized")
        now = time.time()
        exp = float(claims.get("exp") or 0)
        if (
            claims.get("aud") != self.url
            or not (now < exp <= now + 24 * 3600)
            or not str(claims.get("sub", "")).startswith(("mailto:", "https:"))
            or claims.get("_k") != self.expected_vapid_key
        ):
            return self._error(403, 109, "Forbidden")
        if "ttl" not in req.headers:
            return self._error(400, 111, "Missing TTL header")
        if req.headers.get("content-encoding") != "aes128gcm":
            return self._error(415, 110, "Unsupported Content-Encoding")
        failure = self.take_failure()
        if failure is not None:
            return self._error(failure.status, 201, "Scripted failure")
        try:
            plaintext = decrypt(req.body, browser.private, browser.auth)
        except ValueError:
            return self._error(400, 110, "Decryption failed")
        message_id = uuid.uuid4().hex
        self.record(
            Sent(
                provider="webpush",
                to=sub_id,
                ref=req.headers.get("topic", ""),
                id=message_id,
                text=plaintext.decode("utf-8"),
                at=self.now(),
                extra={
                    "ttl": req.headers.get("ttl", ""),
                    "urgency": req.headers.get("urgency", ""),
                },
            )
        )
        return FakeResponse(201, b"", "text/plain", {"Location": f"{self.url}/m/{message_id}"})

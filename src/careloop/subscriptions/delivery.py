"""Sending queued deliveries: claim with a lease, re-check, POST, record, back off.

- A delivery is claimed by one worker with a single conditional UPDATE (free, or its lease
  ended), so two workers never send the same delivery at the same time. The lease is renewed
  before each send; a worker that crashed mid-send leaves the row ``sending`` with a lease that
  ends, and the next worker sends it again (at least once; the ``X-CareLoop-Delivery`` header
  is the same on every attempt, so receivers can drop repeats).
- At send time the subscription must still be active, its creator must still be able to read
  the resource, and the endpoint is checked again (careloop.subscriptions.guard); the request
  goes to the address that was checked, redirects are not followed.
- 2xx is delivered. Anything else is retried after 30 s, 2 min, 10 min, 1 h, 4 h, 12 h and 24 h
  (each ±20 % jitter); after the last one the delivery fails and the subscription turns to
  ``error`` until an admin retries it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import socket
import ssl
import threading
import time as _time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils.translation import gettext as _

from careloop.audit import services as audit
from careloop.fhir.registry import mappers
from careloop.kit.clock import epoch_seconds, span, utc_now
from careloop.subscriptions import guard, services, signals
from careloop.subscriptions import models as sm

log = logging.getLogger("careloop.subscriptions")

S = sm.Subscription.Status
D = sm.Delivery.Status
LEASE = timedelta(seconds=float(os.environ.get("CARELOOP_SUBSCRIPTION_LEASE_SECONDS") or 120))
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=12),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
TIMEOUT = 10.0
DEADLINE = 20.0  # the whole exchange, however slowly the receiver answers
USER_AGENT = "CareLoop-Subscriptions/1"


def new_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt, with ±20 % jitter, at most 24 h."""
    base = BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
    return min(base * random.uniform(0.8, 1.2), timedelta(hours=24))  # noqa: S311 - jitter


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-CareLoop-Signature`` value: HMAC-SHA256 of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# --- claiming ------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return sm.Delivery.objects.filter(
        status__in=(D.PENDING, D.SENDING),
        next_attempt_at__lte=now,
        subscription__status=S.ACTIVE,
    ).filter(Q(claim_expires__isnull=True) | Q(claim_expires__lt=now))


def claim_one(worker: str, now: datetime) -> sm.Delivery | None:
    """Lease the next due delivery to this worker (None when nothing is due)."""
    for pk in _due(now).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:5]:
        won = (
            _due(now)
            .filter(pk=pk)
            .update(status=D.SENDING, claimed_by=worker, claim_expires=now + span(LEASE))
        )
        if won:
            return sm.Delivery.objects.select_related(
                "subscription", "subscription__created_by", "subscription__organisation"
            ).get(pk=pk)
    return None


def _renew(delivery: sm.Delivery, worker: str) -> bool:
    now = utc_now()
    return bool(
        sm.Delivery.objects.filter(pk=delivery.pk, claimed_by=worker, status=D.SENDING).update(
            claim_expires=now + span(LEASE)
        )
    )


# --- sending -------------------------------------------------------------------------------


class _Connection(http.client.HTTPConnection):
    """HTTP to the checked address, with the URL's host in the Host header."""

    def __init__(self, target: guard.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address; the certificate is verified for the URL's host."""

    def __init__(self, target: guard.Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _abort(conn: http.client.HTTPConnection) -> None:
    """Cut a connection that is taking too long (a receiver dripping its answer)."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(target: guard.Target, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST and answer (status, a short text of the response); OSError on network failure.
    Each network wait is at most TIMEOUT and the whole exchange at most DEADLINE."""
    cls = _TlsConnection if target.scheme == "https" else _Connection
    conn = cls(target, TIMEOUT)
    watchdog = threading.Timer(DEADLINE, _abort, (conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(500).decode("utf-8", "replace")
        return response.status, text
    finally:
        watchdog.cancel()
        conn.close()


def _body(sub: sm.Subscription, delivery: sm.Delivery) -> bytes | None:
    """The payload, or None when the resource is gone or out of the creator's scope now."""
    mapper = mappers().get(delivery.resource_type)
    if mapper is None:
        return None
    pk = mapper.parse_id(delivery.resource_id)
    actor = services.owner_actor(sub)
    user = sub.created_by
    if pk is None or not user.is_active or user.organisation_id != sub.organisation_id:
        return None
    if not all(actor.can(a) for a in mapper.read_actions):
        return None
    obj = mapper.visible(actor).filter(pk=pk).first()
    if obj is None:
        return None
    if sub.payload != sm.Subscription.Payload.FULL:
        return b""
    return json.dumps(mapper.read(obj), ensure_ascii=False).encode()


def _headers(sub: sm.Subscription, delivery: sm.Delivery, body: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in services.header_list(sub):
        name, _sep, value = line.partition(":")
        headers[name.strip()] = value.strip()
    timestamp = str(epoch_seconds(utc_now()))
    headers.update(
        {
            "Content-Type": "application/fhir+json",
            "User-Agent": USER_AGENT,
            "X-CareLoop-Timestamp": timestamp,
            "X-CareLoop-Signature": sign(sub.secret, timestamp, body),
            "X-CareLoop-Delivery": str(delivery.pk),
            "X-CareLoop-Subscription": str(sub.pk),
        }
    )
    return headers


def _finish(delivery: sm.Delivery, worker: str, **values: Any) -> bool:
    values.update(claimed_by="", claim_expires=None)
    return bool(sm.Delivery.objects.filter(pk=delivery.pk, claimed_by=worker).update(**values))


def _failed(delivery: sm.Delivery, worker: str, error: str, code: int | None) -> str:
    sub = delivery.subscription
    now = utc_now()
    attempts = delivery.attempts + 1
    error = error[:500]
    with transaction.atomic():
        if attempts >= MAX_ATTEMPTS:
            done = _finish(
                delivery, worker, status=D.FAILED, attempts=attempts, last_error=error,
                last_status_code=code, next_attempt_at=None,
            )  # fmt: skip
            if done:
                message = _("Delivery failed %(n)s times: %(error)s") % {
                    "n": attempts,
                    "error": error,
                }
                sm.Subscription.objects.filter(pk=sub.pk, status=S.ACTIVE).update(
                    status=S.ERROR, error=message[:500], failures=F("failures") + 1,
                    version=F("version") + 1, updated_at=now,
                )  # fmt: skip
            return "dead"
        _finish(
            delivery, worker, status=D.PENDING, attempts=attempts, last_error=error,
            last_status_code=code, next_attempt_at=now + backoff(attempts),
        )  # fmt: skip
        sm.Subscription.objects.filter(pk=sub.pk).update(failures=F("failures") + 1, error=error)
    return "retrying"


def send(delivery: sm.Delivery, worker: str) -> str:
    """Send one claimed delivery; the outcome: delivered, retrying, dead, cancelled, lost."""
    sub = delivery.subscription
    now = utc_now()
    if sub.end is not None and sub.end <= now:
        with transaction.atomic():
            sm.Subscription.objects.filter(pk=sub.pk).update(status=S.OFF, updated_at=now)
            _finish(delivery, worker, status=D.CANCELLED, last_error="subscription ended")
            sub.deliveries.filter(status=D.PENDING).update(
                status=D.CANCELLED, last_error="subscription ended"
            )
        return "cancelled"
    body = _body(sub, delivery)
    if body is None:
        _finish(
            delivery, worker, status=D.CANCELLED,
            last_error="the resource is gone or no longer readable by the subscription's owner",
        )  # fmt: skip
        return "cancelled"
    try:
        target = guard.check(sub.endpoint, services.allowed_hosts(sub.organisation_id))
    except guard.Refused as exc:
        return _failed(delivery, worker, str(exc), None)
    if not _renew(delivery, worker):
        return "lost"
    try:
        status, text = post(target, body, _headers(sub, delivery, body))
    except (OSError, http.client.HTTPException) as exc:
        return _failed(delivery, worker, f"{type(exc).__name__}: {exc}", None)
    if 200 <= status < 300:
        with transaction.atomic():
            _finish(
                delivery, worker, status=D.DELIVERED, attempts=delivery.attempts + 1,
                delivered_at=utc_now(), last_status_code=status, last_error="",
            )  # fmt: skip
            if sub.failures or sub.error:
                sm.Subscription.objects.filter(pk=sub.pk).update(failures=0, error="")
        return "delivered"
    return _failed(delivery, worker, f"HTTP {status}: {text[:200]}", status)


def run_once(
    worker: str, *, limit: int = 50, budget: float = 5.0, now: datetime | None = None
) -> dict[str, int]:
    """Send due deliveries one at a time until none is due, ``limit`` were sent or ``budget``
    seconds passed. Returns the count of each outcome."""
    started = _time.monotonic()
    outcomes: dict[str, int] = {}
    for _i in range(limit):
        delivery = claim_one(worker, now or utc_now())
        if delivery is None:
            break
        try:
            outcome = send(delivery, worker)
        except Exception as exc:
            log.exception("sending delivery %s failed", delivery.pk)
            outcome = _failed(delivery, worker, f"internal error: {type(exc).__name__}", None)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if _time.monotonic() - started > budget:
            break
    if outcomes.get("delivered"):
        audit.append(
            action="subscription.deliver",
            actor_name="worker",
            object_type="subscriptions.delivery",
            detail=outcomes,
        )
    return outcomes


_last_scan = 0.0
SCAN_EVERY = 30.0


def periodic(worker: str) -> dict[str, int]:
    """The worker's subscription job: the catch-up scan every half minute, then sending."""
    global _last_scan
    if _time.monotonic() - _last_scan > SCAN_EVERY:
        _last_scan = _time.monotonic()
        try:
            signals.scan()
        except Exception:
            log.exception("the subscription catch-up scan failed; will try again")
    return run_once(worker)

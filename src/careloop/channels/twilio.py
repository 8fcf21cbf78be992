"""Twilio Programmable Messaging (REST API 2010-04-01).

Settings (``twilio_sms``):
  ``endpoint``               default ``https://api.twilio.com``
  ``account_sid``            account SID (``AC...``)
  ``auth_token``             auth token (secret); also keys the webhook signatures
  ``from_number``            sending number in E.164, or
  ``messaging_service_sid``  a Messaging Service (``MG...``) instead of a number
  ``status_callback``        URL Twilio posts delivery status to (optional)
  ``callback_url``           the exact public URL configured at Twilio for status and inbound
                             webhooks, query string included: the signature covers it
                             (defaults to ``status_callback``)
  ``timeout``                seconds, default 10

Webhooks are checked with ``X-Twilio-Signature``: Base64 HMAC-SHA1 of the URL followed by every
POST parameter name and value sorted by name. Twilio has no caller-reference field, so
``reconcile`` lists recent messages to the number and looks for one whose body holds the
message's portal link, which is unique per occurrence.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from careloop.channels.base import BaseAdapter, contains_link, e164, no_address, with_link
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    InboundEvent,
    InvalidCallback,
    Message,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
    TransientError,
    require,
)
from careloop.channels.signing import same, twilio_signature
from careloop.channels.transport import MAX_RESPONSE_BYTES, log_result, request
from careloop.kit.clock import utc_now

ENDPOINT = "https://api.twilio.com"
RECONCILE_PAGES = 5
RECONCILE_DAYS = 2

CONFIG_KEYS = (
    "endpoint",
    "account_sid",
    "auth_token",
    "from_number",
    "messaging_service_sid",
    "status_callback",
    "callback_url",
    "timeout",
)
SECRET_KEYS = ("auth_token",)

_C = PermanentReason
_PERMANENT: dict[int, PermanentReason] = {
    21211: _C.INVALID_ADDRESS,  # invalid 'To' number
    21614: _C.INVALID_ADDRESS,  # 'To' is not a mobile number
    21612: _C.INVALID_ADDRESS,  # cannot route to this number
    21408: _C.INVALID_ADDRESS,  # region not enabled
    21610: _C.UNSUBSCRIBED,  # recipient replied STOP
    20003: _C.CONFIGURATION,  # authentication failed
    20404: _C.CONFIGURATION,  # account or resource not found
    21606: _C.CONFIGURATION,  # 'From' cannot send SMS
    21659: _C.CONFIGURATION,  # 'From' is not a Twilio number
    21608: _C.CONFIGURATION,  # trial account, unverified recipient
    21602: _C.REJECTED,  # body required
    21617: _C.REJECTED,  # body too long
}
_TRANSIENT = {20429, 20500, 20503, 30001}


def classify(code: int, status: int, *, provider: str) -> ChannelError:
    detail = f"{provider}: message refused ({code or f'HTTP {status}'})"
    text = str(code or f"http_{status}")
    if code in _TRANSIENT or status == 429 or status >= 500:
        return TransientError(detail, code=text)
    if code in _PERMANENT:
        return PermanentError(detail, code=text, reason=_PERMANENT[code])
    if status in (401, 403):
        return PermanentError(detail, code=text, reason=PermanentReason.CONFIGURATION)
    return PermanentError(detail, code=text, reason=PermanentReason.REJECTED)


class TwilioSmsAdapter(BaseAdapter):
    kind = ChannelKind.SMS
    provider = "twilio_sms"
    batch_size = 1

    def _auth(self) -> tuple[str, dict[str, str]]:
        sid, token = require(self.config, "account_sid", "auth_token")
        basic = base64.b64encode(f"{sid}:{token}".encode()).decode("ascii")
        return sid, {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    def _messages_url(self, sid: str) -> str:
        base = self.setting("endpoint", ENDPOINT).rstrip("/")
        return f"{base}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        sid, headers = self._auth()
        form = {"To": e164(message.to, self.provider), "Body": with_link(message)}
        if self.setting("messaging_service_sid"):
            form["MessagingServiceSid"] = self.setting("messaging_service_sid")
        else:
            (form["From"],) = require(self.config, "from_number")
        if self.setting("status_callback"):
            form["StatusCallback"] = self.setting("status_callback")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            resp = request(
                self.provider,
                "POST",
                self._messages_url(sid),
                timeout=self.timeout,
                headers=headers,
                body=urlencode(form).encode("utf-8"),
            )
            if resp.status >= 300:
                raise self._error(resp.status, resp.body)
            data = resp.json(self.provider)
        except ChannelError as exc:
            log_result(self.provider, "Messages.create", message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, "Messages.create", message.dedupe_key, "accepted")
        return SendResult(provider_message_id=str(data.get("sid") or ""))

    def _error(self, status: int, body: bytes) -> ChannelError:
        code = 0
        try:
            code = int(json.loads(body.decode("utf-8")).get("code") or 0)
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
            code = 0
        return classify(code, status, provider=self.provider)

    def reconcile(self, message: Message) -> Reconciled:
        """Recent messages to the number, newest first; a body holding the link is a match.

        The list is filtered by recipient only and cut off by creation date: a message still
        queued has no send date, so a ``DateSent`` filter would miss exactly the in-doubt case.
        """
        sid, headers = self._auth()
        if not message.link:
            return Reconciled.UNKNOWN
        cutoff = utc_now() - timedelta(days=RECONCILE_DAYS)
        base = self.setting("endpoint", ENDPOINT).rstrip("/")
        url: str | None = (
            self._messages_url(sid)
            + "?"
            + urlencode({"To": e164(message.to, self.provider), "PageSize": "50"})
        )
        pages = 0
        while url and pages < RECONCILE_PAGES:
            pages += 1
            resp = request(self.provider, "GET", url, timeout=self.timeout, headers=headers)
            if resp.status >= 300:
                raise self._error(resp.status, resp.body)
            data = resp.json(self.provider)
            rows = data.get("messages") or []
            for row in rows:
                if contains_link(str(row.get("body") or ""), message.link):
                    return Reconciled.ACCEPTED
            oldest = _when(rows[-1].get("date_created")) if rows else None
            if oldest is not None and oldest < cutoff:
                break
            next_uri = data.get("next_page_uri")
            url = f"{base}{next_uri}" if next_uri else None
        return Reconciled.NOT_FOUND


def _when(value: Any) -> Any:
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def parse_callback(
    config: Mapping[str, Any],
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
    *,
    url: str = "",
) -> list[InboundEvent]:
    """Status callbacks and inbound messages, after checking ``X-Twilio-Signature``."""
    provider = TwilioSmsAdapter.provider
    token = str(config.get("auth_token") or "")
    signed_url = url or str(config.get("callback_url") or config.get("status_callback") or "")
    if not token or not signed_url:
        raise InvalidCallback(f"{provider}: webhook URL or auth token is not configured")
    if method.upper() != "POST":
        raise InvalidCallback(f"{provider}: webhooks are POSTed")
    if len(body) > MAX_RESPONSE_BYTES:
        raise InvalidCallback(f"{provider}: webhook body too large")
    lowered = {k.lower(): v for k, v in headers.items()}
    given = str(lowered.get("x-twilio-signature") or "")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidCallback(f"{provider}: webhook body is not form data") from None
    if not given or not same(given, twilio_signature(token, signed_url, pairs)):
        raise InvalidCallback(f"{provider}: webhook signature does not match")
    params = dict(pairs)
    message_sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not message_sid:
        raise InvalidCallback(f"{provider}: webhook names no message")
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if status == "received":
        return [
            InboundEvent(
                kind="reply",
                provider_event_id=f"{message_sid}:received",
                provider_message_id=message_sid,
                sender=params.get("From", ""),
                text=params.get("Body", ""),
            )
        ]
    if status in ("delivered", "read"):
        kind = "delivered"
    elif status in ("undelivered", "failed"):
        kind = "failed"
    else:
        return []  # queued / sent / accepted: nothing final yet
    return [
        InboundEvent(
            kind=kind,
            provider_event_id=f"{message_sid}:{status}",
            provider_message_id=message_sid,
            recipient=params.get("To", ""),
            detail=params.get("ErrorCode", ""),
        )
    ]


CALLBACK_ACK = ("text/xml", b'<?xml version="1.0" encoding="UTF-8"?><Response/>')

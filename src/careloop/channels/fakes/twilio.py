"""A fake Twilio Messages API: checks basic auth, creates and lists messages, signs webhooks."""

from __future__ import annotations

import base64
import secrets
import uuid
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Sent
from careloop.channels.signing import same, twilio_signature

_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    20429: "Too Many Requests",
}


class FakeTwilio(FakeServer):
    """``POST``/``GET /2010-04-01/Accounts/{sid}/Messages.json``.

    ``fail_numbers`` keys are E.164 numbers, values Twilio error codes as text (``"21211"``).
    """

    name = "twilio_sms"

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token or secrets.token_hex(16)
        self.callback_url = "https://care.example.org/channels/twilio/callback?org=1"

    def config(self) -> dict[str, Any]:
        return {
            "endpoint": self.url,
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": "+15005550006",
            "status_callback": self.callback_url,
            "callback_url": self.callback_url,
            "timeout": 5,
        }

    @staticmethod
    def _error(code: int, status: int) -> FakeResponse:
        return FakeResponse.of_json(
            {
                "code": code,
                "message": _MESSAGES.get(code, "Error"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status,
        )

    def _authorised(self, req: FakeRequest) -> bool:
        header = req.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return same(user, self.account_sid) and same(password, self.auth_token)

    def handle(self, req: FakeRequest) -> FakeResponse:
        if not self._authorised(req):
            return self._error(20003, 401)
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if req.path != prefix:
            return self._error(20404, 404)
        if req.method == "GET":
            return self._list(req.query)
        failure = self.take_failure()
        if failure is not None:
            if failure.code:
                return self._error(int(failure.code), 429 if failure.code == "20429" else 400)
            return FakeResponse(failure.status, b"", "text/plain")
        form = req.form()
        to = form.get("To", "")
        if not to:
            return self._error(21604, 400)
        if not form.get("Body"):
            return self._error(21602, 400)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(21603, 400)
        code = self.failure_for(to)
        if code:
            return self._error(int(code), 400)
        if not (to.startswith("+") and to[1:].isdigit()):
            return self._error(21211, 400)
        sid = "SM" + uuid.uuid4().hex
        now = self.now()
        sent = Sent(
            provider="twilio_sms",
            to=to,
            ref="",
            id=sid,
            text=form["Body"],
            at=now,
            extra={
                "from": form.get("From") or form.get("MessagingServiceSid", ""),
                "status_callback": form.get("StatusCallback", ""),
            },
        )
        self.record(sent)
        return FakeResponse.of_json(self._resource(sent), 201)

    def _resource(self, sent: Sent) -> dict[str, Any]:
        stamp = format_datetime(sent.at)
        return {
            "sid": sent.id,
            "account_sid": self.account_sid,
            "to": sent.to,
            "from": sent.extra.get("from", ""),
            "body": sent.text,
            "status": "queued",
            "date_created": stamp,
            "date_updated": stamp,
            "date_sent": None,
            "direction": "outbound-api",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sent.id}.json",
        }

    def _list(self, query: dict[str, str]) -> FakeResponse:
        to = query.get("To", "")
        size = min(int(query.get("PageSize") or 50), 1000)
        page = int(query.get("Page") or 0)
        rows = [s for s in reversed(list(self.sent)) if not to or s.to == to]
        chunk = rows[page * size : (page + 1) * size]
        next_uri = None
        if (page + 1) * size < len(rows):
            params = {"To": to, "PageSize": str(size), "Page": str(page + 1)}
            next_uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?{urlencode(params)}"
        return FakeResponse.of_json(
            {
                "messages": [self._resource(s) for s in chunk],
                "page": page,
                "page_size": size,
                "next_page_uri": next_uri,
            }
        )

    # --- webhooks the real service would send -----------------------------------------------

    def webhook(self, params: dict[str, str], url: str = "") -> tuple[dict[str, str], bytes]:
        """Headers and form body of a webhook, signed as Twilio signs it."""
        target = url or self.callback_url
        signature = twilio_signature(self.auth_token, target, params.items())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return headers, urlencode(params).encode("utf-8")

    def status_callback(
        self, sent: Sent, status: str = "delivered"
    ) -> tuple[dict[str, str], bytes]:
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": sent.id,
            "SmsSid": sent.id,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": sent.to,
            "From": str(sent.extra.get("from", "")),
            "ApiVersion": "2010-04-01",
        }
        if status in ("failed", "undelivered"):
            params["ErrorCode"] = "30003"
        return self.webhook(params)

    def inbound(self, sender: str, body: str) -> tuple[dict[str, str], bytes]:
        sid = "SM" + uuid.uuid4().hex
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        return self.webhook(params)

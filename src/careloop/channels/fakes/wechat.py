"""A fake WeChat Official Account API: access tokens, template and subscription messages."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Sent
from careloop.channels.signing import same, wechat_signature

_MESSAGES = {
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    -1: "system error",
}


class FakeWeChat(FakeServer):
    """Access tokens, ``message/template/send`` and ``message/subscribe/bizsend``.

    ``fail_numbers`` keys are openids, values errcodes as text (``"43004"``).
    ``token_requests`` counts token fetches; ``expire_tokens`` makes every issued token stale.
    """

    name = "wechat"

    def __init__(
        self,
        *,
        app_id: str = "wxfake0000000001",
        app_secret: str = "",
        callback_token: str = "",
        token_lifetime: int = 7200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app_id = app_id
        self.app_secret = app_secret or secrets.token_hex(16)
        self.callback_token = callback_token or secrets.token_urlsafe(12)
        self.token_lifetime = token_lifetime
        self.token_requests = 0
        self._tokens: dict[str, float] = {}
        self._msg_ids: dict[tuple[str, str], int] = {}
        self._next_id = 200000000
        self._state = threading.Lock()

    def config(self, mode: str = "template") -> dict[str, Any]:
        return {
            "endpoint": self.url,
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "mode": mode,
            "template_id": "TPL-fake-reminder",
            "callback_token": self.callback_token,
            "timeout": 5,
        }

    def expire_tokens(self) -> None:
        with self._state:
            for token in self._tokens:
                self._tokens[token] = 0.0

    @staticmethod
    def _answer(errcode: int, **extra: Any) -> FakeResponse:
        body = {"errcode": errcode, "errmsg": "ok" if errcode == 0 else _MESSAGES.get(errcode, "")}
        body.update(extra)
        return FakeResponse.of_json(body)

    def handle(self, req: FakeRequest) -> FakeResponse:
        if req.path == "/cgi-bin/token" and req.method == "GET":
            return self._token(req.query)
        paths = ("/cgi-bin/message/template/send", "/cgi-bin/message/subscribe/bizsend")
        if req.path not in paths or req.method != "POST":
            return FakeResponse(404, b"not found", "text/plain")
        with self._state:
            expiry = self._tokens.get(req.query.get("access_token", ""))
        if expiry is None:
            return self._answer(40001)
        if expiry < time.monotonic():
            return self._answer(42001)
        failure = self.take_failure()
        if failure is not None:
            if failure.code:
                return self._answer(int(failure.code))
            return FakeResponse(failure.status, b"", "text/plain")
        try:
            payload = req.json()
        except ValueError:
            return self._answer(47001)
        touser = str(payload.get("touser") or "")
        if not payload.get("template_id"):
            return self._answer(40037)
        if not touser:
            return self._answer(40003)
        code = self.failure_for(touser)
        if code:
            return self._answer(int(code))
        template = req.path.endswith("template/send")
        ref = str(payload.get("client_msg_id") or "") if template else str(payload.get("page", ""))
        with self._state:
            if template and ref and (touser, ref) in self._msg_ids:
                # WeChat drops a repeat of the same client_msg_id for the same user.
                return self._answer(0, msgid=self._msg_ids[(touser, ref)])
            self._next_id += 1
            msg_id = self._next_id
            if template and ref:
                self._msg_ids[(touser, ref)] = msg_id
        data = payload.get("data") or {}
        self.record(
            Sent(
                provider="wechat",
                to=touser,
                ref=ref,
                id=str(msg_id),
                text=" ".join(f"{k}={v.get('value', '')}" for k, v in data.items()),
                at=self.now(),
                extra={
                    "mode": "template" if template else "subscribe",
                    "template": payload.get("template_id"),
                    "url": payload.get("url") or payload.get("page") or "",
                },
            )
        )
        return self._answer(0, msgid=msg_id)

    def _token(self, query: dict[str, str]) -> FakeResponse:
        with self._state:
            self.token_requests += 1
        if query.get("grant_type") != "client_credential":
            return self._answer(40002)
        if query.get("appid") != self.app_id:
            return self._answer(40013)
        if not same(query.get("secret", ""), self.app_secret):
            return self._answer(40125)
        token = secrets.token_urlsafe(24)
        with self._state:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return FakeResponse.of_json({"access_token": token, "expires_in": self.token_lifetime})

    # --- pushes the real service would send -------------------------------------------------

    def signed_query(self, **extra: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(5)
        query = {
            "signature": wechat_signature(self.callback_token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        query.update(extra)
        return query

    def template_finished(self, sent: Sent, status: str = "success") -> bytes:
        return (
            "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName>"
            f"<FromUserName><![CDATA[{sent.to}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
            f"<MsgID>{sent.id}</MsgID>"
            f"<Status><![CDATA[{status}]]></Status></xml>"
        ).encode()

    def text_message(self, openid: str, content: str) -> bytes:
        return (
            "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content>"
            f"<MsgId>{secrets.randbelow(10**16)}</MsgId></xml>"
        ).encode()

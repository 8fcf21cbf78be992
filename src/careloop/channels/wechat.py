"""WeChat Official Account: template messages and subscription messages to a follower's openid.

Settings (``wechat``):
  ``endpoint``        default ``https://api.weixin.qq.com``
  ``app_id``          the account's AppID
  ``app_secret``      its AppSecret (secret)
  ``mode``            ``template`` (``/cgi-bin/message/template/send``, default) or ``subscribe``
                      (``/cgi-bin/message/subscribe/bizsend``)
  ``template_id``     default template when a message names none
  ``callback_token``  the Token set in the account's server configuration (secret); callbacks
                      are signed with SHA1 of the sorted token, timestamp and nonce
  ``timeout``         seconds, default 10

A message's ``to`` is the patient's openid; ``params`` map template field names (``thing1``,
``time2``...) to values; ``link`` is the page opened from the message. The access token comes
from ``/cgi-bin/token`` and is kept in this process's memory until shortly before it expires; a
call answered "token invalid or expired" (40001, 42001, 40014) refreshes it once and retries.
Template sends carry the dedupe key as ``client_msg_id``, which WeChat uses to drop a repeat.
Callbacks are accepted in plain-text mode only; XML with a DOCTYPE is refused before parsing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - DOCTYPE is refused before parsing
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from careloop.channels.base import BaseAdapter, no_address
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    InboundEvent,
    InvalidCallback,
    Message,
    PermanentError,
    PermanentReason,
    SendResult,
    TransientError,
    require,
)
from careloop.channels.signing import same, wechat_signature
from careloop.channels.transport import log_result, reference, request

ENDPOINT = "https://api.weixin.qq.com"
CLIENT_MSG_ID_LIMIT = 64
MAX_CALLBACK_BYTES = 64 * 1024
TOKEN_MARGIN = 300  # refresh five minutes before WeChat says the token expires

CONFIG_KEYS = (
    "endpoint",
    "app_id",
    "app_secret",
    "mode",
    "template_id",
    "callback_token",
    "timeout",
)
SECRET_KEYS = ("app_secret", "callback_token")

_TOKEN_ERRORS = {40001, 42001, 40014}
_C = PermanentReason
_PERMANENT: dict[int, PermanentReason] = {
    43004: _C.UNSUBSCRIBED,  # recipient does not follow the account
    43101: _C.UNSUBSCRIBED,  # recipient refused the subscription message
    40003: _C.INVALID_ADDRESS,  # invalid openid
    45009: _C.QUOTA,  # API daily quota reached
    45047: _C.QUOTA,  # too many messages to this user
    40013: _C.CONFIGURATION,  # invalid AppID
    40125: _C.CONFIGURATION,  # invalid AppSecret
    40164: _C.CONFIGURATION,  # caller IP not in the allow-list
    40037: _C.CONFIGURATION,  # invalid template_id
    41030: _C.CONFIGURATION,  # invalid page
    47003: _C.CONFIGURATION,  # template data does not match the template
    48001: _C.CONFIGURATION,  # API not authorised for this account
}
_TRANSIENT = {-1, 45011}  # system busy; API minute-rate limit

_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def classify(errcode: int, *, provider: str, action: str) -> ChannelError:
    detail = f"{provider}: {action} refused (errcode {errcode})"
    if errcode in _TRANSIENT:
        return TransientError(detail, code=str(errcode))
    reason = _PERMANENT.get(errcode, PermanentReason.REJECTED)
    return PermanentError(detail, code=str(errcode), reason=reason)


def forget_tokens() -> None:
    """Drop every cached access token (tests; an operator rotating the AppSecret)."""
    with _tokens_lock:
        _tokens.clear()


class WeChatAdapter(BaseAdapter):
    kind = ChannelKind.WECHAT
    provider = "wechat"
    batch_size = 1

    @property
    def _base(self) -> str:
        return self.setting("endpoint", ENDPOINT).rstrip("/")

    def _token(self, *, fresh: bool = False) -> str:
        app_id, secret = require(self.config, "app_id", "app_secret")
        key = (self._base, app_id)
        with _tokens_lock:
            cached = _tokens.get(key)
            if cached and not fresh and cached[1] > time.monotonic():
                return cached[0]
        query = urlencode({"grant_type": "client_credential", "appid": app_id, "secret": secret})
        resp = request(
            self.provider, "GET", f"{self._base}/cgi-bin/token?{query}", timeout=self.timeout
        )
        if resp.status >= 500:
            raise TransientError(
                f"{self.provider}: token request failed (HTTP {resp.status})", code="http_5xx"
            )
        data = resp.json(self.provider)
        token = str(data.get("access_token") or "") if isinstance(data, dict) else ""
        if not token:
            errcode = int(data.get("errcode") or 0) if isinstance(data, dict) else 0
            raise classify(errcode, provider=self.provider, action="token")
        lifetime = int(data.get("expires_in") or 7200)
        expires = time.monotonic() + max(lifetime - TOKEN_MARGIN, lifetime // 2)
        with _tokens_lock:
            _tokens[key] = (token, expires)
        return token

    def _post(self, path: str, payload: Mapping[str, Any], action: str) -> dict[str, Any]:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        fresh = False
        for _ in range(2):
            token = self._token(fresh=fresh)
            resp = request(
                self.provider,
                "POST",
                f"{self._base}{path}?{urlencode({'access_token': token})}",
                timeout=self.timeout,
                headers={"Content-Type": "application/json; charset=utf-8"},
                body=body,
            )
            if resp.status >= 500:
                raise TransientError(
                    f"{self.provider}: {action} failed (HTTP {resp.status})", code="http_5xx"
                )
            data = resp.json(self.provider)
            if not isinstance(data, dict):
                raise TransientError(f"{self.provider}: {action} answered oddly")
            errcode = int(data.get("errcode") or 0)
            if errcode == 0:
                return data
            if errcode in _TOKEN_ERRORS:
                if not fresh:
                    fresh = True
                    continue
                # Refused even when fresh: another process probably just replaced it.
                raise TransientError(
                    f"{self.provider}: access token refused twice", code=str(errcode)
                )
            raise classify(errcode, provider=self.provider, action=action)
        raise TransientError(f"{self.provider}: access token refused twice", code="token")

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        template = message.template_code or self.setting("template_id")
        if not template:
            raise PermanentError(
                f"{self.provider}: no template configured",
                code="no_template",
                reason=PermanentReason.CONFIGURATION,
            )
        data = {key: {"value": str(value)} for key, value in message.params.items()}
        mode = self.setting("mode", "template")
        if mode == "subscribe":
            action, path = "subscribe.bizsend", "/cgi-bin/message/subscribe/bizsend"
            payload: dict[str, Any] = {"touser": message.to, "template_id": template, "data": data}
            if message.link:
                payload["page"] = message.link
        elif mode == "template":
            action, path = "template.send", "/cgi-bin/message/template/send"
            payload = {
                "touser": message.to,
                "template_id": template,
                "data": data,
                "client_msg_id": reference(message.dedupe_key, CLIENT_MSG_ID_LIMIT),
            }
            if message.link:
                payload["url"] = message.link
        else:
            raise PermanentError(
                f"{self.provider}: unknown mode", code="bad_mode", reason=_C.CONFIGURATION
            )
        try:
            answer = self._post(path, payload, action)
        except ChannelError as exc:
            log_result(self.provider, action, message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, action, message.dedupe_key, "accepted")
        msgid = answer.get("msgid")
        return SendResult(provider_message_id=str(msgid) if msgid else f"wechat-{uuid.uuid4().hex}")


def _check_signature(config: Mapping[str, Any], query: Mapping[str, str]) -> None:
    token = str(config.get("callback_token") or "")
    if not token:
        raise InvalidCallback("wechat: callback token is not configured")
    given = str(query.get("signature") or "")
    expected = wechat_signature(
        token, str(query.get("timestamp") or ""), str(query.get("nonce") or "")
    )
    if not given or not same(given, expected):
        raise InvalidCallback("wechat: callback signature does not match")


def parse_xml(body: bytes) -> dict[str, str]:
    """A WeChat push as a flat dict; DOCTYPE and entity declarations are refused outright."""
    if len(body) > MAX_CALLBACK_BYTES:
        raise InvalidCallback("wechat: callback body too large")
    upper = body.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise InvalidCallback("wechat: XML with a DOCTYPE is not accepted")
    try:
        root = ET.fromstring(body)  # noqa: S314 - no DOCTYPE, so no entities to expand
    except ET.ParseError:
        raise InvalidCallback("wechat: callback body is not XML") from None
    if root.tag != "xml":
        raise InvalidCallback("wechat: unexpected XML root")
    fields: dict[str, str] = {}
    for child in root:
        if len(child):
            for grand in child.iter():
                if grand is not child and grand.text and grand.text.strip():
                    fields.setdefault(grand.tag, grand.text.strip())
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


def parse_callback(
    config: Mapping[str, Any],
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
) -> list[InboundEvent]:
    """Template send results, subscription-message results and text replies.

    A signed GET is WeChat checking the server URL: no events; the view answers ``echostr``.
    """
    _check_signature(config, query)
    if method.upper() == "GET":
        return []
    if query.get("encrypt_type") == "aes":
        raise InvalidCallback("wechat: encrypted mode is not supported")
    fields = parse_xml(body)
    msg_type = fields.get("MsgType", "")
    event = fields.get("Event", "")
    sender = fields.get("FromUserName", "")
    if msg_type == "event" and event == "TEMPLATESENDJOBFINISH":
        msg_id = fields.get("MsgID", "")
        status = fields.get("Status", "")
        return [
            InboundEvent(
                kind="delivered" if status == "success" else "failed",
                provider_event_id=f"{msg_id}:{status}",
                provider_message_id=msg_id,
                recipient=sender,
                detail=status,
            )
        ]
    if msg_type == "event" and event == "subscribe_msg_sent_event":
        msg_id = fields.get("MsgID", "")
        code = fields.get("ErrorCode", "")
        return [
            InboundEvent(
                kind="delivered" if code == "0" else "failed",
                provider_event_id=f"{msg_id}:{code}",
                provider_message_id=msg_id,
                recipient=sender,
                detail=fields.get("ErrorStatus", ""),
            )
        ]
    if msg_type == "text":
        return [
            InboundEvent(
                kind="reply",
                provider_event_id=fields.get("MsgId", "") or f"{sender}:{fields.get('CreateTime')}",
                sender=sender,
                text=fields.get("Content", ""),
            )
        ]
    return []


CALLBACK_ACK = ("text/plain", b"success")

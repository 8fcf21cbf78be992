"""Alibaba Cloud SMS (Dysmsapi) and voice notifications (Dyvmsapi), RPC-style API 2017-05-25.

Requests are form-encoded POSTs signed with signature version 1.0 (HMAC-SHA1 over the sorted,
percent-encoded parameters; key = AccessKey secret + "&"). POST keeps phone numbers and
template values out of URLs and access logs.

SMS settings (``aliyun_sms``):
  ``endpoint``          default ``https://dysmsapi.aliyuncs.com/``
  ``access_key_id``     RAM user AccessKey id
  ``access_key_secret`` its secret (secret)
  ``sign_name``         approved SMS signature, e.g. 【某某医院】
  ``template_code``     default approved template (``SMS_...``) when a message names none
  ``region_id``         default ``cn-hangzhou``
  ``callback_token``    shared token expected as ``?token=`` on delivery-report and reply
                        pushes (secret). Aliyun's HTTP batch push carries no signature, so the
                        callback URL registered in the console must hold this token.
  ``timeout``           seconds, default 10

Voice settings (``aliyun_voice``): ``endpoint`` (default ``https://dyvmsapi.aliyuncs.com/``),
``access_key_id``, ``access_key_secret``, ``tts_code`` (default TTS template),
``called_show_number`` (optional caller number; empty uses the shared number pool),
``play_times`` (1-3, optional), ``timeout``.

``OutId`` carries the message's dedupe key (kept as-is below 256 characters, else a digest) and
comes back in delivery reports. Template parameters are the message's ``params`` as a JSON
object. ``SendBatchSms`` sends up to 100 messages that share a template in one request; it has
one ``OutId`` and one ``BizId`` for the batch, so reconciliation also matches a message by its
unique portal link in the content ``QuerySendDetails`` returns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from careloop.channels.base import (
    BaseAdapter,
    contains_link,
    e164,
    no_address,
    posted_json_items,
)
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    InboundEvent,
    Message,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
    TransientError,
    require,
)
from careloop.channels.signing import aliyun_signature
from careloop.channels.transport import digest, log_result, reference, request
from careloop.kit.clock import utc_now

SMS_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
VOICE_ENDPOINT = "https://dyvmsapi.aliyuncs.com/"
API_VERSION = "2017-05-25"
OUT_ID_LIMIT = 255
BATCH_LIMIT = 100
QUERY_PAGE_SIZE = 50
QUERY_MAX_PAGES = 20
CHINA = ZoneInfo("Asia/Shanghai")

SMS_CONFIG_KEYS = (
    "endpoint",
    "access_key_id",
    "access_key_secret",
    "sign_name",
    "template_code",
    "region_id",
    "callback_token",
    "timeout",
)
VOICE_CONFIG_KEYS = (
    "endpoint",
    "access_key_id",
    "access_key_secret",
    "tts_code",
    "called_show_number",
    "play_times",
    "region_id",
    "timeout",
)
CONFIG_KEYS = SMS_CONFIG_KEYS
SECRET_KEYS = ("access_key_secret", "callback_token")

_C = PermanentReason
_PERMANENT: dict[str, PermanentReason] = {
    "isv.MOBILE_NUMBER_ILLEGAL": _C.INVALID_ADDRESS,
    "isv.MOBILE_COUNT_OVER_LIMIT": _C.INVALID_ADDRESS,
    "isv.AMOUNT_NOT_ENOUGH": _C.QUOTA,
    "isv.OUT_OF_SERVICE": _C.QUOTA,
    "isv.DAY_LIMIT_CONTROL": _C.QUOTA,
    "isv.SMS_TEMPLATE_ILLEGAL": _C.CONFIGURATION,
    "isv.SMS_SIGNATURE_ILLEGAL": _C.CONFIGURATION,
    "isv.TEMPLATE_MISSING_PARAMETERS": _C.CONFIGURATION,
    "isv.INVALID_PARAMETERS": _C.CONFIGURATION,
    "isv.TTS_TEMPLATE_ILLEGAL": _C.CONFIGURATION,
    "isv.ACCOUNT_NOT_EXISTS": _C.CONFIGURATION,
    "isv.ACCOUNT_ABNORMAL": _C.CONFIGURATION,
    "isv.PRODUCT_UN_SUBSCRIPT": _C.CONFIGURATION,
    "isv.PRODUCT_UNSUBSCRIBE": _C.CONFIGURATION,
    "isp.RAM_PERMISSION_DENY": _C.CONFIGURATION,
    "SignatureDoesNotMatch": _C.CONFIGURATION,
    "IncompleteSignature": _C.CONFIGURATION,
    "InvalidAccessKeyId.NotFound": _C.CONFIGURATION,
    "InvalidAccessKeyId.Inactive": _C.CONFIGURATION,
    "InvalidTimeStamp.Expired": _C.CONFIGURATION,
    "Forbidden.RAM": _C.CONFIGURATION,
    "isv.BLACK_KEY_CONTROL_LIMIT": _C.REJECTED,
    "isv.PARAM_LENGTH_LIMIT": _C.REJECTED,
    "isv.PARAM_NOT_SUPPORT_URL": _C.REJECTED,
}
_TRANSIENT = {
    "isv.BUSINESS_LIMIT_CONTROL",  # per-number flow control: later is fine
    "isp.SYSTEM_ERROR",
    "SignatureNonceUsed",
    "ServiceUnavailable",
    "InternalError",
}


def classify(code: str, *, provider: str, action: str, status: int = 200) -> ChannelError:
    """Map an Alibaba Cloud error code to a transient or permanent error."""
    detail = f"{provider}: {action} refused ({code or f'HTTP {status}'})"
    if code in _TRANSIENT or code.startswith(("Throttling", "isp.")) or status >= 500:
        return TransientError(detail, code=code or f"http_{status}")
    reason = _PERMANENT.get(code, PermanentReason.REJECTED)
    return PermanentError(detail, code=code or f"http_{status}", reason=reason)


def aliyun_number(to: str, provider: str) -> str:
    """Aliyun wants mainland numbers bare (13800000000) and others as country code + number."""
    number = e164(to, provider)
    return number[3:] if number.startswith("+86") else number[1:]


def out_id(dedupe_key: str) -> str:
    return reference(dedupe_key, OUT_ID_LIMIT)


class AliyunClient:
    """Signed RPC calls to one Alibaba Cloud product endpoint."""

    def __init__(self, config: Mapping[str, Any], *, endpoint: str, provider: str, timeout: float):
        self.key_id, self.secret = require(config, "access_key_id", "access_key_secret")
        self.endpoint = str(config.get("endpoint") or endpoint)
        self.region = str(config.get("region_id") or "cn-hangzhou")
        self.provider = provider
        self.timeout = timeout

    def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        full = {
            "AccessKeyId": self.key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            **params,
        }
        full["Signature"] = aliyun_signature("POST", full, self.secret)
        resp = request(
            self.provider,
            "POST",
            self.endpoint,
            timeout=self.timeout,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            body=urlencode(full).encode("ascii"),
        )
        if resp.status >= 500:
            raise classify("", provider=self.provider, action=action, status=resp.status)
        data = resp.json(self.provider)
        if not isinstance(data, dict):
            raise TransientError(f"{self.provider}: {action} answered oddly", code="bad_response")
        code = str(data.get("Code") or "")
        if code == "OK":
            return data
        raise classify(code, provider=self.provider, action=action, status=resp.status)


class AliyunSmsAdapter(BaseAdapter):
    kind = ChannelKind.SMS
    provider = "aliyun_sms"
    batch_size = BATCH_LIMIT

    def _client(self) -> AliyunClient:
        return AliyunClient(
            self.config, endpoint=SMS_ENDPOINT, provider=self.provider, timeout=self.timeout
        )

    def _template(self, message: Message) -> str:
        template = message.template_code or self.setting("template_code")
        if not template:
            raise PermanentError(
                f"{self.provider}: no SMS template configured",
                code="no_template",
                reason=PermanentReason.CONFIGURATION,
            )
        return template

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        client = self._client()
        (sign_name,) = require(self.config, "sign_name")
        params = {
            "PhoneNumbers": aliyun_number(message.to, self.provider),
            "SignName": sign_name,
            "TemplateCode": self._template(message),
            "OutId": out_id(message.dedupe_key),
        }
        if message.params:
            params["TemplateParam"] = _json(message.params)
        try:
            data = client.call("SendSms", params)
        except ChannelError as exc:
            log_result(self.provider, "SendSms", message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, "SendSms", message.dedupe_key, "accepted")
        return SendResult(provider_message_id=str(data.get("BizId") or ""))

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        results: list[SendResult | ChannelError | None] = [None] * len(messages)
        groups: dict[str, list[tuple[int, str]]] = {}
        for i, message in enumerate(messages):
            try:
                if not message.to:
                    raise no_address(self.provider)
                number = aliyun_number(message.to, self.provider)
                groups.setdefault(self._template(message), []).append((i, number))
            except ChannelError as exc:
                results[i] = exc
        for template, members in groups.items():
            for start in range(0, len(members), BATCH_LIMIT):
                chunk = members[start : start + BATCH_LIMIT]
                for i, outcome in self._send_chunk(messages, template, chunk):
                    results[i] = outcome
        return [
            r if r is not None else TransientError(f"{self.provider}: not sent") for r in results
        ]

    def _send_chunk(
        self, messages: Sequence[Message], template: str, chunk: list[tuple[int, str]]
    ) -> list[tuple[int, SendResult | ChannelError]]:
        if len(chunk) == 1:
            i = chunk[0][0]
            try:
                return [(i, self.send(messages[i]))]
            except ChannelError as exc:
                return [(i, exc)]
        keys = [messages[i].dedupe_key for i, _ in chunk]
        batch_ref = "batch-" + digest(*keys, length=40)
        try:
            client = self._client()
            (sign_name,) = require(self.config, "sign_name")
            data = client.call(
                "SendBatchSms",
                {
                    "PhoneNumberJson": _json([n for _, n in chunk]),
                    "SignNameJson": _json([sign_name] * len(chunk)),
                    "TemplateCode": template,
                    "TemplateParamJson": _json([dict(messages[i].params) for i, _ in chunk]),
                    "OutId": batch_ref,
                },
            )
        except PermanentError as exc:
            if exc.reason == PermanentReason.INVALID_ADDRESS:
                # One bad number fails the whole request: send one by one to find it.
                outcomes: list[tuple[int, SendResult | ChannelError]] = []
                for i, _ in chunk:
                    try:
                        outcomes.append((i, self.send(messages[i])))
                    except ChannelError as single:
                        outcomes.append((i, single))
                return outcomes
            for key in keys:
                log_result(self.provider, "SendBatchSms", key, "error", exc.code)
            return [(i, exc) for i, _ in chunk]
        except ChannelError as exc:
            for key in keys:
                log_result(self.provider, "SendBatchSms", key, "error", exc.code)
            return [(i, exc) for i, _ in chunk]
        biz_id = str(data.get("BizId") or "")
        for key in keys:
            log_result(self.provider, "SendBatchSms", key, "accepted")
        return [(i, SendResult(provider_message_id=biz_id, detail="batch")) for i, _ in chunk]

    def reconcile(self, message: Message) -> Reconciled:
        """Look for the message in today's and yesterday's send records (China time)."""
        client = self._client()
        number = aliyun_number(message.to, self.provider)
        wanted = out_id(message.dedupe_key)
        today = utc_now().astimezone(CHINA).date()
        for day in (today, today - timedelta(days=1)):
            for page in range(1, QUERY_MAX_PAGES + 1):
                data = client.call(
                    "QuerySendDetails",
                    {
                        "PhoneNumber": number,
                        "SendDate": day.strftime("%Y%m%d"),
                        "PageSize": str(QUERY_PAGE_SIZE),
                        "CurrentPage": str(page),
                    },
                )
                details = (data.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                for row in details:
                    if str(row.get("OutId") or "") == wanted:
                        return Reconciled.ACCEPTED
                    if contains_link(str(row.get("Content") or ""), message.link):
                        return Reconciled.ACCEPTED
                    # A template holds the link's token as a parameter, not the whole URL.
                    token = str(message.params.get("link") or "")
                    if token and contains_link(str(row.get("Content") or ""), token):
                        return Reconciled.ACCEPTED
                total = int(data.get("TotalCount") or 0)
                if page * QUERY_PAGE_SIZE >= total or not details:
                    break
        return Reconciled.NOT_FOUND


class AliyunVoiceAdapter(BaseAdapter):
    kind = ChannelKind.VOICE
    provider = "aliyun_voice"
    batch_size = 1

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        client = AliyunClient(
            self.config, endpoint=VOICE_ENDPOINT, provider=self.provider, timeout=self.timeout
        )
        tts_code = message.template_code or self.setting("tts_code")
        if not tts_code:
            raise PermanentError(
                f"{self.provider}: no TTS template configured",
                code="no_template",
                reason=PermanentReason.CONFIGURATION,
            )
        params = {
            "CalledNumber": aliyun_number(message.to, self.provider),
            "TtsCode": tts_code,
            "OutId": out_id(message.dedupe_key),
        }
        if message.params:
            params["TtsParam"] = _json(message.params)
        if self.setting("called_show_number"):
            params["CalledShowNumber"] = self.setting("called_show_number")
        if self.setting("play_times"):
            params["PlayTimes"] = str(self.number("play_times", 2))
        try:
            data = client.call("SingleCallByTts", params)
        except ChannelError as exc:
            log_result(self.provider, "SingleCallByTts", message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, "SingleCallByTts", message.dedupe_key, "accepted")
        return SendResult(provider_message_id=str(data.get("CallId") or ""))


def parse_sms_callback(
    config: Mapping[str, Any],
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
) -> list[InboundEvent]:
    """Delivery reports (SmsReport) and replies (SmsUp), both JSON arrays pushed by POST."""
    provider = AliyunSmsAdapter.provider
    events: list[InboundEvent] = []
    for item in posted_json_items(config, method, query, body, provider):
        phone = str(item.get("phone_number") or "")
        if "biz_id" in item and "success" in item:
            ok = item.get("success") in (True, "true", "True", 1)
            status = "delivered" if ok else "failed"
            biz_id = str(item.get("biz_id") or "")
            events.append(
                InboundEvent(
                    kind=status,
                    provider_event_id=f"{biz_id}:{digest(phone, length=12)}:{status}",
                    provider_message_id=biz_id,
                    dedupe_key=str(item.get("out_id") or ""),
                    recipient=_callback_number(phone),
                    detail=str(item.get("err_code") or ""),
                )
            )
        elif "content" in item:
            sent_at = str(item.get("send_time") or "")
            content = str(item.get("content") or "")
            events.append(
                InboundEvent(
                    kind="reply",
                    provider_event_id=digest(phone, sent_at, content),
                    sender=_callback_number(phone),
                    text=content,
                    detail=str(item.get("dest_code") or ""),
                )
            )
    return events


def _callback_number(phone: str) -> str:
    try:
        return e164(phone, AliyunSmsAdapter.provider)
    except PermanentError:
        return phone


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


CALLBACK_ACK = ("application/json", _json({"code": 0, "msg": "成功"}).encode("utf-8"))

"""Tencent Cloud SMS (API 2021-01-11) and voice messages (VMS, API 2020-09-02).

Requests are JSON POSTs signed with TC3-HMAC-SHA256 (headers ``X-TC-Action``, ``X-TC-Version``,
``X-TC-Timestamp``, ``X-TC-Region``; signed headers ``content-type;host``).

SMS settings (``tencent_sms``):
  ``endpoint``        default ``https://sms.tencentcloudapi.com/``
  ``secret_id``       API key id
  ``secret_key``      API key secret (secret)
  ``region``          default ``ap-guangzhou``
  ``sdk_app_id``      SMS application id (``SmsSdkAppId``)
  ``sign_name``       approved signature
  ``template_id``     default approved template when a message names none
  ``callback_token``  shared token expected as ``?token=`` on status and reply callbacks
                      (secret); Tencent's SMS callbacks carry no signature
  ``timeout``         seconds, default 10

Voice settings (``tencent_voice``): ``endpoint`` (default ``https://vms.tencentcloudapi.com/``),
``secret_id``, ``secret_key``, ``region``, ``voice_sdk_app_id``, ``template_id``,
``play_times`` (1-3, optional), ``timeout``.

Template parameters are positional: a message's ``params`` are sent in key order when the keys
are numbers ("1", "2", ...), otherwise in the order given. ``SessionContext`` carries the dedupe
key and each accepted number gets its own ``SerialNo``, which delivery reports quote as ``sid``.
One ``SendSms`` call reaches up to 200 numbers but with one template and one parameter set, so a
batch groups messages with identical template and parameters. Tencent offers no lookup of a
send by ``SessionContext``: ``reconcile`` answers ``UNKNOWN`` and the dispatcher decides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from careloop.channels.base import (
    BaseAdapter,
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
    SendResult,
    TransientError,
    require,
)
from careloop.channels.signing import tc3_authorization
from careloop.channels.transport import digest, log_result, reference, request

SMS_ENDPOINT = "https://sms.tencentcloudapi.com/"
VOICE_ENDPOINT = "https://vms.tencentcloudapi.com/"
SMS_VERSION = "2021-01-11"
VOICE_VERSION = "2020-09-02"
CONTENT_TYPE = "application/json; charset=utf-8"
BATCH_LIMIT = 200
SESSION_LIMIT = 500

SMS_CONFIG_KEYS = (
    "endpoint",
    "secret_id",
    "secret_key",
    "region",
    "sdk_app_id",
    "sign_name",
    "template_id",
    "callback_token",
    "timeout",
)
VOICE_CONFIG_KEYS = (
    "endpoint",
    "secret_id",
    "secret_key",
    "region",
    "voice_sdk_app_id",
    "template_id",
    "play_times",
    "timeout",
)
CONFIG_KEYS = SMS_CONFIG_KEYS
SECRET_KEYS = ("secret_key", "callback_token")

_C = PermanentReason
_PERMANENT: dict[str, PermanentReason] = {
    "FailedOperation.PhoneNumberInBlacklist": _C.UNSUBSCRIBED,
    "InvalidParameterValue.IncorrectPhoneNumber": _C.INVALID_ADDRESS,
    "FailedOperation.PhoneNumberParseFail": _C.INVALID_ADDRESS,
    "UnsupportedOperation.UnsupportedRegion": _C.INVALID_ADDRESS,
    "LimitExceeded.PhoneNumberDailyLimit": _C.QUOTA,
    "FailedOperation.InsufficientBalanceInSmsPackage": _C.QUOTA,
    "FailedOperation.InsufficientBalance": _C.QUOTA,
    "FailedOperation.SignatureIncorrectOrUnapproved": _C.CONFIGURATION,
    "FailedOperation.TemplateIncorrectOrUnapproved": _C.CONFIGURATION,
    "FailedOperation.MissingSignature": _C.CONFIGURATION,
    "FailedOperation.MissingTemplateToModify": _C.CONFIGURATION,
    "InvalidParameterValue.TemplateParameterFormatError": _C.CONFIGURATION,
    "InvalidParameterValue.SdkAppIdNotExist": _C.CONFIGURATION,
    "FailedOperation.ContainSensitiveWord": _C.REJECTED,
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": _C.REJECTED,
}
_TRANSIENT_PREFIXES = (
    "LimitExceeded.",
    "InternalError",
    "RequestLimitExceeded",
    "ResourceUnavailable",
)
_CONFIG_PREFIXES = ("AuthFailure", "UnauthorizedOperation")


def classify(code: str, *, provider: str, action: str) -> ChannelError:
    """Map a Tencent Cloud error code (request-level or per number) to an error."""
    detail = f"{provider}: {action} refused ({code})"
    if code in _PERMANENT:
        return PermanentError(detail, code=code, reason=_PERMANENT[code])
    if code.startswith(_TRANSIENT_PREFIXES):
        return TransientError(detail, code=code)
    if code.startswith(_CONFIG_PREFIXES):
        return PermanentError(detail, code=code, reason=PermanentReason.CONFIGURATION)
    return PermanentError(detail, code=code, reason=PermanentReason.REJECTED)


def positional(params: Mapping[str, str]) -> list[str]:
    keys = list(params)
    if keys and all(k.isdigit() for k in keys):
        keys.sort(key=int)
    return [str(params[k]) for k in keys]


class TencentClient:
    """Signed calls to one Tencent Cloud product endpoint."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        endpoint: str,
        service: str,
        version: str,
        provider: str,
        timeout: float,
    ) -> None:
        self.secret_id, self.secret_key = require(config, "secret_id", "secret_key")
        self.endpoint = str(config.get("endpoint") or endpoint)
        self.region = str(config.get("region") or "ap-guangzhou")
        self.service = service
        self.version = version
        self.provider = provider
        self.timeout = timeout

    def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        host = urlsplit(self.endpoint).netloc
        timestamp = int(time.time())
        headers = {
            "Authorization": tc3_authorization(
                secret_id=self.secret_id,
                secret_key=self.secret_key,
                service=self.service,
                host=host,
                content_type=CONTENT_TYPE,
                payload=body,
                timestamp=timestamp,
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Version": self.version,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
        }
        resp = request(
            self.provider, "POST", self.endpoint, timeout=self.timeout, headers=headers, body=body
        )
        if resp.status >= 500:
            raise TransientError(
                f"{self.provider}: {action} failed (HTTP {resp.status})", code=f"http_{resp.status}"
            )
        data = resp.json(self.provider)
        answer = data.get("Response") if isinstance(data, dict) else None
        if not isinstance(answer, dict):
            raise TransientError(f"{self.provider}: {action} answered oddly", code="bad_response")
        error = answer.get("Error")
        if isinstance(error, dict):
            raise classify(str(error.get("Code") or ""), provider=self.provider, action=action)
        if resp.status >= 400:
            raise PermanentError(
                f"{self.provider}: {action} refused (HTTP {resp.status})",
                code=f"http_{resp.status}",
                reason=PermanentReason.REJECTED,
            )
        return answer


class TencentSmsAdapter(BaseAdapter):
    kind = ChannelKind.SMS
    provider = "tencent_sms"
    batch_size = BATCH_LIMIT

    def _client(self) -> TencentClient:
        return TencentClient(
            self.config,
            endpoint=SMS_ENDPOINT,
            service="sms",
            version=SMS_VERSION,
            provider=self.provider,
            timeout=self.timeout,
        )

    def _template(self, message: Message) -> str:
        template = message.template_code or self.setting("template_id")
        if not template:
            raise PermanentError(
                f"{self.provider}: no SMS template configured",
                code="no_template",
                reason=PermanentReason.CONFIGURATION,
            )
        return template

    def send(self, message: Message) -> SendResult:
        outcome = self.send_batch([message])[0]
        if isinstance(outcome, ChannelError):
            raise outcome
        return outcome

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        results: list[SendResult | ChannelError | None] = [None] * len(messages)
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = {}
        for i, message in enumerate(messages):
            try:
                if not message.to:
                    raise no_address(self.provider)
                number = e164(message.to, self.provider)
                key = (self._template(message), tuple(positional(message.params)))
                groups.setdefault(key, []).append((i, number))
            except ChannelError as exc:
                results[i] = exc
        for (template, params), members in groups.items():
            for start in range(0, len(members), BATCH_LIMIT):
                chunk = members[start : start + BATCH_LIMIT]
                for i, outcome in self._send_chunk(messages, template, list(params), chunk):
                    results[i] = outcome
        return [
            r if r is not None else TransientError(f"{self.provider}: not sent") for r in results
        ]

    def _send_chunk(
        self,
        messages: Sequence[Message],
        template: str,
        params: list[str],
        chunk: list[tuple[int, str]],
    ) -> list[tuple[int, SendResult | ChannelError]]:
        keys = [messages[i].dedupe_key for i, _ in chunk]
        if len(chunk) == 1:
            session = reference(keys[0], SESSION_LIMIT)
        else:
            session = "batch-" + digest(*keys, length=40)
        try:
            client = self._client()
            app_id, sign_name = require(self.config, "sdk_app_id", "sign_name")
            answer = client.call(
                "SendSms",
                {
                    "PhoneNumberSet": [number for _, number in chunk],
                    "SmsSdkAppId": app_id,
                    "SignName": sign_name,
                    "TemplateId": template,
                    "TemplateParamSet": params,
                    "SessionContext": session,
                },
            )
        except ChannelError as exc:
            for key in keys:
                log_result(self.provider, "SendSms", key, "error", exc.code)
            return [(i, exc) for i, _ in chunk]
        statuses = answer.get("SendStatusSet") or []
        by_number: dict[str, list[dict[str, Any]]] = {}
        for status in statuses:
            by_number.setdefault(str(status.get("PhoneNumber") or ""), []).append(status)
        outcomes: list[tuple[int, SendResult | ChannelError]] = []
        for position, (i, number) in enumerate(chunk):
            if len(statuses) == len(chunk):
                status = statuses[position]
            elif by_number.get(number):
                status = by_number[number].pop(0)
            else:
                outcomes.append((i, TransientError(f"{self.provider}: no status for a number")))
                continue
            code = str(status.get("Code") or "")
            if code == "Ok":
                log_result(self.provider, "SendSms", messages[i].dedupe_key, "accepted")
                outcomes.append((i, SendResult(provider_message_id=str(status.get("SerialNo")))))
            else:
                error = classify(code, provider=self.provider, action="SendSms")
                log_result(self.provider, "SendSms", messages[i].dedupe_key, "error", code)
                outcomes.append((i, error))
        return outcomes


class TencentVoiceAdapter(BaseAdapter):
    kind = ChannelKind.VOICE
    provider = "tencent_voice"
    batch_size = 1

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        client = TencentClient(
            self.config,
            endpoint=VOICE_ENDPOINT,
            service="vms",
            version=VOICE_VERSION,
            provider=self.provider,
            timeout=self.timeout,
        )
        (app_id,) = require(self.config, "voice_sdk_app_id")
        template = message.template_code or self.setting("template_id")
        if not template:
            raise PermanentError(
                f"{self.provider}: no voice template configured",
                code="no_template",
                reason=PermanentReason.CONFIGURATION,
            )
        payload: dict[str, Any] = {
            "TemplateId": template,
            "CalledNumber": e164(message.to, self.provider),
            "VoiceSdkAppid": app_id,
            "TemplateParamSet": positional(message.params),
            "SessionContext": reference(message.dedupe_key, SESSION_LIMIT),
        }
        if self.setting("play_times"):
            payload["PlayTimes"] = self.number("play_times", 2)
        try:
            answer = client.call("SendTtsVoice", payload)
        except ChannelError as exc:
            log_result(self.provider, "SendTtsVoice", message.dedupe_key, "error", exc.code)
            raise
        log_result(self.provider, "SendTtsVoice", message.dedupe_key, "accepted")
        call_id = str((answer.get("SendStatus") or {}).get("CallId") or "")
        return SendResult(provider_message_id=call_id)


def parse_sms_callback(
    config: Mapping[str, Any],
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
) -> list[InboundEvent]:
    """Status reports (array with ``sid``/``report_status``) and replies (``text``/``mobile``)."""
    provider = TencentSmsAdapter.provider
    events: list[InboundEvent] = []
    for item in posted_json_items(config, method, query, body, provider):
        number = _number(item)
        if "sid" in item and "report_status" in item:
            status = str(item.get("report_status") or "")
            sid = str(item.get("sid") or "")
            events.append(
                InboundEvent(
                    kind="delivered" if status == "SUCCESS" else "failed",
                    provider_event_id=f"{sid}:{status}",
                    provider_message_id=sid,
                    recipient=number,
                    detail=str(item.get("errmsg") or ""),
                )
            )
        elif "text" in item:
            text = str(item.get("text") or "")
            at = str(item.get("time") or "")
            events.append(
                InboundEvent(
                    kind="reply",
                    provider_event_id=digest(number, at, text),
                    sender=number,
                    text=text,
                    detail=str(item.get("extend") or ""),
                )
            )
    return events


def _number(item: Mapping[str, Any]) -> str:
    mobile = str(item.get("mobile") or "")
    nation = str(item.get("nationcode") or "")
    if mobile.startswith("+") or not nation:
        return mobile
    return f"+{nation}{mobile}"


CALLBACK_ACK = ("application/json", b'{"result":0,"errmsg":"OK"}')

"""The channel port: what the dispatcher needs from any delivery provider.

An adapter turns one ``Message`` into one provider request. It never logs credentials or the
message body. Provider errors are classified: ``TransientError`` is retried with backoff,
``PermanentError`` stops at once and dead-letters the occurrence with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class ChannelKind(StrEnum):
    OUTBOX = "outbox"
    EMAIL = "email"
    SMS = "sms"
    WECHAT = "wechat"
    VOICE = "voice"
    PUSH = "push"


class PermanentReason(StrEnum):
    INVALID_ADDRESS = "invalid_address"
    UNSUBSCRIBED = "unsubscribed"
    NO_CONSENT = "no_consent"
    QUOTA = "quota"
    REJECTED = "rejected"
    CONFIGURATION = "configuration"
    NO_ADDRESS = "no_address"


@dataclass(frozen=True)
class Message:
    """One message to one recipient on one channel.

    ``dedupe_key`` is unique per occurrence, channel and escalation step; adapters pass it to
    the provider where the API has a caller reference field (Aliyun ``OutId``, Tencent
    ``SessionContext``, e-mail ``Message-ID``), so an in-doubt send can be reconciled.
    ``body`` never names a diagnosis: it carries ``link``, an opaque expiring portal URL.
    ``template_code`` and ``params`` are for providers that send registered templates only
    (Chinese SMS, WeChat, TTS voice).
    """

    to: str
    body: str
    dedupe_key: str
    language: str = "zh-hans"
    subject: str = ""
    link: str = ""
    template_code: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    detail: str = ""


class ChannelError(Exception):
    def __init__(self, detail: str, *, code: str = "") -> None:
        self.detail = detail
        self.code = code
        super().__init__(detail)


class TransientError(ChannelError):
    """Worth retrying: timeouts, 5xx, throttling by the provider."""


class PermanentError(ChannelError):
    """Never retried: bad number, unsubscribed, quota used, rejected template."""

    def __init__(self, detail: str, *, code: str = "", reason: PermanentReason) -> None:
        super().__init__(detail, code=code)
        self.reason = reason


class Reconciled(StrEnum):
    ACCEPTED = "accepted"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class InboundEvent:
    """A provider callback: a delivery report or a patient's reply, with its provider event id.

    ``dedupe_key`` is the caller reference the provider echoed (Aliyun ``out_id``), when it has
    one; ``recipient`` is the address a delivery report is about (needed where one provider
    message id covers a batch, as Aliyun ``SendBatchSms`` does).
    """

    kind: str  # "delivered" | "failed" | "reply"
    provider_event_id: str
    provider_message_id: str = ""
    dedupe_key: str = ""
    sender: str = ""
    text: str = ""
    detail: str = ""
    recipient: str = ""


class Adapter(Protocol):
    kind: ChannelKind
    provider: str
    batch_size: int

    def send(self, message: Message) -> SendResult: ...

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]: ...

    def reconcile(self, message: Message) -> Reconciled: ...


class InvalidCallback(Exception):
    """A callback whose signature or shape does not check out: answered 403/400, never applied."""


def require(config: Mapping[str, Any], *names: str) -> list[str]:
    """The named settings, or a PermanentError naming the first missing one."""
    values = []
    for name in names:
        value = config.get(name)
        if not value:
            raise PermanentError(
                f"channel setting {name!r} is missing",
                reason=PermanentReason.CONFIGURATION,
            )
        values.append(str(value))
    return values

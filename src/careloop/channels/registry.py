"""Which providers serve which channel, their settings, and where callbacks go."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from careloop.channels import aliyun, outbox, smtp, tencent, twilio, webpush, wechat
from careloop.channels.base import BaseAdapter
from careloop.channels.port import (
    Adapter,
    ChannelKind,
    InboundEvent,
    InvalidCallback,
    PermanentError,
    PermanentReason,
)

CallbackParser = Callable[
    [Mapping[str, Any], str, Mapping[str, str], bytes, Mapping[str, str]], list[InboundEvent]
]


@dataclass(frozen=True)
class ProviderInfo:
    kind: ChannelKind
    adapter: type[BaseAdapter]
    config_keys: tuple[str, ...]
    secret_keys: tuple[str, ...]
    parse_callback: CallbackParser | None = None
    ack: tuple[str, bytes] = ("text/plain", b"")


_INFO: dict[str, ProviderInfo] = {
    "outbox": ProviderInfo(
        ChannelKind.OUTBOX, outbox.OutboxAdapter, outbox.CONFIG_KEYS, outbox.SECRET_KEYS
    ),
    "smtp": ProviderInfo(ChannelKind.EMAIL, smtp.SmtpAdapter, smtp.CONFIG_KEYS, smtp.SECRET_KEYS),
    "aliyun_sms": ProviderInfo(
        ChannelKind.SMS,
        aliyun.AliyunSmsAdapter,
        aliyun.SMS_CONFIG_KEYS,
        aliyun.SECRET_KEYS,
        aliyun.parse_sms_callback,
        aliyun.CALLBACK_ACK,
    ),
    "tencent_sms": ProviderInfo(
        ChannelKind.SMS,
        tencent.TencentSmsAdapter,
        tencent.SMS_CONFIG_KEYS,
        tencent.SECRET_KEYS,
        tencent.parse_sms_callback,
        tencent.CALLBACK_ACK,
    ),
    "twilio_sms": ProviderInfo(
        ChannelKind.SMS,
        twilio.TwilioSmsAdapter,
        twilio.CONFIG_KEYS,
        twilio.SECRET_KEYS,
        twilio.parse_callback,
        twilio.CALLBACK_ACK,
    ),
    "wechat": ProviderInfo(
        ChannelKind.WECHAT,
        wechat.WeChatAdapter,
        wechat.CONFIG_KEYS,
        wechat.SECRET_KEYS,
        wechat.parse_callback,
        wechat.CALLBACK_ACK,
    ),
    "aliyun_voice": ProviderInfo(
        ChannelKind.VOICE,
        aliyun.AliyunVoiceAdapter,
        aliyun.VOICE_CONFIG_KEYS,
        ("access_key_secret",),
    ),
    "tencent_voice": ProviderInfo(
        ChannelKind.VOICE,
        tencent.TencentVoiceAdapter,
        tencent.VOICE_CONFIG_KEYS,
        ("secret_key",),
    ),
    "webpush": ProviderInfo(
        ChannelKind.PUSH, webpush.WebPushAdapter, webpush.CONFIG_KEYS, webpush.SECRET_KEYS
    ),
}

PROVIDERS: dict[ChannelKind, list[str]] = {kind: [] for kind in ChannelKind}
for _name, _entry in _INFO.items():
    PROVIDERS[_entry.kind].append(_name)

MASK = "********"


def _info(provider: str) -> ProviderInfo:
    info = _INFO.get(provider)
    if info is None:
        raise PermanentError(
            f"unknown channel provider {provider!r}",
            code="unknown_provider",
            reason=PermanentReason.CONFIGURATION,
        )
    return info


def get_adapter(kind: ChannelKind | str, provider: str, config: Mapping[str, Any]) -> Adapter:
    """The adapter for ``provider`` bound to one organisation's settings.

    An unknown provider, or one that does not serve ``kind``, is a configuration error.
    """
    info = _info(provider)
    if info.kind != ChannelKind(kind):
        raise PermanentError(
            f"provider {provider!r} does not serve the {kind} channel",
            code="wrong_channel",
            reason=PermanentReason.CONFIGURATION,
        )
    return info.adapter(config)


def config_keys(provider: str) -> tuple[str, ...]:
    return _info(provider).config_keys


def secret_keys(provider: str) -> tuple[str, ...]:
    return _info(provider).secret_keys


def masked(provider: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings fit to show on a page: secrets that are set appear as a mask."""
    secrets = set(secret_keys(provider))
    return {
        key: (MASK if key in secrets and config.get(key) else config.get(key, ""))
        for key in config_keys(provider)
    }


def parse_callback(
    provider: str,
    config: Mapping[str, Any],
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
    *,
    url: str = "",
) -> list[InboundEvent]:
    """Delivery reports and replies from a provider's callback, after checking its signature.

    Raises ``InvalidCallback`` (answer 403/400, apply nothing) when the signature, token or
    shape does not check out, or the provider sends no callbacks. ``url`` is the public URL
    the request was made to, for providers that sign it (Twilio); it defaults to the
    provider's configured ``callback_url``.
    """
    info = _info(provider)
    if info.parse_callback is None:
        raise InvalidCallback(f"{provider}: no callbacks are accepted")
    if provider == "twilio_sms":
        return twilio.parse_callback(config, method, headers, body, query, url=url)
    return info.parse_callback(config, method, headers, body, query)


def callback_ack(provider: str, method: str, query: Mapping[str, str]) -> tuple[str, bytes]:
    """(content type, body) to answer a callback that was accepted.

    WeChat's server-URL check (a signed GET) must be answered with its ``echostr``.
    """
    if provider == "wechat" and method.upper() == "GET":
        return "text/plain", str(query.get("echostr") or "").encode("utf-8")
    return _info(provider).ack

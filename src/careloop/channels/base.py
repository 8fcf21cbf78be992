"""What every adapter shares: its settings, a default batch that loops, addresses."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    InvalidCallback,
    Message,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
)
from careloop.channels.signing import same
from careloop.channels.transport import timeout_of

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CN_MOBILE = re.compile(r"^1\d{10}$")


class BaseAdapter:
    """An adapter bound to one organisation's settings."""

    kind: ChannelKind
    provider: str
    batch_size: int = 1

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config: dict[str, Any] = dict(config)
        self.timeout = timeout_of(config)

    def setting(self, name: str, default: str = "") -> str:
        value = self.config.get(name)
        return str(value) if value not in (None, "") else default

    def number(self, name: str, default: int) -> int:
        """A whole-number setting; anything else is a configuration error."""
        raw = self.config.get(name)
        if raw in (None, ""):
            return default
        try:
            return int(str(raw))
        except ValueError:
            raise PermanentError(
                f"{self.provider}: setting {name!r} is not a whole number",
                code="bad_setting",
                reason=PermanentReason.CONFIGURATION,
            ) from None

    def send(self, message: Message) -> SendResult:  # pragma: no cover - every adapter overrides
        raise NotImplementedError

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result or error per message, in order; providers without a batch API loop."""
        results: list[SendResult | ChannelError] = []
        for message in messages:
            try:
                results.append(self.send(message))
            except ChannelError as exc:
                results.append(exc)
        return results

    def reconcile(self, message: Message) -> Reconciled:
        """Providers without a lookup by caller reference cannot say."""
        return Reconciled.UNKNOWN


def e164(to: str, provider: str) -> str:
    """A phone number in E.164; an 11-digit mainland mobile number gains +86."""
    number = re.sub(r"[\s\-()]", "", to or "")
    if _CN_MOBILE.match(number):
        number = "+86" + number
    elif number.startswith("00"):
        number = "+" + number[2:]
    if not _E164.match(number):
        raise PermanentError(
            f"{provider}: recipient is not a phone number",
            code="bad_number",
            reason=PermanentReason.INVALID_ADDRESS,
        )
    return number


def no_address(provider: str) -> PermanentError:
    return PermanentError(
        f"{provider}: message has no recipient",
        code="no_address",
        reason=PermanentReason.NO_ADDRESS,
    )


def contains_link(text: str, link: str) -> bool:
    """Whether ``text`` holds ``link`` whole, not as the start of a longer URL."""
    if not link:
        return False
    return re.search(re.escape(link) + r"(?![A-Za-z0-9\-._~/?#=&%+])", text) is not None


def with_link(message: Message) -> str:
    """The text to send: the body, with the portal link appended if the body lacks it."""
    body = message.body
    if message.link and message.link not in body:
        body = f"{body}\n{message.link}" if body else message.link
    return body


MAX_CALLBACK_BYTES = 1 << 20


def check_callback_token(
    config: Mapping[str, Any], query: Mapping[str, str], provider: str
) -> None:
    """A shared per-organisation token in the callback URL (``?token=``), compared in constant time.

    Used for providers whose HTTP push carries no signature (Aliyun SMS batch push, Tencent SMS
    callbacks): the URL registered with the provider is the organisation's secret.
    """
    expected = str(config.get("callback_token") or "")
    if not expected:
        raise InvalidCallback(f"{provider}: callback token is not configured")
    given = str(query.get("token") or "")
    if not given or not same(given, expected):
        raise InvalidCallback(f"{provider}: callback token does not match")


def json_callback(body: bytes, provider: str) -> list[dict[str, Any]]:
    """A JSON callback body as a list of objects (one object is taken as a list of one)."""
    if len(body) > MAX_CALLBACK_BYTES:
        raise InvalidCallback(f"{provider}: callback body too large")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidCallback(f"{provider}: callback body is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise InvalidCallback(f"{provider}: callback items must be objects")
    return items


def posted_json_items(
    config: Mapping[str, Any],
    method: str,
    query: Mapping[str, str],
    body: bytes,
    provider: str,
) -> list[dict[str, Any]]:
    """The items of a token-checked JSON callback pushed by POST (Aliyun, Tencent SMS)."""
    check_callback_token(config, query, provider)
    if method.upper() != "POST":
        raise InvalidCallback(f"{provider}: callbacks are POSTed")
    return json_callback(body, provider)

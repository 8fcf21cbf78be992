"""No credential, message body or recipient address ends up in a log record or an error."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from careloop.channels import registry, wechat
from careloop.channels.fakes import (
    FakeAliyun,
    FakePushService,
    FakeSmtp,
    FakeTencent,
    FakeTwilio,
    FakeWeChat,
)
from careloop.channels.port import ChannelError, ChannelKind, Message

BODY = "机密正文-血糖偏高请复诊"
PHONE = "+8613912345678"


def _setup(provider: str, fake: Any) -> tuple[dict[str, Any], Message, str]:
    """(config, message, recipient as the provider sees it)."""
    config = fake.config()
    if provider == "webpush":
        to = json.dumps(fake.subscribe())
        return config, Message(to=to, body=BODY, dedupe_key="occ:1:push:0"), to
    if provider == "smtp":
        to = "secret.patient@example.org"
        return config, Message(to=to, body=BODY, dedupe_key="occ:1:email:0"), to
    if provider == "wechat":
        to = "oSecretOpenId123"
        return config, Message(to=to, body=BODY, dedupe_key="occ:1:wx:0", params={"t": BODY}), to
    msg = Message(to=PHONE, body=BODY, dedupe_key="occ:1:sms:0", params={"1": BODY})
    return config, msg, PHONE[3:] if provider.startswith("aliyun") else PHONE


FAKES: dict[str, Callable[[], Any]] = {
    "aliyun_sms": FakeAliyun,
    "aliyun_voice": FakeAliyun,
    "tencent_sms": FakeTencent,
    "tencent_voice": FakeTencent,
    "twilio_sms": FakeTwilio,
    "wechat": FakeWeChat,
    "webpush": FakePushService,
    "smtp": FakeSmtp,
}


@pytest.mark.parametrize("provider", sorted(FAKES))
def test_logs_and_errors_carry_no_secrets_bodies_or_addresses(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    wechat.forget_tokens()
    kind = next(k for k, names in registry.PROVIDERS.items() if provider in names)
    with FAKES[provider]() as fake:
        config, message, recipient = _setup(provider, fake)
        secrets = [str(config[k]) for k in registry.secret_keys(provider) if config.get(k)]
        assert secrets, "the fake should configure at least one secret"
        errors: list[ChannelError] = []
        with caplog.at_level(logging.DEBUG):
            registry.get_adapter(ChannelKind(kind), provider, config).send(message)
            fake.fail_next(status=503)
            try:
                registry.get_adapter(ChannelKind(kind), provider, config).send(message)
            except ChannelError as exc:
                errors.append(exc)
            wechat.forget_tokens()  # or the cached token would hide the wrong secret
            wrong = dict(config)
            for key in registry.secret_keys(provider):
                if key != "callback_token":
                    wrong[key] = wrong[key] + "-tampered" if provider != "webpush" else ""
            try:
                registry.get_adapter(ChannelKind(kind), provider, wrong).send(message)
            except ChannelError as exc:
                errors.append(exc)
    assert len(errors) == 2
    texts = [caplog.text] + [f"{e} {e!r} {e.detail} {e.code}" for e in errors]
    forbidden = [*secrets, BODY, recipient]
    if provider == "webpush":
        forbidden.append(json.loads(recipient)["keys"]["auth"])
    for text in texts:
        for value in forbidden:
            assert value not in text
    # Errors do not chain to lower-level exceptions that might name a URL with a token in it.
    for exc in errors:
        assert exc.__cause__ is None

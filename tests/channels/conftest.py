"""Fakes of every provider on loopback, started per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from careloop.channels import wechat
from careloop.channels.fakes import (
    FakeAliyun,
    FakePushService,
    FakeSmtp,
    FakeTencent,
    FakeTwilio,
    FakeWeChat,
)
from careloop.channels.port import Message

LINK = "https://portal.example.org/l/Zq3xY7"
BODY = "您有一条随访提醒，请点击查看"


def make_message(**overrides: Any) -> Message:
    values: dict[str, Any] = {
        "to": "+8613800000001",
        "body": f"{BODY} {LINK}",
        "dedupe_key": "occ:101:sms:0",
        "link": LINK,
        "params": {"name": "王女士", "link": LINK},
    }
    values.update(overrides)
    return Message(**values)


@pytest.fixture
def aliyun() -> Iterator[FakeAliyun]:
    with FakeAliyun() as fake:
        yield fake


@pytest.fixture
def tencent() -> Iterator[FakeTencent]:
    with FakeTencent() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def wechat_fake() -> Iterator[FakeWeChat]:
    wechat.forget_tokens()
    with FakeWeChat() as fake:
        yield fake
    wechat.forget_tokens()


@pytest.fixture
def push() -> Iterator[FakePushService]:
    with FakePushService() as fake:
        yield fake


@pytest.fixture
def smtp_fake() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake

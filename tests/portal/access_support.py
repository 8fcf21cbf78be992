"""Helpers for the portal access tests: an organisation with a fake SMS provider, codes read
back from what the fake received, and a settable clock."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from django.test import Client

from careloop.channels.fakes import FakeAliyun
from careloop.channels.models import ChannelConfig
from careloop.kit import clock
from careloop.patients import services as patient_services
from careloop.portal import otp

SIGN_IN = "/portal/sign-in"
CODE = "/portal/sign-in/code"


@pytest.fixture
def portal_sms(world: Any, sms: FakeAliyun, monkeypatch: pytest.MonkeyPatch) -> FakeAliyun:
    """The test organisation's SMS channel, served by the fake Aliyun API; no padding pause."""
    cfg = ChannelConfig(organisation=world.org, kind="sms", provider="aliyun_sms")
    cfg.config = sms.config()
    cfg.save()
    monkeypatch.setitem(otp._typical_send, "seconds", 0.0)
    return sms


def browser(address: str = "10.0.0.1") -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en", REMOTE_ADDR=address)


def ask(client: Client, phone: str, org: str = "test") -> Any:
    return client.post(SIGN_IN, {"phone": phone, "org": org, "next": ""})


def codes_to(sms: FakeAliyun, phone: str) -> list[str]:
    """The codes the fake provider delivered to a number, oldest first."""
    return [
        str(s.extra["params"]["code"])
        for s in sms.sent
        if s.to.endswith(phone) and "code" in s.extra.get("params", {})
    ]


def last_code(sms: FakeAliyun, phone: str) -> str:
    found = codes_to(sms, phone)
    assert found, f"no code was sent to {phone}"
    return found[-1]


def enter(client: Client, code: str, org: str = "test") -> Any:
    return client.post(CODE, {"code": code, "org": org, "next": ""})


def phone_of(patient: Any) -> str:
    return str(patient.phones.order_by("position").first().number)


def add_caregiver(world: Any, patient: Any, phone: str, name: str = "李四") -> Any:
    return patient_services.add_record(
        world.actor("nurse.cardiology"),
        patient.pk,
        "caregivers",
        {"name": name, "relation": "女儿", "phone": phone, "is_emergency_contact": True},
    )


@contextmanager
def frozen(at: datetime) -> Iterator[Any]:
    """The application clock stands at ``at`` (moved with ``.move(seconds)``)."""

    class Handle:
        def __init__(self) -> None:
            self.now = at

        def move(self, seconds: float) -> None:
            from datetime import timedelta

            self.now = self.now + timedelta(seconds=seconds)
            clock.install(clock.FakeClock(self.now, 0.0, time.time()))

    handle = Handle()
    previous = clock.fake()
    clock.install(clock.FakeClock(at, 0.0, time.time()))
    try:
        yield handle
    finally:
        clock.install(previous)


def without_tokens(html: str) -> str:
    """A page's text without its per-request CSRF tokens (to compare two answers)."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'<meta name="csrf-token" content="[^"]+">', "", html)

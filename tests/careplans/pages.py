"""Helpers of the care plan page tests: a frozen clock and signed-in clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.test import Client

from careloop.accounts.models import Staff
from careloop.kit import clock


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Stop the clock at ``at`` (aware) for the pages and services under test."""
    previous = clock.fake()
    clock.install(clock.FakeClock(start=at.astimezone(UTC), speed=0.0, anchor=time.time()))
    try:
        yield
    finally:
        clock.install(previous)


def signed_in(username: str, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    user = Staff.objects.get(username=username)
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    client.force_login(user)
    return client


def text(response: Any) -> str:
    return response.content.decode()

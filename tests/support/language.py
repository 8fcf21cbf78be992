"""Tests that read CareLoop's English texts import ``english_texts`` into their conftest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english_texts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Messages in English, and the world's staff see their pages in English."""
    with translation.override("en"):
        if "world" in request.fixturenames:
            request.getfixturevalue("world")
            from careloop.accounts.models import Staff

            Staff.objects.update(language="en")
        yield

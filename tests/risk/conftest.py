"""Fixtures of the risk tests: a history with signal (tests/risk/generator.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.risk import generator
from tests.support.language import english_texts  # noqa: F401 - autouse: English texts


@pytest.fixture
def history(world: Any) -> generator.History:
    return generator.build(world.org, world.cardio)

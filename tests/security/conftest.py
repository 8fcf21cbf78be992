"""Fixtures of the security tests: a cardiology patient with one row of every kind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.scenario import Scene, build_scene


@pytest.fixture
def scene(world: Any) -> Scene:
    return build_scene(world)

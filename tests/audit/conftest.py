"""Fixtures of the audit tests: the same patient and world as the security tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.scenario import Scene, build_scene


@pytest.fixture
def scene(world: Any) -> Scene:
    return build_scene(world)

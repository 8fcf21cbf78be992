"""Fixtures of the security tests: a cardiology patient with one row of every kind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.scenario import Scene, build_scene


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Argon2 costs ~0.2 s a hash; these tests create hundreds of worlds. Login is still real.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def scene(world: Any) -> Scene:
    return build_scene(world)

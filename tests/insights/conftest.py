"""Fixtures of the insights tests."""

from __future__ import annotations

from tests.support.language import english_texts  # noqa: F401 - autouse: English texts

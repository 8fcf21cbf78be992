"""Time: the single source of "now", always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def age_on(born: date, today: date) -> int:
    """Whole years between born and today."""
    years = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        years -= 1
    return years

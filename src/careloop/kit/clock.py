"""Time: the single source of "now", always timezone-aware UTC.

For demos, training and acceptance checks the clock can be set: ``CARELOOP_FAKE_NOW`` (ISO 8601
with an offset) and optionally ``CARELOOP_FAKE_SPEED`` (how many fake seconds pass per real
second, default 1). Every process sharing the same var directory sees the same time: the real
moment the fake clock started is kept in ``<var>/fake-clock.json`` (or given explicitly in
``CARELOOP_FAKE_ANCHOR`` as a Unix time). Production settings refuse a fake clock.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class FakeClock:
    start: datetime
    speed: float
    anchor: float  # real Unix time at which the fake clock read ``start``

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)


class ClockError(ValueError):
    pass


def parse_fake(value: str, speed: str | None) -> tuple[datetime, float]:
    try:
        start = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ClockError(f"CARELOOP_FAKE_NOW is not an ISO 8601 date-time: {value!r}") from exc
    if start.tzinfo is None:
        raise ClockError("CARELOOP_FAKE_NOW needs a UTC offset, e.g. 2026-03-08T07:55:00+08:00")
    try:
        factor = float(speed) if speed else 1.0
    except ValueError as exc:
        raise ClockError(f"CARELOOP_FAKE_SPEED is not a number: {speed!r}") from exc
    if not 0 <= factor <= 100_000:
        raise ClockError("CARELOOP_FAKE_SPEED must be between 0 and 100000")
    return start.astimezone(UTC), factor


def _shared_anchor(start: datetime, speed: float, var_dir: Path) -> float:
    """The real start time of this fake clock, shared through a file in the var directory."""
    path = var_dir / "fake-clock.json"
    key = {"fake_now": start.isoformat(), "speed": speed}
    try:
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in key} == key:
            return float(saved["anchor"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    anchor = time.time()
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**key, "anchor": anchor}))
        tmp.replace(path)
    except OSError:
        pass  # a read-only var directory: this process keeps its own anchor
    return anchor


def configure_from_env(var_dir: Path | None = None) -> FakeClock | None:
    value = os.environ.get("CARELOOP_FAKE_NOW")
    if not value:
        return None
    start, speed = parse_fake(value, os.environ.get("CARELOOP_FAKE_SPEED"))
    anchor_env = os.environ.get("CARELOOP_FAKE_ANCHOR")
    if anchor_env:
        anchor = float(anchor_env)
    elif var_dir is not None:
        anchor = _shared_anchor(start, speed, var_dir)
    else:
        anchor = time.time()
    return FakeClock(start, speed, anchor)


_fake: FakeClock | None = None


def install(clock: FakeClock | None) -> None:
    global _fake
    _fake = clock


def fake() -> FakeClock | None:
    return _fake


def span(real: timedelta) -> timedelta:
    """How far "now" moves while ``real`` time passes: leases and timeouts measure how long a
    process may take, so on a fast fake clock they cover as much real time as on the real
    one (a frozen clock counts as real speed)."""
    if _fake is None or _fake.speed <= 1:
        return real
    return real * _fake.speed


def utc_now() -> datetime:
    if _fake is not None:
        return _fake.now()
    return datetime.now(UTC)


def age_on(born: date, today: date) -> int:
    """Whole years between born and today."""
    years = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        years -= 1
    return years


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since 1970 (floored), exactly: `int(moment.timestamp())` can round
    x.9999995 up through the float."""
    return (moment - _EPOCH) // _SECOND

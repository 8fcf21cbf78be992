"""The settable clock: every process sharing a var directory sees the same, advancing time."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from careloop.kit import clock


def test_parse_needs_an_offset() -> None:
    with pytest.raises(clock.ClockError, match="offset"):
        clock.parse_fake("2026-03-08T07:55:00", None)
    with pytest.raises(clock.ClockError, match="ISO 8601"):
        clock.parse_fake("tomorrow", None)
    with pytest.raises(clock.ClockError, match="SPEED"):
        clock.parse_fake("2026-03-08T07:55:00+08:00", "fast")


def test_speed_advances_fake_time(monkeypatch: pytest.MonkeyPatch) -> None:
    start, speed = clock.parse_fake("2026-03-08T07:55:00+08:00", "60")
    fake = clock.FakeClock(start, speed, anchor=time.time() - 10)
    now = fake.now()
    # ten real seconds at 60x is ten fake minutes
    assert abs((now - datetime(2026, 3, 8, 0, 5, tzinfo=UTC)).total_seconds()) < 60


def test_processes_share_one_anchor(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from careloop.kit import clock; "
        "c = clock.configure_from_env(Path(sys.argv[1])); print(c.anchor)"
    )
    env = {"CARELOOP_FAKE_NOW": "2026-03-08T07:55:00+08:00", "CARELOOP_FAKE_SPEED": "2"}
    import os

    runs = [
        subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code, str(tmp_path)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert (tmp_path / "fake-clock.json").exists()


def test_utc_now_follows_the_installed_clock() -> None:
    start = datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    clock.install(clock.FakeClock(start, 0.0, anchor=time.time()))
    try:
        assert clock.utc_now() == start
    finally:
        clock.install(None)
    assert clock.utc_now().year >= 2026

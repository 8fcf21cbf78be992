"""The worker's registry of periodic jobs (careloop.kit.periodic)."""

from __future__ import annotations

import pytest

from careloop.kit import periodic


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic, "_jobs", {})


def test_a_job_runs_at_once_then_waits_for_its_turn(registry: None) -> None:
    calls: list[str] = []
    periodic.register("tick", 3600, lambda: calls.append("tick"))
    assert periodic.run_due() == ["tick"]
    assert periodic.run_due() == []  # an hour has not passed
    assert calls == ["tick"]
    assert periodic.run_due(force=True) == ["tick"]
    assert calls == ["tick", "tick"]


def test_a_failing_job_does_not_stop_the_others(registry: None) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("database away")

    periodic.register("broken", 60, broken)
    periodic.register("fine", 60, lambda: calls.append("fine"))
    assert periodic.run_due() == ["broken", "fine"]
    assert calls == ["fine"]


def test_registering_again_replaces_and_nonsense_periods_are_refused(registry: None) -> None:
    periodic.register("job", 60, lambda: None)
    periodic.register("job", 120, lambda: None)
    assert [(j.name, j.every) for j in periodic.jobs()] == [("job", 120.0)]
    with pytest.raises(ValueError):
        periodic.register("never", 0, lambda: None)

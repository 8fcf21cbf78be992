"""Consecutive nights/days: one fire per run, runs broken by bad or empty periods, DST-safe."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import datetime

import pytest

from careloop.rules import Event, Fire, RuleSet

from .support import NEW_YORK, fires, local, rule, run


@pytest.fixture(scope="module")
def default() -> RuleSet:
    return RuleSet.default()


def hr(when: datetime, value: float, **kw: object) -> Event:
    return local("heart_rate", when, value, **kw)  # type: ignore[arg-type]


def night_fires(ruleset: RuleSet, events: list[Event], personal: object = None) -> list[Fire]:
    return [f for f in fires(run(ruleset, events, personal)) if f.rule == "hr-night-high-3"]


class TestNights:
    def test_three_high_nights_give_one_alert_not_three(self, default: RuleSet) -> None:
        events = [hr(datetime(2025, 3, d, 23, 30), 112) for d in range(1, 7)]
        [fire] = night_fires(default, events)
        assert fire.at == events[2].at
        assert fire.values["count"] == 3 and fire.values["days"] == 3
        assert default.text(fire, "en").startswith("Night-time heart rate above 100 /min on 3")

    def test_after_midnight_belongs_to_the_night_that_began_the_evening_before(
        self, default: RuleSet
    ) -> None:
        events = [
            hr(datetime(2025, 3, 1, 22, 15), 108),  # night of 1 March
            hr(datetime(2025, 3, 3, 2, 0), 108),  # 02:00 on the 3rd: night of 2 March
            hr(datetime(2025, 3, 3, 23, 0), 108),  # night of 3 March
        ]
        assert len(night_fires(default, events)) == 1

    def test_two_high_readings_in_one_night_count_as_one_night(self, default: RuleSet) -> None:
        events = [
            hr(datetime(2025, 3, 1, 23, 0), 110),
            hr(datetime(2025, 3, 2, 3, 0), 110),  # still the night of 1 March
            hr(datetime(2025, 3, 2, 23, 0), 110),
        ]
        assert night_fires(default, events) == []

    def test_the_night_ends_at_night_end(self, default: RuleSet) -> None:
        events = [
            hr(datetime(2025, 3, 1, 23, 0), 110),
            hr(datetime(2025, 3, 2, 5, 59), 110),  # 05:xx is still the night of 1 March
            hr(datetime(2025, 3, 2, 6, 0), 110),  # 06:00 is day time: ignored
            hr(datetime(2025, 3, 2, 23, 0), 110),
        ]
        assert night_fires(default, events) == []

    def test_daytime_readings_neither_count_nor_break(self, default: RuleSet) -> None:
        events = [
            hr(datetime(2025, 3, 1, 23, 0), 110),
            hr(datetime(2025, 3, 2, 14, 0), 150),
            hr(datetime(2025, 3, 2, 15, 0), 60),
            hr(datetime(2025, 3, 2, 23, 0), 110),
            hr(datetime(2025, 3, 3, 12, 0), 60),
            hr(datetime(2025, 3, 3, 23, 0), 110),
        ]
        assert len(night_fires(default, events)) == 1

    def test_a_night_with_only_normal_readings_breaks_the_run(self, default: RuleSet) -> None:
        values = {1: 110, 2: 110, 3: 80, 4: 110, 5: 110, 6: 110}
        events = [hr(datetime(2025, 3, d, 23, 0), v) for d, v in values.items()]
        [fire] = night_fires(default, events)
        assert fire.at == events[5].at  # the run 4-5-6, not 1-2-(3)

    def test_a_night_without_readings_breaks_the_run(self, default: RuleSet) -> None:
        events = [hr(datetime(2025, 3, d, 23, 0), 110) for d in (1, 2, 4, 5)]
        assert night_fires(default, events) == []
        events.append(hr(datetime(2025, 3, 6, 23, 0), 110))
        assert len(night_fires(default, events)) == 1

    def test_one_high_reading_makes_the_night_qualify(self, default: RuleSet) -> None:
        events = []
        for d in (1, 2, 3):
            events += [hr(datetime(2025, 3, d, 22, 30), 70), hr(datetime(2025, 3, d, 23, 30), 105)]
        assert len(night_fires(default, events)) == 1

    def test_a_new_run_after_a_break_fires_again(self, default: RuleSet) -> None:
        days = (1, 2, 3, 10, 11, 12)
        events = [hr(datetime(2025, 3, d, 23, 0), 110) for d in days]
        assert [f.at for f in night_fires(default, events)] == [events[2].at, events[5].at]

    def test_personal_limit(self, default: RuleSet) -> None:
        events = [hr(datetime(2025, 3, d, 23, 0), 95) for d in (1, 2, 3)]
        assert night_fires(default, events) == []
        personal = {"hr-night-high-3": {"hr_max": 90}}
        [fire] = night_fires(default, events, personal)
        assert fire.values["hr_max"] == 90


class TestDaylightSaving:
    """New York: 2025-03-09 skips 02:00-03:00; 2025-11-02 repeats 01:00-02:00."""

    def test_spring_forward_night_is_one_night(self, default: RuleSet) -> None:
        events = [
            hr(datetime(2025, 3, 7, 23, 0), 110, tz=NEW_YORK),
            hr(datetime(2025, 3, 9, 3, 30), 110, tz=NEW_YORK),  # night of 8 March, EDT
            hr(datetime(2025, 3, 9, 23, 0), 110, tz=NEW_YORK),
        ]
        assert events[1].hour == 3
        assert len(night_fires(default, events)) == 1

    def test_the_repeated_hour_belongs_to_one_night(self, default: RuleSet) -> None:
        first = hr(datetime(2025, 11, 2, 1, 30, fold=0), 110, tz=NEW_YORK)  # EDT
        second = hr(datetime(2025, 11, 2, 1, 30, fold=1), 110, tz=NEW_YORK)  # EST
        assert second.at - first.at == 3600 and first.day == second.day and first.hour == 1
        events = [
            hr(datetime(2025, 10, 31, 23, 0), 110, tz=NEW_YORK),
            first,
            second,
            hr(datetime(2025, 11, 2, 23, 0), 110, tz=NEW_YORK),
        ]
        [fire] = night_fires(default, events)
        assert fire.at == events[3].at


class TestDays:
    def test_consecutive_days_fire_on_the_event_that_completes_the_run(self) -> None:
        ruleset = rule(
            kind="consecutive",
            event="symptom",
            period="days",
            n=2,
            condition="value >= 7",
            text={"en": "{count} days of severe symptoms"},
        )
        events = [
            local("symptom", datetime(2025, 3, 1, 9), 8),
            local("symptom", datetime(2025, 3, 2, 9), 3),
            local("symptom", datetime(2025, 3, 2, 21), 9),  # any qualifying event, any hour
        ]
        [fire] = fires(run(ruleset, events))
        assert fire.at == events[2].at
        assert ruleset.text(fire, "en") == "2 days of severe symptoms"

    def test_night_window_that_does_not_cross_midnight(self) -> None:
        ruleset = rule(
            kind="consecutive",
            event="heart_rate",
            period="nights",
            n=2,
            night_start=0,
            night_end=5,
            condition="value > 100",
        )
        events = [
            local("heart_rate", datetime(2025, 3, 1, 23), 120),  # outside 00-05: ignored
            local("heart_rate", datetime(2025, 3, 2, 1), 120),
            local("heart_rate", datetime(2025, 3, 3, 4), 120),
        ]
        [fire] = fires(run(ruleset, events))
        assert fire.at == events[2].at

    def test_resolve_clears_an_open_run_alert(self) -> None:
        ruleset = rule(
            kind="consecutive",
            event="heart_rate",
            period="days",
            n=2,
            condition="value > 100",
            resolve="value < 80",
        )
        events = [
            local("heart_rate", datetime(2025, 3, 1, 9), 120),
            local("heart_rate", datetime(2025, 3, 2, 9), 120),
            local("heart_rate", datetime(2025, 3, 2, 10), 90),
            local("heart_rate", datetime(2025, 3, 2, 11), 70),
        ]
        out = run(ruleset, events)
        assert [type(o).__name__ for o in out] == ["Fire", "Clear"]

"""Trends over local days, counts within a time window, and missed doses."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from careloop.rules import Event, Fire, RuleSet

from .support import DAY, HOUR, fires, local, rule, run

D0 = datetime(2025, 3, 1, 8, 0)


@pytest.fixture(scope="module")
def default() -> RuleSet:
    return RuleSet.default()


def of(rule_code: str, outputs: list) -> list[Fire]:  # type: ignore[type-arg]
    return [f for f in fires(outputs) if f.rule == rule_code]


def daily_bp(systolics: Sequence[float], start: datetime = D0) -> list[Event]:
    return [local("bp", start + timedelta(days=i), s, 80) for i, s in enumerate(systolics)]


class TestTrend:
    def test_week_on_week_rise_of_ten_fires_once_the_means_differ_enough(
        self, default: RuleSet
    ) -> None:
        events = daily_bp([130] * 7 + [142] * 14)
        [fire] = of("bp-trend-up", run(default, events))
        # Day 13: the last 7 days hold one 130 and six 142s (mean 140.3), the 7 before all 130.
        assert fire.at == events[12].at
        assert fire.values["previous"] == 130
        assert fire.values["mean"] == pytest.approx((130 + 6 * 142) / 7)
        assert fire.values["change"] == pytest.approx(fire.values["mean"] - 130)
        assert fire.values["count"] == 7 and fire.values["days"] == 7
        assert default.text(fire, "en") == (
            "Mean systolic pressure over the last 7 days 140 mmHg, up 10 mmHg from the 7 days "
            "before (130)"
        )

    def test_steady_pressure_never_fires(self, default: RuleSet) -> None:
        assert of("bp-trend-up", run(default, daily_bp([135] * 60))) == []

    def test_too_few_readings_in_a_window_do_not_count(self, default: RuleSet) -> None:
        # Two readings a week: the earlier window never has min_count (3) readings.
        events = [
            local("bp", D0 + timedelta(days=d), s, 80)
            for d, s in [(0, 120), (3, 120), (8, 150), (10, 150), (12, 150)]
        ]
        assert of("bp-trend-up", run(default, events)) == []

    def test_several_readings_a_day_are_averaged_by_count(self, default: RuleSet) -> None:
        events = []
        for day in range(14):
            for hour, base in ((7, 0), (19, 4)):
                value = (130 if day < 7 else 141) + base
                events.append(local("bp", D0 + timedelta(days=day, hours=hour - 8), value, 80))
        [fire] = of("bp-trend-up", run(default, events))
        assert fire.values["previous"] == 132  # (130 + 134) / 2, every reading counted once

    def test_state_keeps_at_most_two_windows_of_days(self, default: RuleSet) -> None:
        state, _ = default.replay(daily_bp([130 + (i % 5) for i in range(200)]))
        index = default.codes.index("bp-trend-up")
        buckets = state.slots[index][2]
        assert len(buckets) <= 14
        assert buckets[-1][0] - buckets[0][0] < 14

    def test_dedupe_holds_a_continuing_rise(self, default: RuleSet) -> None:
        events = daily_bp([120] * 7 + [135] * 7 + [150] * 7 + [165] * 7)
        fired = of("bp-trend-up", run(default, events))
        gaps = [b.at - a.at for a, b in zip(fired, fired[1:], strict=False)]
        assert len(fired) >= 2 and all(g >= 7 * DAY for g in gaps)

    def test_negative_rise_watches_for_a_fall(self) -> None:
        ruleset = rule(
            kind="trend", event="weight", rise=-2, window_days=3, min_count=2, dedupe="7d"
        )
        events = [
            local("weight", D0 + timedelta(days=i), w)
            for i, w in enumerate([60, 60, 60, 57, 57, 57])
        ]
        assert len(fires(run(ruleset, events))) == 1

    def test_trend_of_value2(self) -> None:
        ruleset = rule(kind="trend", event="bp", field="value2", rise=5, window_days=2, min_count=2)
        events = [
            local("bp", D0 + timedelta(days=i), 120, d) for i, d in enumerate([80, 80, 86, 86])
        ]
        assert len(fires(run(ruleset, events))) == 1

    def test_readings_without_the_field_are_skipped(self) -> None:
        ruleset = rule(kind="trend", event="bp", field="value2", rise=5, window_days=1, min_count=1)
        events = [
            local("bp", D0, 120, 80),
            local("bp", D0 + timedelta(days=1), 120, None),
            local("bp", D0 + timedelta(days=1, hours=1), 120, float("inf")),
        ]
        state, out = ruleset.replay(events)
        assert out == [] and state.slots[0][2] == [[events[0].day, 80, 1]]

    def test_trend_condition_and_resolve_see_the_recent_mean(self) -> None:
        ruleset = rule(
            kind="trend",
            event="bp",
            rise=10,
            window_days=2,
            min_count=2,
            condition="mean >= 140",
            resolve="mean < 130",
        )
        events = daily_bp([120, 120, 132, 132])  # a rise, but to a mean under 140
        assert fires(run(ruleset, events)) == []
        events = daily_bp([128, 128, 145, 145, 125, 125, 125])
        out = run(ruleset, events)
        assert [type(o).__name__ for o in out] == ["Fire", "Clear"]

    def test_weight_gain_in_heart_failure(self, default: RuleSet) -> None:
        events = [
            local("weight", D0 + timedelta(days=i), w)
            for i, w in enumerate([70, 70, 70, 72.5, 72.5, 72.5])
        ]
        [fire] = of("weight-gain-hf", run(default, events))
        assert fire.at == events[5].at
        assert default.text(fire, "zh-hans") == (
            "近 3 天体重均值 72.5 kg，较前 3 天增加 2.5 kg，警惕液体潴留"
        )


class TestCountWindow:
    def test_second_crisis_reading_within_24h_fires(self, default: RuleSet) -> None:
        events = [local("bp", D0, 182, 90), local("bp", D0 + timedelta(hours=20), 150, 112)]
        [fire] = of("bp-high-twice", run(default, events))
        assert fire.at == events[1].at and fire.values["count"] == 2
        assert fire.values["hours"] == 24
        assert default.text(fire, "en") == (
            "2 blood pressure readings ≥ 180/110 mmHg within 24 h; latest 150/112"
        )

    def test_window_is_inclusive(self, default: RuleSet) -> None:
        inside = [local("bp", D0, 182, 90), local("bp", D0 + timedelta(hours=24), 182, 90)]
        outside = [
            local("bp", D0, 182, 90),
            local("bp", D0 + timedelta(seconds=24 * HOUR + 1), 182, 90),
        ]
        assert len(of("bp-high-twice", run(default, inside))) == 1
        assert of("bp-high-twice", run(default, outside)) == []

    def test_readings_below_the_condition_do_not_count(self, default: RuleSet) -> None:
        events = [
            local("bp", D0 + timedelta(hours=h), s, 90) for h, s in [(0, 182), (1, 170), (2, 175)]
        ]
        assert of("bp-high-twice", run(default, events)) == []

    def test_the_window_slides(self) -> None:
        ruleset = rule(
            kind="count_window", event="bp", condition="value >= 180", count=2, window="1d"
        )
        events = [local("bp", D0 + timedelta(hours=h), 185, 90) for h in (0, 1, 2, 30)]
        # Without a dedupe window each reading with another one in the 24 h before it fires.
        assert [f.at for f in fires(run(ruleset, events))] == [events[1].at, events[2].at]

    def test_dedupe_quietens_a_run(self) -> None:
        ruleset = rule(
            kind="count_window",
            event="bp",
            condition="value >= 180",
            count=2,
            window="1d",
            dedupe="12h",
        )
        events = [local("bp", D0 + timedelta(hours=h), 185, 90) for h in (0, 1, 2, 14)]
        assert [f.at for f in fires(run(ruleset, events))] == [events[1].at, events[3].at]

    def test_state_holds_at_most_count_times(self) -> None:
        ruleset = rule(kind="count_window", event="bp", count=3, window="1d", dedupe="30d")
        state, out = ruleset.replay(
            [local("bp", D0 + timedelta(minutes=m), 120, 80) for m in range(500)]
        )
        assert len(out) == 1 and len(state.slots[0][2]) <= 3


class TestMissedDoses:
    def dose(self, day: int, context: str) -> Event:
        return local(
            "dose",
            D0 + timedelta(days=day),
            0 if context in ("skipped", "missed") else 1,
            context=context,
        )

    def test_three_missed_or_skipped_in_7_days(self, default: RuleSet) -> None:
        events = [
            self.dose(0, "missed"),
            self.dose(1, "taken"),
            self.dose(2, "late"),
            self.dose(3, "skipped"),
            self.dose(6, "missed"),
        ]
        [fire] = of("missed-doses", run(default, events))
        assert fire.at == events[4].at and fire.values["count"] == 3 and fire.values["days"] == 7
        assert default.text(fire, "zh-hans") == "7 天内漏服或跳过 3 次用药"

    def test_spread_over_more_than_7_days_does_not_fire(self, default: RuleSet) -> None:
        events = [self.dose(0, "missed"), self.dose(4, "missed"), self.dose(8, "missed")]
        assert of("missed-doses", run(default, events)) == []

    def test_late_and_taken_doses_never_count(self, default: RuleSet) -> None:
        events = [self.dose(i, c) for i, c in enumerate(["late", "taken", "late", "late"])]
        assert of("missed-doses", run(default, events)) == []


class TestPrefilter:
    def test_count_rule_becomes_a_sql_predicate(self, default: RuleSet) -> None:
        found = default.prefilter("bp-high-twice")
        assert found is not None
        sql, args = found
        assert sql == "(value >= %s) OR (value2 >= %s)" and args == [180.0, 110.0]

    def test_rules_that_see_every_event_are_not_filtered(self, default: RuleSet) -> None:
        # bp-crisis resolves on a lower reading, which the condition would filter out.
        assert default.prefilter("bp-crisis") is None
        assert default.prefilter("hr-night-high-3") is None

    def test_untranslatable_conditions_are_not_filtered(self) -> None:
        ruleset = rule(
            kind="count_window", event="bp", condition="value * 2 >= 300", count=2, window="1d"
        )
        assert ruleset.prefilter("r") is None

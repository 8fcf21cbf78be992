"""Threshold rules: population defaults, personal thresholds, dedupe windows, auto-resolve."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from careloop.rules import Clear, Event, Fire, RuleSet

from .support import DAY, HOUR, clears, fires, local, rule, run

T0 = datetime(2025, 3, 1, 8, 0)


@pytest.fixture(scope="module")
def default() -> RuleSet:
    return RuleSet.default()


def bp(hours: float, sys: float, dia: float, **kw: object) -> Event:
    return local("bp", T0 + timedelta(hours=hours), sys, dia, **kw)  # type: ignore[arg-type]


def crisis(outputs: list[Fire | Clear]) -> list[Fire | Clear]:
    return [o for o in outputs if o.rule == "bp-crisis"]


class TestFires:
    def test_crisis_reading_fires_with_everything_the_alert_needs(self, default: RuleSet) -> None:
        event = bp(0, 186, 104, patient=42, ref=9001)
        [fire] = crisis(run(default, [event]))
        assert isinstance(fire, Fire)
        assert fire.rule == "bp-crisis" and fire.patient_id == 42 and fire.at == event.at
        assert fire.key == f"bp-crisis:42:{event.at}"
        assert (fire.severity, fire.priority, fire.route, fire.action) == (
            "critical",
            "urgent",
            "doctor",
            "alert",
        )
        assert fire.sla == 900 and fire.stage == "" and fire.ref == 9001
        assert fire.values["value"] == 186 and fire.values["value2"] == 104
        assert fire.values["sys"] == 180 and fire.values["dia"] == 110
        assert default.text(fire, "en") == (
            "Blood pressure 186/104 mmHg at crisis level (≥ 180/110)"
        )
        assert default.text(fire, "zh-hans") == "血压 186/104 mmHg，达到危急值（≥180/110）"

    @pytest.mark.parametrize(
        ("sys", "dia", "fired"),
        [(179, 109, False), (180, 60, True), (120, 110, True), (179.9, 109.9, False)],
    )
    def test_boundaries_are_inclusive(
        self, default: RuleSet, sys: float, dia: float, fired: bool
    ) -> None:
        assert bool(crisis(run(default, [bp(0, sys, dia)]))) is fired

    def test_events_no_rule_listens_to_do_nothing(self, default: RuleSet) -> None:
        state = default.new_state()
        before = state.to_json()
        assert default.feed(state, local("steps", T0, 99999)) == []
        assert state.to_json() == before

    def test_when_guard_filters_events(self) -> None:
        ruleset = rule(
            kind="threshold", event="glucose", condition="value >= 7", when="context == 'fasting'"
        )
        fasting = local("glucose", T0, 8.0, context="fasting")
        after_meal = local("glucose", T0, 9.0, context="postprandial")
        assert len(fires(run(ruleset, [after_meal]))) == 0
        assert len(fires(run(ruleset, [fasting]))) == 1


class TestPersonalThresholds:
    def test_personal_threshold_overrides_the_population_default(self, default: RuleSet) -> None:
        event = bp(0, 165, 95)
        assert crisis(run(default, [event])) == []
        personal = {"bp-crisis": {"sys": 160}}
        [fire] = crisis(run(default, [event], personal))
        assert isinstance(fire, Fire)
        # The text shows the threshold that applied to this patient.
        assert fire.values["sys"] == 160 and fire.values["dia"] == 110
        assert default.text(fire, "en").endswith("(≥ 160/110)")

    def test_personal_threshold_can_be_higher(self, default: RuleSet) -> None:
        personal = {"bp-crisis": {"sys": 200, "dia": 120}}
        assert crisis(run(default, [bp(0, 190, 100)], personal)) == []

    def test_only_the_named_rule_is_personalised(self, default: RuleSet) -> None:
        personal = {"bp-high-twice": {"sys": 150}}
        assert crisis(run(default, [bp(0, 165, 95)], personal)) == []

    def test_patients_do_not_share_personal_thresholds(self, default: RuleSet) -> None:
        states = {1: default.new_state(), 2: default.new_state()}
        events = [bp(0, 165, 95, patient=1), bp(0, 165, 95, patient=2)]
        out = default.feed_many(states, events, {1: {"bp-crisis": {"sys": 160}}})
        assert [f.patient_id for f in crisis(out)] == [1]

    def test_unusable_personal_values_fall_back_to_the_default(self, default: RuleSet) -> None:
        for bad in ("160", None, float("nan"), True, [160]):
            personal = {"bp-crisis": {"sys": bad}}
            assert crisis(run(default, [bp(0, 165, 95)], personal)) == [], bad  # type: ignore[dict-item]
            assert len(crisis(run(default, [bp(0, 181, 95)], personal))) == 1

    def test_personal_condition_cache_gives_the_same_results(self, default: RuleSet) -> None:
        for limit in (150, 160, 170, 150, 160):
            fired = crisis(run(default, [bp(0, 165, 95)], {"bp-crisis": {"sys": limit}}))
            assert bool(fired) is (165 >= limit)


class TestDedupeAndResolve:
    def test_no_second_fire_within_the_dedupe_window(self, default: RuleSet) -> None:
        out = crisis(run(default, [bp(0, 190, 100), bp(1, 195, 100), bp(11.9, 200, 100)]))
        assert len(out) == 1

    def test_unresolved_crisis_fires_again_once_the_window_passed(self, default: RuleSet) -> None:
        out = crisis(run(default, [bp(0, 190, 100), bp(6, 170, 100), bp(12, 190, 100)]))
        assert [type(o) for o in out] == [Fire, Fire]
        assert out[1].at - out[0].at == 12 * HOUR

    def test_resolving_reading_clears_once_and_rearms(self, default: RuleSet) -> None:
        events = [
            bp(0, 190, 100),
            bp(1, 150, 90),  # resolves (< 160 and < 100)
            bp(2, 140, 85),  # nothing open: no second Clear
            bp(3, 185, 100),  # re-armed: a new episode fires within the old window
        ]
        out = crisis(run(default, events))
        assert [type(o) for o in out] == [Fire, Clear, Fire]
        clear = out[1]
        assert isinstance(clear, Clear)
        assert (clear.rule, clear.patient_id, clear.at, clear.stage) == (
            "bp-crisis",
            1,
            events[1].at,
            "",
        )

    def test_reading_between_crisis_and_resolve_changes_nothing(self, default: RuleSet) -> None:
        out = crisis(run(default, [bp(0, 190, 100), bp(1, 170, 105)]))
        assert len(out) == 1

    def test_resolve_without_dedupe_waits_for_the_resolving_event(self) -> None:
        ruleset = rule(
            kind="threshold", event="spo2", condition="value < 90", resolve="value >= 94"
        )
        events = [
            local("spo2", T0 + timedelta(days=d), v)
            for d, v in [(0, 85), (5, 86), (6, 95), (7, 85)]
        ]
        out = run(ruleset, events)
        assert [type(o) for o in out] == [Fire, Clear, Fire]

    def test_without_dedupe_or_resolve_every_reading_fires(self) -> None:
        ruleset = rule(kind="threshold", event="spo2", condition="value < 90")
        events = [local("spo2", T0 + timedelta(minutes=m), 85) for m in range(3)]
        assert len(fires(run(ruleset, events))) == 3

    def test_dedupe_is_per_patient(self, default: RuleSet) -> None:
        states: dict = {}
        out = default.feed_many(states, [bp(0, 190, 100, patient=1), bp(0.5, 190, 100, patient=2)])
        assert [f.patient_id for f in crisis(out)] == [1, 2]
        assert set(states) == {1, 2}

    def test_dedupe_window_is_measured_in_effective_time(self) -> None:
        ruleset = rule(kind="threshold", event="spo2", condition="value < 90", dedupe="1d")
        events = [local("spo2", T0 + timedelta(seconds=s), 85) for s in (0, DAY - 1, DAY)]
        out = fires(run(ruleset, events))
        assert [f.at - events[0].at for f in out] == [0, DAY]
        assert clears(run(ruleset, events)) == []

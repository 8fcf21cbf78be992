"""Absence rules: judged by a sweep with explicit times; one alert per gap, however often."""

from __future__ import annotations

import pytest

from careloop.rules import RuleSet

from .support import DAY, rule


@pytest.fixture(scope="module")
def default() -> RuleSet:
    return RuleSet.default()


ENROLLED = 1_740_000_000


class TestAbsent:
    def test_never_measured_counts_from_enrolment(self, default: RuleSet) -> None:
        code = "glucose-absent-3d"
        assert not default.absent(
            code, last_at=None, expected_since=ENROLLED, now=ENROLLED + 3 * DAY - 1
        )
        assert default.absent(code, last_at=None, expected_since=ENROLLED, now=ENROLLED + 3 * DAY)

    def test_counts_from_the_last_reading(self, default: RuleSet) -> None:
        last = ENROLLED + 10 * DAY
        kw = {"last_at": last, "expected_since": ENROLLED}
        assert not default.absent("glucose-absent-3d", now=last + 2 * DAY, **kw)
        assert default.absent("glucose-absent-3d", now=last + 3 * DAY, **kw)
        assert not default.absent("bp-absent-7d", now=last + 6 * DAY, **kw)
        assert default.absent(default.rule("bp-absent-7d"), now=last + 7 * DAY, **kw)

    def test_readings_before_enrolment_do_not_shorten_the_grace(self, default: RuleSet) -> None:
        kw = {"last_at": ENROLLED - 30 * DAY, "expected_since": ENROLLED}
        assert not default.absent("glucose-absent-3d", now=ENROLLED + 2 * DAY, **kw)
        assert RuleSet.gap_start(ENROLLED - 30 * DAY, ENROLLED) == ENROLLED

    def test_disabled_rule_is_never_absent(self) -> None:
        ruleset = rule(kind="absence", event="bp", days=1, enabled=False)
        assert ruleset.absence_rules() == []
        assert not ruleset.absent("r", last_at=None, expected_since=0, now=100 * DAY)

    def test_only_absence_rules(self, default: RuleSet) -> None:
        with pytest.raises(ValueError, match="not an absence rule"):
            default.absent("bp-crisis", last_at=None, expected_since=0, now=0)
        with pytest.raises(ValueError, match="not an absence rule"):
            default.absence_fire("bp-crisis", 1, 0, 0)

    def test_absence_rules_are_not_fed(self, default: RuleSet) -> None:
        assert "bp-absent-7d" not in {f.rule for f in default.replay([])[1]}


class TestAbsenceFire:
    def test_one_gap_one_key_however_often_the_sweep_runs(self, default: RuleSet) -> None:
        gap = ENROLLED + 5 * DAY
        sweeps = [gap + 3 * DAY + h * 3600 for h in range(0, 48, 6)]
        fired = [default.absence_fire("glucose-absent-3d", 7, gap, now) for now in sweeps]
        assert {f.key for f in fired} == {f"glucose-absent-3d:7:{gap}"}
        assert [f.at for f in fired] == sweeps

    def test_a_new_gap_has_a_new_key(self, default: RuleSet) -> None:
        one = default.absence_fire("bp-absent-7d", 7, ENROLLED, ENROLLED + 8 * DAY)
        two = default.absence_fire("bp-absent-7d", 7, ENROLLED + 9 * DAY, ENROLLED + 17 * DAY)
        assert one.key != two.key

    def test_fields_and_text(self, default: RuleSet) -> None:
        fire = default.absence_fire("glucose-absent-3d", 7, ENROLLED, ENROLLED + 4 * DAY + 5)
        assert (fire.severity, fire.priority, fire.route, fire.sla) == (
            "moderate",
            "routine",
            "nurse",
            DAY,
        )
        assert fire.values == {"days": 3, "elapsed": 4}
        assert default.text(fire, "zh-hans") == "已 4 天未上传血糖（应每日监测）"
        assert default.text(fire, "en") == "No glucose reading for 4 days (expected daily)"

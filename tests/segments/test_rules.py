"""The rule language, and the shipped segments' rules on hand-built facts (their boundaries)."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.segments import rules, services


def shipped(code: str) -> rules.Rule:
    spec = services.read_default(services.DATA_DIR / f"{code}.json")
    return rules.parse(spec["rule"])


def facts(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {name: None for name in rules.FACTS}
    base.update(
        {
            "missed_doses_7d": 0,
            "conditions": [],
            "condition_count": 0,
            "has_hypertension": False,
            "has_diabetes": False,
            "reminders_sent_30d": 0,
            "reads_30d": 0,
            "questionnaires_30d": 0,
            "readings_30d": 0,
        }
    )
    base.update(values)
    return base


class TestTheLanguage:
    def test_comparisons_logic_lists_and_arithmetic(self) -> None:
        f = facts(pdc=0.5, last_sbp=150, last_dbp=95, conditions=["I10", "E11"], sex="female")
        assert rules.parse("pdc < 0.6 and last_sbp >= 150").holds(f)
        assert not rules.parse("pdc < 0.6 and last_sbp > 150").holds(f)
        assert rules.parse('"E11" in conditions and sex == "female"').holds(f)
        assert rules.parse('sex in ("male", "unknown")').holds(f) is False
        assert rules.parse("not (last_sbp - last_dbp < 50)").holds(f)
        assert rules.parse("130 <= last_sbp < 160").holds(f)

    def test_a_missing_fact_makes_every_comparison_false(self) -> None:
        f = facts()
        assert not rules.parse("last_sbp >= 160").holds(f)
        assert not rules.parse("last_sbp < 160").holds(f)
        assert rules.parse("not last_sbp >= 160").holds(f)
        assert not rules.parse("last_sbp / 0 > 1").holds(facts(last_sbp=150))

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("", "empty"),
            ("bmi > 30", "Unknown fact bmi"),
            ("__import__('os').system('true')", "Function calls are not allowed"),
            ("pdc.real > 0", "Attribute access is not allowed"),
            ("conditions[0] == 'I10'", "Indexing is not allowed"),
            ("pdc < ", "cannot be read"),
            ("pdc in last_sbp", "'in' needs a list"),
            ("[x for x in conditions]", "not allowed"),
            ("pdc ** 2 > 1", "Only + - * /"),
        ],
    )
    def test_refuses_with_a_clear_message(self, source: str, message: str) -> None:
        with pytest.raises(rules.RuleError) as caught:
            rules.parse(source)
        assert message in str(caught.value)

    def test_a_rule_longer_than_the_limit_is_refused(self) -> None:
        with pytest.raises(rules.RuleError):
            rules.parse(" or ".join(["pdc < 0.5"] * 200))


class TestHighRiskNonAdherent:
    rule = shipped("high_risk_non_adherent")

    @pytest.mark.parametrize(("pdc", "inside"), [(0.59, True), (0.5999, True), (0.60, False)])
    def test_pdc_below_0_6(self, pdc: float, inside: bool) -> None:
        assert self.rule.holds(facts(pdc=pdc)) is inside

    @pytest.mark.parametrize(("missed", "inside"), [(2, False), (3, True), (7, True)])
    def test_three_missed_doses_in_seven_days(self, missed: int, inside: bool) -> None:
        assert self.rule.holds(facts(missed_doses_7d=missed, pdc=0.9)) is inside

    @pytest.mark.parametrize(
        ("sbp", "dbp", "inside"),
        [(160, 80, True), (130, 100, True), (160, 100, True), (159, 99, False)],
    )
    def test_last_blood_pressure_160_over_100(self, sbp: int, dbp: int, inside: bool) -> None:
        assert self.rule.holds(facts(last_sbp=sbp, last_dbp=dbp)) is inside

    def test_a_high_risk_score_alone(self) -> None:
        assert self.rule.holds(facts(risk_score=0.5))
        assert not self.rule.holds(facts(risk_score=0.49))

    def test_nobody_without_facts(self) -> None:
        assert not self.rule.holds(facts())


class TestChronicStable:
    rule = shipped("chronic_stable")

    def test_controlled_adherent_hypertension(self) -> None:
        f = facts(has_hypertension=True, pdc=0.85, last_sbp=132, last_dbp=82)
        assert self.rule.holds(f)

    @pytest.mark.parametrize(
        "change",
        [
            {"has_hypertension": False},
            {"pdc": 0.79},
            {"last_sbp": 140},
            {"last_dbp": 90},
            {"missed_doses_7d": 3},
            {"last_sbp": None, "last_dbp": None},
        ],
    )
    def test_any_lapse_leaves_it(self, change: dict[str, Any]) -> None:
        f = facts(has_hypertension=True, pdc=0.85, last_sbp=132, last_dbp=82)
        assert not self.rule.holds({**f, **change})

    def test_acknowledged_reminders_stand_in_for_missing_fills(self) -> None:
        f = facts(has_diabetes=True, ack_rate_30d=0.8, last_sbp=120, last_dbp=70)
        assert self.rule.holds(f)


class TestPostOperative:
    rule = shipped("post_operative")

    @pytest.mark.parametrize(("days", "inside"), [(0, True), (90, True), (91, False)])
    def test_surgical_discharge_within_90_days(self, days: int, inside: bool) -> None:
        assert self.rule.holds(facts(days_since_surgical_discharge=days)) is inside

    def test_no_surgery_no_segment(self) -> None:
        assert not self.rule.holds(facts())


class TestHighlyEngaged:
    rule = shipped("highly_engaged")

    def test_answers_reminders_and_reads(self) -> None:
        f = facts(ack_rate_30d=0.95, reminders_sent_30d=20, reads_30d=2)
        assert self.rule.holds(f)
        assert not self.rule.holds({**f, "ack_rate_30d": 0.89})
        assert not self.rule.holds({**f, "reminders_sent_30d": 9})
        assert not self.rule.holds({**f, "reads_30d": 1})
        assert self.rule.holds({**f, "reads_30d": 0, "questionnaires_30d": 1})

"""Adverse reaction reports, questionnaires and the public-health follow-up rule."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from careloop.rules import Clear, Event, Fire, RuleSet

from .support import fires, local, rule, run

T0 = datetime(2025, 3, 1, 9, 0)


@pytest.fixture(scope="module")
def default() -> RuleSet:
    return RuleSet.default()


def of(code: str, outputs: list[Fire | Clear]) -> list[Fire | Clear]:
    return [o for o in outputs if o.rule == code]


class TestAdverseReaction:
    def adr(self, minutes: int, severity: int) -> Event:
        return local("adr", T0 + timedelta(minutes=minutes), severity, context="rash")

    def test_every_report_fires_with_the_rule_priority(self, default: RuleSet) -> None:
        [fire] = fires(run(default, [self.adr(0, 1)]))
        assert (fire.rule, fire.severity, fire.priority, fire.route) == (
            "adr-reported",
            "high",
            "urgent",
            "doctor",
        )
        assert default.text(fire, "en") == "Adverse drug reaction reported: rash (severity 1/4)"

    @pytest.mark.parametrize(("severity", "priority"), [(2, "urgent"), (3, "asap"), (4, "asap")])
    def test_severe_reports_escalate(self, default: RuleSet, severity: int, priority: str) -> None:
        [fire] = fires(run(default, [self.adr(0, severity)]))
        assert fire.priority == priority
        assert fire.severity == ("critical" if severity >= 3 else "high")

    def test_dedupe_hides_repeats_but_never_an_escalation(self, default: RuleSet) -> None:
        minutes_severity = [(0, 1), (10, 2), (20, 3), (30, 4), (79, 1), (80, 1)]
        events = [self.adr(m, s) for m, s in minutes_severity]
        out = fires(run(default, events))
        # The escalated fire at 20 min starts a new hour: 30 (not more severe) and 79 are held.
        assert [(f.at - events[0].at) // 60 for f in out] == [0, 20, 80]
        assert [f.priority for f in out] == ["urgent", "asap", "urgent"]

    def test_urgent_at_is_configurable(self) -> None:
        ruleset = rule(kind="adverse_reaction", urgent_at=2, urgent_priority="stat")
        [fire] = fires(run(ruleset, [self.adr(0, 2)]))
        assert fire.priority == "stat" and fire.severity == "high"


class TestQuestionnaire:
    def phq9(self, items: tuple[int, ...], instrument: str = "phq9") -> Event:
        scores = tuple(float(i) for i in items)
        return local("questionnaire", T0, sum(scores), context=instrument, items=scores)

    def test_item_9_positive_goes_to_the_on_call_doctor_now(self, default: RuleSet) -> None:
        [fire] = of("phq9-item9", run(default, [self.phq9((0,) * 8 + (1,))]))
        assert isinstance(fire, Fire)
        assert (fire.severity, fire.priority, fire.route, fire.sla) == (
            "critical",
            "stat",
            "on_call",
            900,
        )
        assert fire.values["instrument"] == "phq9"
        assert default.text(fire, "zh-hans").startswith("PHQ-9 第 9 题阳性")

    def test_item_9_zero_does_not_fire(self, default: RuleSet) -> None:
        assert of("phq9-item9", run(default, [self.phq9((3,) * 8 + (0,))])) == []

    def test_severe_total(self, default: RuleSet) -> None:
        out = run(default, [self.phq9((3,) * 7 + (0, 0))])
        assert [o.rule for o in out] == ["phq9-severe"]
        both = run(default, [self.phq9((3,) * 9)])
        assert sorted(o.rule for o in both) == ["phq9-item9", "phq9-severe"]

    def test_other_instruments_are_not_judged_by_phq9_rules(self, default: RuleSet) -> None:
        assert run(default, [self.phq9((3,) * 9, instrument="gad7")]) == []

    def test_an_incomplete_answer_set_never_fires_on_a_missing_item(self, default: RuleSet) -> None:
        assert of("phq9-item9", run(default, [self.phq9((3, 3, 3))])) == []


class TestPublicHealth:
    def bp(self, days: int, sys: float, dia: float) -> Event:
        return local("bp", T0 + timedelta(days=days), sys, dia)

    def test_home_readings_are_not_follow_up_readings(self, default: RuleSet) -> None:
        events = [
            local("bp", T0 + timedelta(days=d), 150, 95, source=src)
            for d, src in ((0, "device"), (1, "patient"))
        ]
        assert of("ph-bp-followup", run(default, events)) == []

    def test_followup_then_referral_then_nothing_then_cleared(self, default: RuleSet) -> None:
        events = [
            self.bp(0, 150, 85),  # 1st uncontrolled: followup task
            self.bp(14, 145, 92),  # 2nd in a row: referral
            self.bp(28, 150, 95),  # 3rd: nothing new
            self.bp(42, 130, 80),  # controlled: both stages cleared
            self.bp(56, 142, 80),  # uncontrolled after a controlled one: followup again
        ]
        out = of("ph-bp-followup", run(default, events))
        summary = [(type(o).__name__, o.stage, o.at) for o in out]
        assert summary == [
            ("Fire", "followup", events[0].at),
            ("Fire", "referral", events[1].at),
            ("Clear", "followup", events[3].at),
            ("Clear", "referral", events[3].at),
            ("Fire", "followup", events[4].at),
        ]
        followup, referral = out[0], out[1]
        assert isinstance(followup, Fire) and isinstance(referral, Fire)
        assert followup.key == f"ph-bp-followup:followup:1:{events[0].at}"
        assert referral.key == f"ph-bp-followup:referral:1:{events[1].at}"
        assert (followup.action, followup.sla, followup.route) == ("task", 14 * 86400, "nurse")
        assert (referral.action, referral.priority, referral.route, referral.severity) == (
            "task",
            "urgent",
            "doctor",
            "high",
        )
        assert (
            default.text(followup, "zh-hans")
            == "血压控制不满意（150/85 mmHg）：调整用药，2 周内随访"
        )
        assert default.text(referral, "en").startswith("Blood pressure uncontrolled twice in a row")

    def test_controlled_after_followup_clears_only_the_followup(self, default: RuleSet) -> None:
        out = of("ph-bp-followup", run(default, [self.bp(0, 160, 85), self.bp(14, 120, 80)]))
        assert [(type(o).__name__, o.stage) for o in out] == [
            ("Fire", "followup"),
            ("Clear", "followup"),
        ]

    def test_controlled_readings_alone_emit_nothing(self, default: RuleSet) -> None:
        assert of("ph-bp-followup", run(default, [self.bp(d, 125, 80) for d in range(5)])) == []

    def test_glucose_rule_judges_fasting_readings_only(self, default: RuleSet) -> None:
        events = [
            local("glucose", T0, 9.0, context="postprandial"),
            local("glucose", T0 + timedelta(days=1), 7.4, context="fasting"),
            local("glucose", T0 + timedelta(days=2), 11.0, context="random"),
            local("glucose", T0 + timedelta(days=3), 7.0, context="fasting"),
        ]
        out = of("ph-glucose-followup", run(default, events))
        assert [(o.stage, o.at) for o in out] == [
            ("followup", events[1].at),
            ("referral", events[3].at),
        ]

    def test_referral_gap(self) -> None:
        ruleset = rule(
            kind="public_health",
            event="bp",
            uncontrolled="value >= 140",
            referral_gap="7d",
        )
        events = [self.bp(d, 150, 80) for d in (0, 1, 3, 8)]
        out = run(ruleset, events)
        assert [(o.stage, o.at) for o in out] == [
            ("followup", events[0].at),
            ("referral", events[3].at),
        ]

    def test_personal_target(self, default: RuleSet) -> None:
        personal = {"ph-bp-followup": {"sys": 130, "dia": 80}}
        out = of("ph-bp-followup", run(default, [self.bp(0, 135, 82)], personal))
        assert [o.stage for o in out] == ["followup"]

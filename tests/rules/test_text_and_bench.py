"""Bilingual texts, the rule listing, and the micro benchmark."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import datetime

import pytest

from careloop.rules import Fire, RuleSet
from careloop.rules.bench import measure

from .support import fires, local, rule, run


@pytest.fixture(scope="module")
def glucose_rule() -> RuleSet:
    return rule(
        code="g",
        kind="threshold",
        event="glucose",
        condition="value < low",
        params={"low": 3.9},
        text={"zh-hans": "血糖 {value}（<{low}）", "en": "Glucose {value} (< {low}) {value2}"},
    )


def fired(ruleset: RuleSet, value: float) -> Fire:
    [fire] = fires(run(ruleset, [local("glucose", datetime(2025, 3, 1, 7), value)]))
    return fire


class TestText:
    @pytest.mark.parametrize(
        ("language", "text"),
        [
            ("zh-hans", "血糖 3.25（<3.9）"),
            ("zh-Hans", "血糖 3.25（<3.9）"),
            ("zh", "血糖 3.25（<3.9）"),
            ("zh-cn", "血糖 3.25（<3.9）"),
            ("en", "Glucose 3.25 (< 3.9) -"),
            ("en-gb", "Glucose 3.25 (< 3.9) -"),
            ("fr", "Glucose 3.25 (< 3.9) -"),
            ("", "Glucose 3.25 (< 3.9) -"),
        ],
    )
    def test_language_fallbacks(self, glucose_rule: RuleSet, language: str, text: str) -> None:
        assert glucose_rule.text(fired(glucose_rule, 3.25), language) == text

    def test_whole_numbers_lose_their_decimal(self, glucose_rule: RuleSet) -> None:
        assert glucose_rule.text(fired(glucose_rule, 3.0), "en").startswith("Glucose 3 (")

    def test_long_decimals_are_shortened(self, glucose_rule: RuleSet) -> None:
        assert glucose_rule.text(fired(glucose_rule, 3.14159), "en").startswith("Glucose 3.14 (")

    def test_one_language_only(self) -> None:
        ruleset = rule(
            kind="threshold", event="spo2", condition="value < 90", text={"zh-hans": "低氧"}
        )
        fire = fires(run(ruleset, [local("spo2", datetime(2025, 3, 1, 7), 85)]))[0]
        assert ruleset.text(fire, "en") == "低氧"


class TestListing:
    def test_rules_lists_every_rule_in_file_order(self) -> None:
        ruleset = RuleSet.default()
        listed = ruleset.rules()
        assert [r.code for r in listed] == list(ruleset.codes)
        kinds = {r.kind for r in listed}
        assert kinds == {
            "threshold",
            "count_window",
            "trend",
            "absence",
            "consecutive",
            "non_adherence",
            "adverse_reaction",
            "questionnaire",
            "public_health",
        }
        ph = ruleset.rule("ph-bp-followup")
        assert ph.action == "task" and ph.sla == 14 * 86400 and ph.options["referral_gap"] == 0
        referral = ph.options["referral"]
        assert (referral["priority"], referral["route"], referral["sla"]) == (
            "urgent",
            "doctor",
            14 * 86400,
        )
        assert referral["text"]["zh-hans"].startswith("连续两次血压控制不满意")
        assert ruleset.rule("hr-night-high-3").options["period"] == "nights"


class TestBench:
    def test_measure_reports_rate_and_is_deterministic(self) -> None:
        one = measure(4000, 7)
        two = measure(4000, 7)
        assert one["events"] == 4000 and one["events_per_s"] > 0
        assert one["fires"] > 0 and one["fires_by_rule"] == two["fires_by_rule"]
        assert one["version"] == RuleSet.default().version

    def test_feed_is_fast(self) -> None:
        # The target is 150,000 events/s on one core; this floor only catches a collapse
        # (the machine running the tests may be busy).
        best = max(measure(20_000, 1)["events_per_s"] for _ in range(3))
        assert best >= 50_000

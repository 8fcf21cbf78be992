"""Conditions: only the whitelisted language compiles; anything else is refused at load."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import datetime

import pytest

from careloop.rules import Event, RuleError, RuleSet

from .support import fires, local, rule, run


def threshold(condition: str, **extra: object) -> RuleSet:
    return rule(
        kind="threshold", event=["bp", "questionnaire", "glucose"], condition=condition, **extra
    )


def hit(ruleset: RuleSet, event: Event) -> bool:
    return bool(fires(run(ruleset, [event])))


BP = local("bp", datetime(2025, 3, 1, 8), 150.0, 95.0)


class TestLanguage:
    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            ("value >= 150", True),
            ("value > 150", False),
            ("value >= 150 and value2 >= 95", True),
            ("value >= 200 or value2 >= 95", True),
            ("not value >= 200", True),
            ("100 <= value < 160", True),
            ("(value + value2) / 2 > 120", True),
            ("value - value2 * 2 == -40", True),
            ("value / value2 > 1.5", True),
            ("hour == 8", True),
            ("hour in (7, 8, 9)", True),
            ("hour not in [7, 8, 9]", False),
            ("context == ''", True),
            ("true", True),
            ("False or value == 150", True),
        ],
    )
    def test_conditions_evaluate_as_written(self, condition: str, expected: bool) -> None:
        assert hit(threshold(condition), BP) is expected

    def test_params_are_bare_names(self) -> None:
        ruleset = threshold("value >= sys or value2 >= dia", params={"sys": 140, "dia": 90})
        assert hit(ruleset, BP)

    def test_context_and_items(self) -> None:
        ruleset = threshold('context == "phq9" and items[8] > 0')
        answer = local(
            "questionnaire", datetime(2025, 3, 1, 9), 12, context="phq9", items=(1,) * 8 + (2,)
        )
        assert hit(ruleset, answer)

    def test_missing_item_is_never_true(self) -> None:
        ruleset = threshold("items[8] > 0 or items[8] <= 0")
        short = local("questionnaire", datetime(2025, 3, 1, 9), 3, context="phq9", items=(1, 2))
        assert not hit(ruleset, short)

    def test_missing_value2_makes_its_comparisons_false(self) -> None:
        ruleset = threshold("value2 >= 90 or value2 < 90")
        assert not hit(ruleset, local("glucose", datetime(2025, 3, 1, 8), 5.0))

    def test_division_by_a_zero_value_is_false_not_a_crash(self) -> None:
        ruleset = threshold("value / value2 > 1 or value / value2 <= 1")
        assert not hit(ruleset, local("bp", datetime(2025, 3, 1, 8), 150.0, 0.0))


class TestRefused:
    @pytest.mark.parametrize(
        ("condition", "reason"),
        [
            ("__import__('os').system('true')", "function calls are not allowed"),
            ("open('/etc/passwd')", "function calls are not allowed"),
            ("value.__class__", "attribute access is not allowed"),
            ("().__class__.__bases__", "attribute access is not allowed"),
            ("__builtins__", "unknown name '__builtins__'"),
            ("globals", "unknown name 'globals'"),
            ("lambda: 1", "lambda is not allowed"),
            ("[x for x in items]", "comprehensions are not allowed"),
            ("(x := 1)", "assignment is not allowed"),
            ("value if hour else 1", "'x if c else y' is not allowed"),
            ("items[0:3]", "whole number"),
            ("items[-1] > 0", "whole number"),
            ("value[0] > 1", "only 'items' can be indexed"),
            ("f'{value}'", "f-strings are not allowed"),
            ("{'a': 1}", "dictionaries are not allowed"),
            ("value ** 2 > 1", "operator 'Pow' is not allowed"),
            ("value % 2 == 0", "operator 'Mod' is not allowed"),
            ("value is None", "comparison 'Is' is not allowed"),
            ("value > 1; import os", "syntax error"),
            ("import os", "syntax error"),
            ("value >", "syntax error"),
            ("value", "must be a condition"),
            ("value + 1", "must be a condition"),
            ("value and hour", "joins conditions"),
            ("context > 'a'", "compares numbers"),
            ("context == 3", "cannot compare a text with a number"),
            ("value in ('a', 'b')", "list holding a text"),
            ("value in (hour, 2)", "list of constants"),
            ("value / 0 > 1", "division by zero"),
            ("items > 1", "must be indexed"),
            ("mean > 1", "only available in trend rules"),
            ("value > 1e999", "finite"),
            ("", "is empty"),
            ("value > 1 " + "or value > 1 " * 300, "longer than"),
        ],
    )
    def test_refused_with_a_reason_naming_rule_and_field(self, condition: str, reason: str) -> None:
        with pytest.raises(RuleError) as caught:
            rule(code="bad-rule", kind="threshold", event="bp", condition=condition)
        assert caught.value.code == "bad-rule"
        assert caught.value.field == "condition"
        assert reason in caught.value.message
        assert "bad-rule" in str(caught.value) and "condition" in str(caught.value)

    def test_deeply_nested_expression_is_refused_not_crashing(self) -> None:
        with pytest.raises(RuleError, match="condition"):
            rule(kind="threshold", event="bp", condition="(" * 400 + "value > 1" + ")" * 400)

    def test_non_text_expression_is_refused(self) -> None:
        with pytest.raises(RuleError, match="must be a text expression"):
            rule(kind="threshold", event="bp", condition=42)

    @pytest.mark.parametrize("field", ["resolve", "when"])
    def test_other_expression_fields_are_checked_too(self, field: str) -> None:
        with pytest.raises(RuleError) as caught:
            rule(kind="threshold", event="bp", condition="value > 1", **{field: "exec('x')"})
        assert caught.value.field == field

    def test_a_parameter_cannot_shadow_the_language(self) -> None:
        with pytest.raises(RuleError) as caught:
            rule(kind="threshold", event="bp", condition="value > 1", params={"value": 1})
        assert caught.value.field == "params"

    def test_a_parameter_named_like_an_internal_function_is_harmless(self) -> None:
        ruleset = rule(
            kind="threshold",
            event="bp",
            condition="value >= when",
            when="value2 >= resolve",
            params={"when": 150, "resolve": 90, "len": 3},
        )
        assert hit(ruleset, BP)

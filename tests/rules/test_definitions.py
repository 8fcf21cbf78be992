"""Definitions: the shipped file compiles; every invalid field is refused naming rule and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from careloop.rules import DEFAULT_RULES, RuleError, RuleSet, load_file, parse_duration


def base(**fields: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "code": "r1",
        "kind": "threshold",
        "event": "bp",
        "condition": "value >= sys",
        "params": {"sys": 180},
        "severity": "high",
        "text": {"en": "BP {value}", "zh-hans": "血压 {value}"},
    }
    definition.update(fields)
    return {k: v for k, v in definition.items() if v is not None}


def refused(definition: dict[str, Any]) -> RuleError:
    with pytest.raises(RuleError) as caught:
        RuleSet.compile([definition])
    return caught.value


class TestDefaultFile:
    def test_the_shipped_rules_compile(self) -> None:
        ruleset = RuleSet.compile(load_file(DEFAULT_RULES))
        assert DEFAULT_RULES.name == "default.toml"
        assert {"bp-crisis", "phq9-item9", "ph-bp-followup", "glucose-absent-3d"} <= set(
            ruleset.codes
        )
        assert ruleset.kinds == {
            "bp",
            "glucose",
            "heart_rate",
            "spo2",
            "temperature",
            "weight",
            "dose",
            "adr",
            "questionnaire",
            "symptom",
        }

    def test_every_shipped_rule_speaks_chinese_and_english(self) -> None:
        for info in RuleSet.default().rules():
            assert set(info.text) == {"zh-hans", "en"}, info.code

    def test_bp_crisis_as_specified(self) -> None:
        info = RuleSet.default().rule("bp-crisis")
        assert (info.kind, info.severity, info.priority, info.route) == (
            "threshold",
            "critical",
            "urgent",
            "doctor",
        )
        assert info.sla == 15 * 60 and info.dedupe == 12 * 3600
        assert info.params == {"sys": 180, "dia": 110}
        assert info.events == info.event_kinds == ("bp",)
        assert info.enabled

    def test_absence_rules_listed(self) -> None:
        assert sorted(RuleSet.default().absence_rules()) == [
            ("bp-absent-7d", "bp", 7 * 86400),
            ("glucose-absent-3d", "glucose", 3 * 86400),
        ]

    def test_unknown_rule_is_a_key_error(self) -> None:
        with pytest.raises(KeyError):
            RuleSet.default().rule("nope")


class TestVersion:
    def test_same_definitions_same_version(self) -> None:
        assert RuleSet.compile([base()]).version == RuleSet.compile([base()]).version

    def test_any_change_changes_the_version(self) -> None:
        versions = {
            RuleSet.compile([base()]).version,
            RuleSet.compile([base(params={"sys": 170})]).version,
            RuleSet.compile([base(enabled=False)]).version,
            RuleSet.compile([base(), base(code="r2")]).version,
            RuleSet.compile([base(code="r2"), base()]).version,
        }
        assert len(versions) == 5

    def test_key_order_of_a_definition_does_not_matter(self) -> None:
        definition = base()
        reordered = dict(reversed(list(definition.items())))
        assert RuleSet.compile([definition]).version == RuleSet.compile([reordered]).version


class TestRefusals:
    @pytest.mark.parametrize(
        ("fields", "field", "words"),
        [
            ({"code": "Bad Code"}, "code", "lower-case"),
            ({"code": None}, "code", "required"),
            ({"kind": "magic"}, "kind", "one of"),
            ({"kind": None}, "kind", "required"),
            ({"enabled": "yes"}, "enabled", "true or false"),
            ({"event": "bloodpressure"}, "event", "unknown event kind"),
            ({"event": []}, "event", "non-empty"),
            ({"event": ["bp", "bp"]}, "event", "twice"),
            ({"event": None}, "event", "required"),
            ({"severity": "urgent"}, "severity", "one of"),
            ({"severity": None}, "severity", "required"),
            ({"priority": "high"}, "priority", "one of"),
            ({"route": "janitor"}, "route", "one of"),
            ({"action": "email"}, "action", "one of"),
            ({"sla": "soon"}, "sla", "duration"),
            ({"sla": "0m"}, "sla", "longer than zero"),
            ({"sla": "999d"}, "sla", "between"),
            ({"dedupe": "2 days"}, "dedupe", "duration"),
            ({"text": None}, "text", "required"),
            ({"text": {"en": ""}}, "text.en", "non-empty"),
            ({"text": {"EN": "x"}}, "text.EN", "lower-case"),
            ({"text": {"en": "BP {systolic}"}}, "text.en", "unknown placeholder {systolic}"),
            ({"text": {"en": "BP {value!r}"}}, "text.en", "format not allowed"),
            ({"text": {"en": "BP {value"}}, "text.en", "bad placeholder"),
            ({"params": {"sys": "180"}}, "params", "finite number"),
            ({"params": {"sys": True}}, "params", "finite number"),
            ({"params": {"Sys": 1}}, "params", "lower-case"),
            ({"params": [1]}, "params", "table"),
            ({"condition": None}, "condition", "required"),
            ({"condition": "value >= dia"}, "condition", "unknown name 'dia'"),
            ({"n": 3}, "n", "not a field of threshold rules"),
        ],
    )
    def test_refused(self, fields: dict[str, Any], field: str, words: str) -> None:
        error = refused(base(**fields))
        assert error.field == field
        assert words in error.message
        assert f"field '{field}'" in str(error)

    def test_error_names_the_rule(self) -> None:
        error = refused(base(code="bp-x", severity="extreme"))
        assert error.code == "bp-x"
        assert str(error).startswith("rule 'bp-x', field 'severity'")

    def test_duplicate_codes(self) -> None:
        with pytest.raises(RuleError) as caught:
            RuleSet.compile([base(), base()])
        assert (caught.value.code, caught.value.field) == ("r1", "code")
        assert "another rule" in caught.value.message

    def test_not_a_mapping(self) -> None:
        with pytest.raises(RuleError):
            RuleSet.compile(["bp-crisis"])  # type: ignore[list-item]

    @pytest.mark.parametrize(
        ("definition", "field"),
        [
            ({"kind": "consecutive", "condition": "value > 1", "n": 0}, "n"),
            (
                {"kind": "consecutive", "condition": "value > 1", "n": 3, "period": "weeks"},
                "period",
            ),
            (
                {"kind": "consecutive", "condition": "value > 1", "n": 3, "night_start": 24},
                "night_start",
            ),
            ({"kind": "absence", "days": 0}, "days"),
            ({"kind": "absence", "days": 3, "event": ["bp", "glucose"]}, "event"),
            ({"kind": "absence", "days": 3, "dedupe": "1d"}, "dedupe"),
            ({"kind": "trend", "rise": 0}, "rise"),
            ({"kind": "trend", "rise": 5, "field": "value3"}, "field"),
            ({"kind": "trend"}, "rise"),
            ({"kind": "count_window", "count": 2}, "window"),
            ({"kind": "count_window", "window": "1d"}, "count"),
            ({"kind": "non_adherence", "event": "bp"}, "event"),
            ({"kind": "non_adherence", "contexts": []}, "contexts"),
            ({"kind": "adverse_reaction", "urgent_priority": "now"}, "urgent_priority"),
            ({"kind": "questionnaire", "condition": "value > 1"}, "instrument"),
            ({"kind": "questionnaire", "instrument": "phq9"}, "condition"),
            ({"kind": "public_health", "event": "bp"}, "uncontrolled"),
            (
                {
                    "kind": "public_health",
                    "event": "bp",
                    "uncontrolled": "value > 1",
                    "dedupe": "1d",
                },
                "dedupe",
            ),
            (
                {
                    "kind": "public_health",
                    "event": "bp",
                    "uncontrolled": "value > 1",
                    "resolve": "true",
                },
                "resolve",
            ),
        ],
    )
    def test_kind_fields(self, definition: dict[str, Any], field: str) -> None:
        full = {"code": "k", "severity": "low", "text": {"en": "x"}}
        full.update(definition)
        if full["kind"] not in ("non_adherence", "adverse_reaction", "questionnaire"):
            full.setdefault("event", "bp")
        error = refused(full)
        assert (error.code, error.field) == ("k", field)


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30s", 30), ("15m", 900), ("4h", 14400), ("2d", 172800), ("1w", 604800), (60, 60)],
    )
    def test_parse(self, text: object, seconds: int) -> None:
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "4", "4x", "-1d", "1.5h", True, None])
    def test_refuse(self, text: object) -> None:
        with pytest.raises(ValueError):
            parse_duration(text)


class TestLoadFile:
    def test_reads_rules_tables(self, tmp_path: Path) -> None:
        path = tmp_path / "r.toml"
        path.write_text(
            '[[rules]]\ncode = "a"\nkind = "threshold"\nevent = "spo2"\n'
            'condition = "value < 90"\nseverity = "critical"\ntext = { en = "SpO2 {value}" }\n',
            encoding="utf-8",
        )
        definitions = load_file(path)
        assert definitions[0]["code"] == "a"
        assert RuleSet.from_file(path).codes == ("a",)

    def test_bad_toml_is_a_rule_error(self, tmp_path: Path) -> None:
        path = tmp_path / "r.toml"
        path.write_text("[[rules]]\ncode = \n", encoding="utf-8")
        with pytest.raises(RuleError, match="not valid TOML"):
            load_file(path)

    def test_other_tables_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "r.toml"
        path.write_text('[rule]\ncode = "a"\n', encoding="utf-8")
        with pytest.raises(RuleError) as caught:
            load_file(path)
        assert caught.value.field == "rule"

    def test_empty_file_is_no_rules(self, tmp_path: Path) -> None:
        path = tmp_path / "r.toml"
        path.write_text("", encoding="utf-8")
        assert load_file(path) == []
        assert RuleSet.compile([]).kinds == frozenset()


class TestDisabled:
    def test_disabled_rule_is_listed_but_never_runs(self) -> None:
        ruleset = RuleSet.compile([base(enabled=False)])
        assert ruleset.rule("r1").enabled is False
        assert ruleset.kinds == frozenset()

    def test_check_personal(self) -> None:
        ruleset = RuleSet.compile([base()])
        assert ruleset.check_personal("r1", {"sys": 170}) == {"sys": 170}
        with pytest.raises(RuleError, match="not a parameter"):
            ruleset.check_personal("r1", {"dia": 100})
        with pytest.raises(RuleError, match="finite number"):
            ruleset.check_personal("r1", {"sys": float("nan")})


class TestSources:
    def test_unknown_source_is_named(self) -> None:
        error = refused(base(sources=["fax"]))
        assert (error.field, "fax" in str(error)) == ("sources", True)

    def test_sources_must_be_a_list(self) -> None:
        assert refused(base(sources="staff")).field == "sources"

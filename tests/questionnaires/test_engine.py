"""The FHIR Questionnaire engine: checking, enableWhen, required, answer validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from careloop.questionnaires import fhir

DATA = Path(__file__).resolve().parents[2] / "src/careloop/questionnaires/data"


@pytest.fixture(autouse=True)
def _english() -> Any:
    with translation.override("en"):
        yield


def _q(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "status": "active",
        "title": "t",
        "item": list(items),
    }


YES_NO = [
    {"valueCoding": {"system": "s", "code": "y", "display": "Yes"}},
    {"valueCoding": {"system": "s", "code": "n", "display": "No"}},
]


def _cond(op: str, **answer: Any) -> dict[str, Any]:
    return _q(
        {"linkId": "a", "type": "integer"},
        {
            "linkId": "b",
            "type": "string",
            "enableWhen": [{"question": "a", "operator": op, **answer}],
        },
    )


@pytest.mark.parametrize(
    ("op", "answer", "value", "enabled"),
    [
        ("=", 5, 5, True),
        ("=", 5, 4, False),
        ("!=", 5, 4, True),
        ("!=", 5, 5, False),
        (">", 5, 6, True),
        (">", 5, 5, False),
        ("<", 5, 4, True),
        ("<", 5, 5, False),
        (">=", 5, 5, True),
        (">=", 5, 4, False),
        ("<=", 5, 5, True),
        ("<=", 5, 6, False),
    ],
)
def test_enable_when_operators_on_numbers(op: str, answer: int, value: int, enabled: bool) -> None:
    d = fhir.parse(_cond(op, answerInteger=answer))
    assert ("b" in fhir.enabled_items(d, {"a": [value]})) is enabled


def test_comparisons_need_an_answer_but_not_equal_holds_without_one() -> None:
    assert "b" not in fhir.enabled_items(fhir.parse(_cond(">", answerInteger=1)), {})
    assert "b" in fhir.enabled_items(fhir.parse(_cond("!=", answerInteger=1)), {})


@pytest.mark.parametrize(
    ("wanted", "answers", "enabled"),
    [(True, {"a": [1]}, True), (True, {}, False), (False, {}, True), (False, {"a": [1]}, False)],
)
def test_exists(wanted: bool, answers: dict[str, Any], enabled: bool) -> None:
    d = fhir.parse(_cond("exists", answerBoolean=wanted))
    assert ("b" in fhir.enabled_items(d, answers)) is enabled


def test_coding_boolean_date_and_string_conditions() -> None:
    d = fhir.parse(
        _q(
            {"linkId": "c", "type": "choice", "answerOption": YES_NO},
            {"linkId": "f", "type": "boolean"},
            {"linkId": "d", "type": "date"},
            {"linkId": "s", "type": "string"},
            {
                "linkId": "x1",
                "type": "text",
                "enableWhen": [
                    {"question": "c", "operator": "=", "answerCoding": {"system": "s", "code": "y"}}
                ],
            },
            {
                "linkId": "x2",
                "type": "text",
                "enableWhen": [{"question": "f", "operator": "=", "answerBoolean": True}],
            },
            {
                "linkId": "x3",
                "type": "text",
                "enableWhen": [{"question": "d", "operator": ">=", "answerDate": "2026-01-01"}],
            },
            {
                "linkId": "x4",
                "type": "text",
                "enableWhen": [{"question": "s", "operator": "=", "answerString": "ok"}],
            },
        )
    )
    on = fhir.enabled_items(d, {"c": ["y"], "f": [True], "d": ["2026-03-01"], "s": ["ok"]})
    assert {"x1", "x2", "x3", "x4"} <= on
    off = fhir.enabled_items(d, {"c": ["n"], "f": [False], "d": ["2025-12-31"], "s": ["no"]})
    assert not {"x1", "x2", "x3", "x4"} & off


def _two(behavior: str) -> dict[str, Any]:
    return _q(
        {"linkId": "a", "type": "boolean"},
        {"linkId": "b", "type": "boolean"},
        {
            "linkId": "c",
            "type": "string",
            "required": True,
            "enableWhen": [
                {"question": "a", "operator": "=", "answerBoolean": True},
                {"question": "b", "operator": "=", "answerBoolean": True},
            ],
            "enableBehavior": behavior,
        },
    )


@pytest.mark.parametrize(
    ("behavior", "a", "b", "enabled"),
    [
        ("all", True, True, True),
        ("all", True, False, False),
        ("any", True, False, True),
        ("any", False, False, False),
    ],
)
def test_enable_behavior(behavior: str, a: bool, b: bool, enabled: bool) -> None:
    d = fhir.parse(_two(behavior))
    assert ("c" in fhir.enabled_items(d, {"a": [a], "b": [b]})) is enabled


def test_required_only_when_enabled() -> None:
    d = fhir.parse(_two("all"))
    assert fhir.missing_required(d, {"a": [True], "b": [False]}) == {}
    assert set(fhir.missing_required(d, {"a": [True], "b": [True]})) == {"c"}
    assert fhir.missing_required(d, {"a": [True], "b": [True], "c": ["x"]}) == {}


def test_disabled_answers_do_not_enable_others_and_are_not_stored() -> None:
    d = fhir.parse(
        _q(
            {"linkId": "a", "type": "boolean"},
            {
                "linkId": "b",
                "type": "integer",
                "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": True}],
            },
            {
                "linkId": "c",
                "type": "string",
                "enableWhen": [{"question": "b", "operator": ">", "answerInteger": 3}],
            },
        )
    )
    answers = {"a": [False], "b": [5], "c": ["kept?"]}
    assert fhir.enabled_items(d, answers) == {"a"}
    assert fhir.to_response_items(d, answers) == [
        {"linkId": "a", "answer": [{"valueBoolean": False}]}
    ]


def test_children_of_disabled_group_are_disabled() -> None:
    d = fhir.parse(
        _q(
            {"linkId": "a", "type": "boolean"},
            {
                "linkId": "g",
                "type": "group",
                "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": True}],
                "item": [{"linkId": "g1", "type": "string", "required": True}],
            },
        )
    )
    assert fhir.missing_required(d, {"a": [False]}) == {}
    assert set(fhir.missing_required(d, {"a": [True]})) == {"g1"}


@pytest.mark.parametrize(
    ("item", "text", "message"),
    [
        ({"type": "integer"}, "2.5", "Enter a whole number."),
        ({"type": "integer"}, "abc", "Enter a whole number."),
        ({"type": "decimal"}, "abc", "Enter a number."),
        (
            {
                "type": "integer",
                "extension": [
                    {"url": fhir.MIN_VALUE, "valueInteger": 0},
                    {"url": fhir.MAX_VALUE, "valueInteger": 10},
                ],
            },
            "11",
            "Enter a number from 0 to 10.",
        ),
        (
            {"type": "decimal", "extension": [{"url": fhir.MIN_VALUE, "valueDecimal": 34.5}]},
            "30",
            "Enter a number of at least 34.5.",
        ),
        ({"type": "string", "maxLength": 3}, "abcd", "Use at most 3 characters."),
        ({"type": "date"}, "2026-02-30", "Enter a date as YYYY-MM-DD."),
        ({"type": "boolean"}, "maybe", "Answer yes or no."),
        ({"type": "choice", "answerOption": YES_NO}, "z", "Choose one of the options."),
    ],
)
def test_validation_messages(item: dict[str, Any], text: str, message: str) -> None:
    d = fhir.parse(_q({"linkId": "x", **item}))
    assert fhir.parse_input(d.by_id["x"], [text]) == ([], message)


def test_valid_inputs_are_typed() -> None:
    d = fhir.parse(
        _q(
            {"linkId": "i", "type": "integer"},
            {"linkId": "f", "type": "decimal"},
            {"linkId": "b", "type": "boolean"},
            {"linkId": "m", "type": "choice", "repeats": True, "answerOption": YES_NO},
        )
    )
    assert fhir.parse_input(d.by_id["i"], ["7"]) == ([7], "")
    assert fhir.parse_input(d.by_id["f"], ["37,5"]) == ([37.5], "")
    assert fhir.parse_input(d.by_id["b"], ["false"]) == ([False], "")
    assert fhir.parse_input(d.by_id["m"], ["y", "n"]) == (["y", "n"], "")
    assert fhir.parse_input(d.by_id["i"], ["1", "2"]) == ([], "Choose one answer only.")


def test_invalid_questionnaire_errors_by_element_path() -> None:
    bad = _q(
        {"linkId": "a", "type": "choice"},
        {"linkId": "a", "type": "integer", "maxLength": 2},
        {"linkId": "g", "type": "group", "item": [{"linkId": "q", "type": "attachment"}]},
        {
            "linkId": "w",
            "type": "string",
            "enableWhen": [{"question": "nope", "operator": "=", "answerString": "x"}],
        },
        {
            "linkId": "v",
            "type": "string",
            "enableWhen": [{"question": "a", "operator": "~", "answerString": "x"}],
        },
    )
    bad["status"] = "final"
    with pytest.raises(fhir.InvalidResource) as caught:
        fhir.parse(bad)
    errors = caught.value.errors
    assert set(errors) >= {
        "status",
        "item[0].answerOption",
        "item[1].linkId",
        "item[1].maxLength",
        "item[2].item[0].type",
        "item[3].enableWhen[0].question",
        "item[4].enableWhen[0].operator",
    }
    assert "attachment" in errors["item[2].item[0].type"][0]


def test_not_a_questionnaire() -> None:
    with pytest.raises(fhir.InvalidResource) as caught:
        fhir.parse({"resourceType": "Patient"})
    assert "resourceType" in caught.value.errors


def test_response_items_round_trip_nested() -> None:
    d = fhir.parse(json.loads((DATA / "postop-symptoms.json").read_text()))
    answers: fhir.Answers = {
        "pain": [3],
        "fever": [True],
        "temperature": [38.0],
        "wound-discharge": ["clear"],
    }
    items = fhir.to_response_items(d, answers)
    assert [i["linkId"] for i in items] == ["general", "wound"]
    assert items[0]["item"][2] == {
        "linkId": "temperature",
        "text": "如果量过体温，最高是多少？",
        "answer": [{"valueDecimal": 38.0}],
    }
    assert fhir.from_response_items(d, items) == answers


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
def test_shipped_questionnaires_are_valid_and_bilingual(name: str) -> None:
    resource = json.loads((DATA / name).read_text())
    d = fhir.parse(copy.deepcopy(resource))
    assert d.status == "active" and d.language == "zh-CN"
    assert d.title_in("en") != d.title_in("zh-hans")
    for item in d.walk():
        if item.type != "group" or item.element.get("text"):
            assert item.text("en", d.language) != item.text("zh-hans", d.language), item.link_id
        for option in item.options:
            assert option.label("en", d.language) != option.label("zh-hans", d.language)


def test_elder_pages_have_one_question_each() -> None:
    d = fhir.parse(json.loads((DATA / "postop-symptoms.json").read_text()))
    assert [len(p) for p in fhir.pages(d, one_question=False)] == [1, 1, 1]
    elder = fhir.pages(d, one_question=True)
    assert len(elder) == 9 and all(len(p) == 1 for p in elder)

"""FHIR R4 validation of incoming resources: the official examples and Synthea bundles pass,
and each kind of mistake is refused with an issue naming the element."""

from __future__ import annotations

import copy
import importlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from careloop.fhir.outcome import Issue
from careloop.fhir.validation import SUPPORTED_TYPES, errors, validate
from tests.corpus import CORPUS

EXAMPLES = CORPUS / "hl7-fhir-r4-examples"
SYNTHEA = CORPUS / "synthea-r4-smart-generated-sample-data"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared test corpus is not here")


def _supported_examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    # Official example files are named <resourceType>-<id>.json.
    return sorted(p for p in EXAMPLES.glob("*.json") if p.name.split("-")[0] in SUPPORTED_TYPES)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _example(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(EXAMPLES / name))


def _where(issues: list[Issue]) -> list[str]:
    return [expression for issue in issues for expression in issue.expression]


@pytest.mark.parametrize("path", _supported_examples(), ids=lambda p: p.stem)
def test_every_official_r4_example_of_a_supported_type_is_valid(path: Path) -> None:
    resource = _load(path)
    assert resource["resourceType"] in SUPPORTED_TYPES
    assert errors(validate(resource)) == []


def test_the_official_examples_cover_every_kind_of_bundle_and_many_types() -> None:
    examples = [_load(p) for p in _supported_examples()]
    assert len(examples) >= 250
    bundle_types = {e.get("type") for e in examples if e["resourceType"] == "Bundle"}
    assert {"transaction", "batch", "searchset", "collection"} <= bundle_types
    assert len({e["resourceType"] for e in examples}) >= 24


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="the Synthea sample data is not here")
def test_synthea_bundles_and_their_supported_entries_are_valid() -> None:
    bundles = sorted(SYNTHEA.glob("*.json"))
    assert len(bundles) == 32
    checked = 0
    for path in bundles:
        bundle = _load(path)
        assert validate(bundle) == [], path.name
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] in SUPPORTED_TYPES:
                assert validate(entry["resource"]) == [], path.name
                checked += 1
    assert checked > 1000


def test_a_display_item_without_link_id_is_only_a_warning() -> None:
    issues = validate(_example("Questionnaire-qs1.json"))
    assert issues and errors(issues) == []
    assert {issue.severity for issue in issues} == {"warning"}
    assert "Questionnaire.item[0].item[0].linkId" in _where(issues)


# --- mistakes -------------------------------------------------------------------------------


def test_a_wrong_date_format_is_refused() -> None:
    patient = _example("Patient-example.json")
    patient["birthDate"] = "25/12/1974"
    issues = validate(patient)
    assert _where(issues) == ["Patient.birthDate"]
    assert "not a valid date" in issues[0].diagnostics
    assert issues[0].code == "value"


def test_an_impossible_calendar_date_is_refused() -> None:
    patient = _example("Patient-example.json")
    patient["birthDate"] = "1974-02-30"
    assert _where(validate(patient)) == ["Patient.birthDate"]


@pytest.mark.parametrize(
    ("element", "value", "kind"),
    [
        ("issued", "2013-04-03", "instant"),  # an instant needs a time and a zone
        ("effectiveDateTime", "2013-04-03T15:30", "dateTime"),  # a time without seconds/zone
        ("id", "has space", "id"),
        ("status", " final", "code"),
        ("implicitRules", "has space", "uri"),
    ],
)
def test_primitive_formats_are_checked(element: str, value: str, kind: str) -> None:
    observation = _example("Observation-blood-pressure.json")
    observation[element] = value
    issues = validate(observation)
    assert _where(issues) == [f"Observation.{element}"]
    assert kind in issues[0].diagnostics


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("SGVsbG8=", True),
        ("SGVs\nbG8h", True),
        ("SGVsbG8", False),
        ("SGV$bG8=", False),
        ("A" * 4000 + " " * 50 + "!", False),
    ],
)
def test_base64_content_is_checked(value: str, ok: bool) -> None:
    patient = _example("Patient-example.json")
    patient["photo"] = [{"contentType": "image/png", "data": value}]
    assert _where(validate(patient)) == ([] if ok else ["Patient.photo[0].data"])


@pytest.mark.parametrize("value", ["", float("nan"), float("inf")])
def test_empty_strings_and_non_finite_numbers_are_refused(value: Any) -> None:
    observation = _example("Observation-blood-pressure.json")
    if isinstance(value, str):
        observation["status"] = value
        expected = "Observation.status"
    else:
        observation["component"][0]["valueQuantity"]["value"] = value
        expected = "Observation.component[0].valueQuantity.value"
    assert _where(validate(observation)) == [expected]


@pytest.mark.parametrize("type_name", ["Resource", "DomainResource", "Élément", "patient"])
def test_abstract_or_malformed_resource_types_are_refused(type_name: str) -> None:
    issues = validate({"resourceType": type_name, "id": "a"})
    assert _where(issues) == ["resourceType"]


def test_a_number_given_as_a_string_is_refused_deep_inside() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["component"][0]["valueQuantity"]["value"] = "107"
    issues = validate(observation)
    assert _where(issues) == ["Observation.component[0].valueQuantity.value"]
    assert "decimal" in issues[0].diagnostics


def test_a_missing_required_element_is_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    del observation["status"]
    del observation["component"][1]["code"]
    issues = validate(observation)
    assert sorted(_where(issues)) == ["Observation.component[1].code", "Observation.status"]
    assert {issue.code for issue in issues} == {"required"}


def test_a_missing_required_choice_is_named_with_x() -> None:
    request = _example("MedicationRequest-medrx0301.json")
    request.pop("medicationReference", None)
    request.pop("medicationCodeableConcept", None)
    assert _where(validate(request)) == ["MedicationRequest.medication[x]"]


def test_a_required_primitive_given_only_by_extension_is_present() -> None:
    observation = _example("Observation-blood-pressure.json")
    del observation["status"]
    observation["_status"] = {"extension": [{"url": "http://example.org/x", "valueCode": "a"}]}
    assert validate(observation) == []


def test_an_unknown_element_is_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["colour"] = "blue"
    observation["component"][0]["valueQuantity"]["precision"] = 2
    issues = validate(observation)
    assert sorted(_where(issues)) == [
        "Observation.colour",
        "Observation.component[0].valueQuantity.precision",
    ]
    assert "unknown element" in issues[0].diagnostics


def test_an_unknown_element_inside_primitive_extensions_is_refused() -> None:
    patient = _example("Patient-example.json")
    patient["_birthDate"] = {"colour": "blue"}
    assert _where(validate(patient)) == ["Patient.birthDate.colour"]


def test_a_wrong_choice_type_is_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["valueAddress"] = {"city": "Leeds"}
    issues = validate(observation)
    assert _where(issues) == ["Observation.valueAddress"]
    assert "value[x]" in issues[0].diagnostics
    assert "valueQuantity" in issues[0].diagnostics


def test_two_types_of_one_choice_are_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["effectivePeriod"] = {"start": "2012-09-17"}
    issues = validate(observation)
    assert len(issues) == 1
    assert "effective[x]" in issues[0].diagnostics


def test_cardinality_is_checked_both_ways() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["category"] = observation["category"][0]  # 0..* given as one object
    observation["code"] = [observation["code"]]  # 1..1 given as an array
    observation["note"] = []  # empty arrays are not allowed in FHIR JSON
    issues = validate(observation)
    assert sorted(_where(issues)) == [
        "Observation.category",
        "Observation.code",
        "Observation.note",
    ]


def test_null_and_empty_objects_are_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["subject"] = None
    observation["method"] = {}
    assert sorted(_where(validate(observation))) == ["Observation.method", "Observation.subject"]


# --- R4 versus R4B ------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["valueCodeableReference", "valueRatioRange"])
def test_an_r4b_only_element_is_refused_as_unknown_in_r4(choice: str) -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["extension"] = [{"url": "http://example.org/x", choice: {}}]
    issues = validate(observation)
    assert _where(issues) == [f"Observation.extension[0].{choice}"]
    assert "not an allowed type for value[x]" in issues[0].diagnostics


def test_an_element_of_r4_that_r4b_dropped_is_accepted() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["extension"] = [{"url": "http://example.org/x", "valueMeta": {"versionId": "1"}}]
    assert validate(observation) == []


@pytest.mark.parametrize("type_name", ["SubscriptionTopic", "Citation", "Ingredient"])
def test_an_r4b_only_resource_type_is_refused(type_name: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": type_name, "id": "a", "status": "active"}}],
    }
    issues = validate(bundle)
    assert _where(issues) == ["Bundle.entry[0].resource.resourceType"]
    assert "not a FHIR R4 resource type" in issues[0].diagnostics


def test_an_r4_only_resource_type_is_accepted_inside_a_bundle() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicinalProduct",
                    "id": "a",
                    "name": [{"productName": "Amlodipine 5 mg tablets"}],
                }
            }
        ],
    }
    assert validate(bundle) == []
    del bundle["entry"][0]["resource"]["name"]  # MedicinalProduct.name is 1..* in R4
    assert _where(validate(bundle)) == ["Bundle.entry[0].resource.name"]


# --- the envelope ---------------------------------------------------------------------------


def test_a_wrong_resource_type_is_refused() -> None:
    observation = _example("Observation-blood-pressure.json")
    observation["resourceType"] = "Observations"
    issues = validate(observation)
    assert _where(issues) == ["resourceType"]
    assert "not a FHIR R4 resource type" in issues[0].diagnostics


def test_an_unsupported_resource_type_is_refused_at_the_top() -> None:
    issues = validate({"resourceType": "Immunization", "id": "a"})
    assert _where(issues) == ["resourceType"]
    assert issues[0].code == "not-supported"


def test_a_missing_resource_type_is_refused() -> None:
    issues = validate({"id": "a", "birthDate": "2000-01-01"})
    assert _where(issues) == ["resourceType"]
    assert issues[0].code == "required"


@pytest.mark.parametrize("value", [None, [], "Patient", 42, [{"resourceType": "Patient"}]])
def test_a_non_object_is_refused_without_raising(value: Any) -> None:
    issues = validate(value)
    assert len(issues) == 1
    assert issues[0].expression == ()
    assert "JSON object" in issues[0].diagnostics


def test_a_bad_resource_inside_a_bundle_is_named_by_its_place() -> None:
    bundle = _example("Bundle-bundle-transaction.json")
    patient_entry = next(
        i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Patient"
    )
    bundle["entry"][patient_entry]["resource"]["birthDate"] = "yesterday"
    assert _where(validate(bundle)) == [f"Bundle.entry[{patient_entry}].resource.birthDate"]


def test_bundle_entries_follow_the_bundle_type() -> None:
    transaction = _example("Bundle-bundle-transaction.json")
    del transaction["entry"][0]["request"]
    assert _where(validate(transaction)) == ["Bundle.entry[0].request"]

    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "total": 1,
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "a"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    assert sorted(_where(validate(collection))) == ["Bundle.entry[0].request", "Bundle.total"]


def test_an_extension_with_both_value_and_extensions_is_refused() -> None:
    patient = _example("Patient-example.json")
    patient["extension"] = [
        {
            "url": "http://example.org/x",
            "valueString": "a",
            "extension": [{"url": "y", "valueString": "b"}],
        }
    ]
    issues = validate(patient)
    assert _where(issues) == ["Patient.extension[0]"]
    assert "ext-1" in issues[0].diagnostics


def test_absurd_nesting_is_refused_without_raising() -> None:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(200):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    issues = validate({"resourceType": "Patient", "extension": [extension]})
    assert issues and "nested too deeply" in issues[0].diagnostics


def test_every_issue_is_an_error_with_expression_and_reason() -> None:
    patient = _example("Patient-example.json")
    patient["gender"] = 1
    patient["active"] = "yes"
    patient["colour"] = "blue"
    issues = validate(patient)
    assert len(issues) == 3
    for issue in issues:
        assert issue.severity == "error"
        assert issue.expression and issue.expression[0].startswith("Patient.")
        assert issue.diagnostics.startswith(issue.expression[0] + ": ")


def test_validation_is_fast() -> None:
    observation = _example("Observation-blood-pressure.json")
    validate(observation)
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        validate(observation)
    per_resource = (time.perf_counter() - started) / rounds
    # Typically about 60 µs; the bound leaves room for slow shared machines.
    assert per_resource < 0.002


# --- the R4 / R4B comparison documented in docs/fhir.md ---------------------------------------


def _r4_elements(cls: Any) -> dict[str, tuple[bool, bool, Any]]:
    return {p[1]: (p[3], p[5], p[2]) for p in cls.__new__(cls).elementProperties()}


def _r4b_class(cls: Any) -> Any:
    module, name = cls.__module__.rsplit(".", 1)[1], cls.__name__
    if name == "FHIRReference":
        module, name = "reference", "Reference"
    return getattr(importlib.import_module(f"fhir.resources.R4B.{module}"), name)


def test_r4_and_r4b_differ_for_the_supported_types_only_as_documented() -> None:
    base = importlib.import_module("fhirclient.models.fhirabstractbase").FHIRAbstractBase
    differences: set[str] = set()
    seen: set[Any] = set()
    pending = [
        (getattr(importlib.import_module(f"fhirclient.models.{t.lower()}"), t), t)
        for t in SUPPORTED_TYPES
    ]
    while pending:
        cls, path = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        r4 = _r4_elements(cls)
        r4b = {
            f.alias: f
            for f in _r4b_class(cls).model_fields.values()
            if (f.json_schema_extra or {}).get("element_property")
        }
        for name in set(r4) | set(r4b):
            if name not in r4b:
                differences.add(f"R4 only: {cls.__name__}.{name}")
            elif name not in r4:
                differences.add(f"R4B only: {cls.__name__}.{name}")
            else:
                many, required, _ = r4[name]
                extra = r4b[name].json_schema_extra or {}
                r4b_many = "List" in str(r4b[name].annotation)
                r4b_required = bool(
                    extra.get("element_required")
                    or extra.get("one_of_many_required")
                    or r4b[name].is_required()
                )
                if (many, required) != (r4b_many, r4b_required):
                    differences.add(f"cardinality: {cls.__name__}.{name}")
        for name, (_, _, typ) in r4.items():
            if isinstance(typ, type) and issubclass(typ, base):
                pending.append((typ, f"{path}.{name}"))
    assert len(seen) > 100
    assert differences == {
        "R4 only: Extension.valueMeta",
        "R4B only: Extension.valueCodeableReference",
        "R4B only: Extension.valueRatioRange",
    }

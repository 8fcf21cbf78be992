"""Scoring the public questionnaires: the MII PROM PHQ-9 and GAD-7 (with their example
responses and the totals their example Observations state) and the official FHIR R4 PHQ-9."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from careloop.questionnaires import fhir, scoring, services
from tests.corpus import CORPUS

MII = CORPUS / "questionnaires-mii-proms"
R4 = CORPUS / "hl7-fhir-r4-examples"

pytestmark = pytest.mark.skipif(not MII.is_dir(), reason="the shared test corpus is not here")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _value_sets(folder: Path) -> dict[str, Any]:
    return {vs["url"]: vs for vs in map(_load, folder.glob("ValueSet-*.json"))}


def test_mii_phq9_example_scores_as_its_observation_states() -> None:
    folder = MII / "phq-9-snapshot-2025-03"
    questionnaire = _load(folder / "Questionnaire-mii-qst-pro-phq-9.json")
    definition = services.parse(questionnaire, _value_sets(folder))
    assert scoring.instrument_of(definition) == "phq9"
    response = _load(folder / "QuestionnaireResponse-mii-exa-pro-phq-9-response.json")
    # The example response names its items "PHQ.n" where the questionnaire says "PHQ-9.n";
    # the variant with the questionnaire's linkIds is derived here (the corpus is untouched).
    for entry in response["item"]:
        entry["linkId"] = entry["linkId"].replace("PHQ.", "PHQ-9.")
    answers = fhir.from_response_items(definition, response["item"])
    result = scoring.score("phq9", definition, answers)
    stated = _load(folder / "Observation-mii-exa-pro-phq-9-observation.json")["valueQuantity"]
    assert result is not None
    assert result.total == stated["value"] == 27
    assert result.band == "severe"
    assert result.flags == ["phq9_item9"]


def test_mii_phq9_needs_its_value_sets() -> None:
    folder = MII / "phq-9-snapshot-2025-03"
    with pytest.raises(fhir.InvalidResource) as caught:
        services.parse(_load(folder / "Questionnaire-mii-qst-pro-phq-9.json"))
    assert "item[1].answerValueSet" in caught.value.errors


def test_mii_gad7_example_scores_as_its_observation_states() -> None:
    folder = MII / "gad-7-index-2026"
    definition = services.parse(_load(folder / "Questionnaire-mii-qst-pro-gad-7.json"))
    assert scoring.instrument_of(definition) == "gad7"
    # The computed totals (calculatedExpression) are never asked of the patient.
    assert not definition.by_id["phq-gad7-score-total"].asked
    response = _load(folder / "QuestionnaireResponse-mii-exa-pro-gad-7-response.json")
    answers = fhir.from_response_items(definition, response["item"])
    result = scoring.score("gad7", definition, answers)
    stated = _load(folder / "Observation-mii-exa-pro-gad-7-observation.json")["valueQuantity"]
    assert result is not None
    assert result.total == stated["value"] == 13
    # The total the example response itself carries agrees too.
    assert answers["phq-gad7-score-total"] == [13]
    assert result.band == "moderate"
    assert fhir.missing_required(definition, answers) == {}


def test_official_r4_phq9_imports_and_scores_its_items() -> None:
    """The R4 example names the LOINC answer list LL358-3 (known to CareLoop with its scores)
    and has only eight symptom items: item 9 (44260-8) is missing from it, so a response is
    totalled over eight items and banded "incomplete" rather than given a misleading band."""
    questionnaire = _load(R4 / "Questionnaire-phq-9-questionnaire.json")
    definition = services.parse(questionnaire)
    assert scoring.instrument_of(definition) == "phq9"
    asked = [i.link_id for i in definition.walk() if i.asked]
    assert "TotalScore" not in asked and len(asked) == 9
    answers: fhir.Answers = {link_id: ["LA6570-1"] for link_id in asked}
    answers["Difficulty"] = ["LA6568-5"]
    response_items = fhir.to_response_items(definition, answers)
    result = scoring.score("phq9", definition, fhir.from_response_items(definition, response_items))
    assert result is not None
    assert result.total == 16  # 8 symptom items x 2; "Difficulty" is not part of the total
    assert result.missing == [9] and result.band == "incomplete"
    assert fhir.missing_required(definition, answers) == {}
    # Completing all but one required item is refused with that item named.
    del answers["FeelingDown"]
    assert set(fhir.missing_required(definition, answers)) == {"FeelingDown"}

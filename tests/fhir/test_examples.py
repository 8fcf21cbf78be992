"""Official R4 examples read back as sent: the same content except id, meta and text, with
references to the patient rewritten to CareLoop's ids. Variants are derived here where the
example lacks what CareLoop requires (a mainland phone, an ICD-10 code from the loaded
terminology — any will do here —, a known patient)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.corpus import CORPUS as SHARED

CORPUS = SHARED / "hl7-fhir-r4-examples"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="the R4 example corpus is absent")


def example(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def round_trip(client: Any, resource: dict[str, Any]) -> dict[str, Any]:
    created = client.post(f"/fhir/{resource['resourceType']}", resource)
    assert created.status_code == 201, created.content
    read = client.get(f"/fhir/{resource['resourceType']}/{created.json()['id']}")
    assert read.status_code == 200
    return read.json()  # type: ignore[no-any-return]


def test_patient_example(fhir: Any, world: Any) -> None:
    sent = example("Patient-example.json")
    sent["telecom"].append({"system": "phone", "value": "13800138000", "use": "mobile"})
    got = round_trip(fhir("nurse.cardiology"), copy.deepcopy(sent))
    expected = content(sent)
    expected["managingOrganization"] = {"reference": f"Organization/org-{world.org.pk}"}
    assert content(got) == expected


def test_observation_blood_pressure_example(fhir: Any, cardio_patient: Any) -> None:
    sent = example("Observation-blood-pressure.json")
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    got = round_trip(fhir("nurse.cardiology"), copy.deepcopy(sent))
    assert content(got) == content(sent)


def test_condition_example(fhir: Any, cardio_patient: Any) -> None:
    sent = example("Condition-example.json")
    sent["code"]["coding"].append(
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "S72", "display": "Fracture of femur"}
    )
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    got = round_trip(fhir("doctor.cardiology"), copy.deepcopy(sent))
    assert content(got) == content(sent)


def test_a_staff_change_shows_through(fhir: Any, cardio_patient: Any, world: Any) -> None:
    from careloop.patients import services as patient_services

    client = fhir("doctor.cardiology")
    sent = example("Condition-example.json")
    sent["code"]["coding"].append({"system": "http://hl7.org/fhir/sid/icd-10", "code": "S72"})
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    created = client.post("/fhir/Condition", sent).json()
    patient_services.update_record(
        world.actor("doctor.cardiology"), cardio_patient.pk, "conditions", int(created["id"]),
        {"onset_date": "2013-01-02"}, 1,
    )  # fmt: skip
    got = client.get(f"/fhir/Condition/{created['id']}").json()
    assert got["onsetDateTime"] == "2013-01-02"
    assert got["bodySite"] == sent["bodySite"]  # what CareLoop does not model is kept
    assert got["meta"]["versionId"] == "2"

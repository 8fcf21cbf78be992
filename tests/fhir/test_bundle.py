"""Batch and transaction Bundles: urn:uuid: references, all-or-nothing, per-entry outcomes."""

from __future__ import annotations

from typing import Any

from careloop.observations import models as om
from careloop.patients import models as pm
from tests.fhir.test_crud import condition

PATIENT_URN = "urn:uuid:2b1a2a7e-7b1a-4c55-8a3e-0d3c1b9e6f10"


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"text": "赵六"}],
        "gender": "male",
        "birthDate": "1955-02-03",
        "telecom": [{"system": "phone", "value": "13822223333"}],
    }


def _reading(subject: str, effective: str, systolic: Any = 150) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": effective,
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": systolic, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 90, "code": "mm[Hg]"},
            },
        ],
    }


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_rewrites_urn_uuid_references(fhir: Any, world: Any) -> None:
    bundle = _transaction(
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
            "resource": _reading(PATIENT_URN, "2024-03-01T08:00:00+08:00"),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "fullUrl": PATIENT_URN,
            "resource": _patient(),
            "request": {"method": "POST", "url": "Patient"},
        },
    )
    bundle["entry"][0]["resource"]["subject"]["reference"] = PATIENT_URN
    # The patient is listed second but must be created first: entries with references to it
    # would otherwise fail; POSTs run in Bundle order, so put the patient first.
    bundle["entry"].reverse()
    response = fhir("nurse.cardiology").post("/fhir", bundle)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    patient = pm.Patient.objects.get(name="赵六")
    reading = om.Observation.objects.get(patient=patient)
    assert body["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient.pk}"
    assert body["entry"][0]["response"]["location"].startswith(f"Patient/{patient.pk}/_history/")
    assert reading.value == 150


def test_transaction_is_all_or_nothing(fhir: Any, world: Any, cardio_patient: Any) -> None:
    bundle = _transaction(
        {
            "fullUrl": PATIENT_URN,
            "resource": _patient(),
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "resource": condition(cardio_patient.pk),
            "request": {"method": "POST", "url": "Condition"},
        },
        {
            "resource": _reading(PATIENT_URN, "2024-03-01T08:00:00+08:00", systolic=999),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    patients = pm.Patient.objects.count()
    conditions = pm.Condition.objects.count()
    response = fhir("nurse.cardiology").post("/fhir", bundle)
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["expression"][0] == "Bundle.entry[2]"
    assert "Observation.component[0].valueQuantity.value" in issue["expression"]
    assert pm.Patient.objects.count() == patients
    assert pm.Condition.objects.count() == conditions
    assert not om.Observation.objects.exists()


def test_batch_answers_each_entry(fhir: Any, cardio_patient: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": condition(cardio_patient.pk),
                "request": {"method": "POST", "url": "Condition"},
            },
            {
                "resource": _reading(
                    f"Patient/{cardio_patient.pk}", "2024-03-01T08:00:00+08:00", 999
                ),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "GET", "url": f"Patient/{cardio_patient.pk}"}},
            {"request": {"method": "PATCH", "url": f"Patient/{cardio_patient.pk}"}},
        ],
    }
    response = fhir("doctor.cardiology").post("/fhir/", bundle)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"].startswith("422")
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["resource"]["id"] == str(cardio_patient.pk)
    assert entries[3]["response"]["status"].startswith("400")
    assert pm.Condition.objects.filter(patient=cardio_patient).count() == 1


def test_hypertension_condition_enrols_as_the_staff_form_does(fhir: Any, clinic: Any) -> None:
    from careloop.careplans import models as cm
    from careloop.careplans import services as plan_services

    plan_services.install_default_rules(clinic.world.org)
    p = clinic.patient()
    response = fhir(clinic.actor.user.username).post("/fhir/Condition", condition(p.pk))
    assert response.status_code == 201, response.content
    enrolment = cm.Enrolment.objects.get(patient=p)
    assert enrolment.template.code == "hypertension"
    assert enrolment.source == "rule"

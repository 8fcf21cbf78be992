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
    # The reading is listed before the patient it refers to: the patient is created first.
    response = fhir("nurse.cardiology").post("/fhir", bundle)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    patient = pm.Patient.objects.get(name="赵六")
    reading = om.Observation.objects.get(patient=patient)
    assert body["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{patient.pk}"
    assert body["entry"][1]["response"]["location"].startswith(f"Patient/{patient.pk}/_history/")
    assert reading.value == 150


def test_references_in_a_cycle_are_refused_naming_the_entry(fhir: Any, world: Any) -> None:
    first, second = (f"urn:uuid:00000000-0000-4000-8000-00000000000{n}" for n in (1, 2))
    one, two = _patient(), _patient()
    two["telecom"] = [{"system": "phone", "value": "13822224444"}]
    one["link"] = [{"other": {"reference": second}, "type": "seealso"}]
    two["link"] = [{"other": {"reference": first}, "type": "seealso"}]
    bundle = _transaction(
        {"fullUrl": first, "resource": one, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": second, "resource": two, "request": {"method": "POST", "url": "Patient"}},
    )
    before = pm.Patient.objects.count()
    response = fhir("nurse.cardiology").post("/fhir", bundle)
    assert response.status_code in (400, 422), response.content
    assert response.json()["issue"][0]["expression"][0].startswith("Bundle.entry[")
    assert pm.Patient.objects.count() == before


def test_conditional_create_finds_the_existing_resource(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("nurse.cardiology")
    sent = _reading(f"Patient/{cardio_patient.pk}", "2024-03-01T08:00:00+08:00")
    sent["identifier"] = [{"system": "urn:example:gateway", "value": "r-1"}]
    criteria = f"subject=Patient/{cardio_patient.pk}&date=2024-03-01T08:00:00%2B08:00"
    first = client.post("/fhir/Observation", sent, HTTP_IF_NONE_EXIST=criteria)
    assert first.status_code == 201, first.content
    other = dict(sent, effectiveDateTime="2024-03-01T08:00:00+08:00")
    other["component"] = [dict(c) for c in sent["component"]]
    other["component"][0] = {
        **sent["component"][0],
        "valueQuantity": {"value": 160, "code": "mm[Hg]"},
    }
    again = client.post("/fhir/Observation", other, HTTP_IF_NONE_EXIST=criteria)
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert om.Observation.objects.filter(patient=cardio_patient).count() == 1
    assert om.Observation.objects.get(patient=cardio_patient).value == 150


def test_conditional_create_with_several_matches_is_refused(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("nurse.cardiology")
    for day in ("01", "02"):
        made = client.post(
            "/fhir/Observation",
            _reading(f"Patient/{cardio_patient.pk}", f"2024-03-{day}T08:00:00+08:00"),
        )
        assert made.status_code == 201
    response = client.post(
        "/fhir/Observation",
        _reading(f"Patient/{cardio_patient.pk}", "2024-03-03T08:00:00+08:00"),
        HTTP_IF_NONE_EXIST=f"subject=Patient/{cardio_patient.pk}",
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["expression"] == ["If-None-Exist"]
    assert om.Observation.objects.filter(patient=cardio_patient).count() == 2


def test_conditional_create_does_not_see_outside_the_callers_scope(
    fhir: Any, endo_patient: Any, cardio_patient: Any
) -> None:
    # A condition exists for the endocrinology patient; a cardiology nurse's criteria naming
    # that patient find nothing she may see, and her create is judged on its own (refused).
    assert (
        fhir("doctor.endocrinology").post("/fhir/Condition", condition(endo_patient.pk)).status_code
        == 201
    )
    response = fhir("doctor.cardiology").post(
        "/fhir/Condition",
        condition(endo_patient.pk),
        HTTP_IF_NONE_EXIST=f"patient=Patient/{endo_patient.pk}",
    )
    assert response.status_code in (403, 404, 422)
    assert "Hypertension" not in response.content.decode()


def test_conditional_create_in_a_transaction(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    assert client.post("/fhir/Condition", condition(cardio_patient.pk)).status_code == 201
    bundle = _transaction(
        {
            "resource": condition(cardio_patient.pk),
            "request": {
                "method": "POST",
                "url": "Condition",
                "ifNoneExist": f"patient=Patient/{cardio_patient.pk}&code=I10",
            },
        }
    )
    response = client.post("/fhir", bundle)
    assert response.status_code == 200, response.content
    assert response.json()["entry"][0]["response"]["status"] == "200 OK"
    assert pm.Condition.objects.filter(patient=cardio_patient).count() == 1


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

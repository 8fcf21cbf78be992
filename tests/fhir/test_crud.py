"""Create, read, update (If-Match), delete, history and vread; content types and errors."""

from __future__ import annotations

from typing import Any

from careloop.audit.models import AuditEvent
from careloop.patients import models as pm


def condition(patient_id: int, code: str = "I10", display: str = "Hypertension") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "onsetDateTime": "2020-03-04",
    }


def outcome_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all("diagnostics" in i and "code" in i for i in body["issue"])
    return body


def test_metadata_lists_the_registry(fhir: Any) -> None:
    response = fhir(None).get("/fhir/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["fhirVersion"] == "4.0.1"
    types = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(types) == {
        "Patient", "Observation", "Condition", "AllergyIntolerance", "Encounter",
        "MedicationRequest",
        "Practitioner", "Organization", "PractitionerRole", "CareTeam", "CarePlan", "Task", "Flag",
        "Schedule", "Slot", "Appointment", "Questionnaire", "QuestionnaireResponse",
        "Communication", "MedicationDispense", "MedicationStatement", "Consent", "Provenance",
        "AuditEvent", "Subscription",
    }  # fmt: skip
    codes = {i["code"] for i in types["Condition"]["interaction"]}
    assert codes == {
        "read",
        "vread",
        "history-instance",
        "search-type",
        "create",
        "update",
        "delete",
    }
    assert {i["code"] for i in types["Practitioner"]["interaction"]} == {
        "read", "vread", "history-instance", "search-type",
    }  # fmt: skip
    assert "code" in {p["name"] for p in types["Observation"]["searchParam"]}


def test_condition_crud_with_versions(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/Condition", condition(cardio_patient.pk))
    assert created.status_code == 201, created.content
    body = created.json()
    cid = body["id"]
    assert created["Location"].endswith(f"/fhir/Condition/{cid}/_history/1")
    assert created["ETag"] == 'W/"1"'
    assert body["subject"] == {"reference": f"Patient/{cardio_patient.pk}"}

    read = client.get(f"/fhir/Condition/{cid}")
    assert read.status_code == 200
    assert read["ETag"] == 'W/"1"' and read["Last-Modified"]
    assert read.json()["code"]["coding"][0]["code"] == "I10"

    changed = condition(cardio_patient.pk)
    changed["id"] = cid
    changed["onsetDateTime"] = "2021-01-01"
    updated = client.put(f"/fhir/Condition/{cid}", changed, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    assert updated["ETag"] == 'W/"2"'
    assert updated.json()["onsetDateTime"] == "2021-01-01"

    stale = client.put(f"/fhir/Condition/{cid}", changed, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    assert outcome_of(stale)["issue"][0]["code"] == "conflict"

    history = client.get(f"/fhir/Condition/{cid}/_history").json()
    assert history["type"] == "history"
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    first = client.get(f"/fhir/Condition/{cid}/_history/1")
    assert first.status_code == 200
    assert first.json()["onsetDateTime"] == "2020-03-04"
    assert first.json()["meta"]["versionId"] == "1"
    assert client.get(f"/fhir/Condition/{cid}/_history/9").status_code == 404

    deleted = client.delete(f"/fhir/Condition/{cid}", HTTP_IF_MATCH='W/"2"')
    assert deleted.status_code == 204
    row = pm.Condition.objects.get(pk=cid)
    assert row.deleted_at is not None  # soft: kept, hidden
    assert client.get(f"/fhir/Condition/{cid}").status_code == 404
    assert AuditEvent.objects.filter(
        action="conditions.delete", patient_id=cardio_patient.pk
    ).exists()
    assert AuditEvent.objects.filter(action="fhir.read", patient_id=cardio_patient.pk).exists()


def test_patient_create_and_update(fhir: Any, world: Any) -> None:
    client = fhir("nurse.cardiology")
    resource = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "11010519491231002X"}],
        "name": [{"family": "王", "given": ["小明"]}],
        "gender": "female",
        "birthDate": "1949-12-31",
        "telecom": [{"system": "phone", "value": "13900001111"}],
    }
    created = client.post("/fhir/Patient", resource)
    assert created.status_code == 201, created.content
    pid = created.json()["id"]
    row = pm.Patient.objects.get(pk=pid)
    assert row.name == "王小明" and row.national_id == "11010519491231002X"
    assert [p.number for p in row.phones.all()] == ["13900001111"]
    resource["name"] = [{"family": "王", "given": ["小红"]}]
    resource["id"] = pid
    updated = client.put(f"/fhir/Patient/{pid}", resource, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    assert updated.json()["name"] == [{"family": "王", "given": ["小红"]}]
    assert pm.Patient.objects.get(pk=pid).name == "王小红"
    wrong_sex = dict(resource, gender="male")
    refused = client.put(f"/fhir/Patient/{pid}", wrong_sex, HTTP_IF_MATCH='W/"2"')
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Patient.identifier"]


def test_errors_are_operation_outcomes(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    unknown = client.get("/fhir/Widget/1")
    assert unknown.status_code == 404
    outcome_of(unknown)
    assert client.get("/fhir/Widget").status_code == 404
    bad_type = client.post(
        "/fhir/Condition", "a=1", content_type="application/x-www-form-urlencoded"
    )
    assert bad_type.status_code == 415
    outcome_of(bad_type)
    bad_json = client.post("/fhir/Condition", "{not json")
    assert bad_json.status_code == 400
    no_icd = condition(cardio_patient.pk)
    no_icd["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "444814009"}]}
    refused = client.post("/fhir/Condition", no_icd)
    assert refused.status_code == 422
    assert outcome_of(refused)["issue"][0]["expression"] == ["Condition.code"]
    bad_code = client.post("/fhir/Condition", condition(cardio_patient.pk, code="Q99.99.9"))
    assert bad_code.status_code in (400, 422)
    assert any(
        "Condition.code" in e
        for i in outcome_of(bad_code)["issue"]
        for e in i.get("expression", [])
    )
    anonymous = fhir(None).get(f"/fhir/Patient/{cardio_patient.pk}")
    assert anonymous.status_code == 401
    outcome_of(anonymous)
    unsupported = client.delete(f"/fhir/Practitioner/{world_id(client)}")
    assert unsupported.status_code == 405


def world_id(client: Any) -> str:
    return client.get("/fhir/Practitioner?_count=1").json()["entry"][0]["resource"]["id"]


def test_observation_create_runs_ingest_and_dedupes(fhir: Any, cardio_patient: Any) -> None:
    from careloop.observations import models as om

    client = fhir("nurse.cardiology")
    bp = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "55284-4"}]},
        "subject": {"reference": f"Patient/{cardio_patient.pk}"},
        "effectiveDateTime": "2024-05-01T08:00:00+08:00",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 150, "unit": "mmHg", "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 95, "unit": "mmHg", "code": "mm[Hg]"},
            },
        ],
    }
    first = client.post("/fhir/Observation", bp)
    assert first.status_code == 201, first.content
    row = om.Observation.objects.get(pk=first.json()["id"])
    assert (row.kind, row.value, row.value2) == ("bp", 150, 95)
    again = client.post("/fhir/Observation", bp)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert om.Observation.objects.filter(patient=cardio_patient).count() == 1
    impossible = dict(bp, effectiveDateTime="2024-05-02T08:00:00+08:00")
    impossible["component"] = [
        dict(bp["component"][0], valueQuantity={"value": 900, "code": "mm[Hg]"}),
        bp["component"][1],
    ]
    refused = client.post("/fhir/Observation", impossible)
    assert refused.status_code == 422
    assert outcome_of(refused)["issue"][0]["expression"] == [
        "Observation.component[0].valueQuantity.value"
    ]
    generated = client.get(f"/fhir/Observation?_id={row.pk}").json()["entry"][0]["resource"]
    assert generated["code"]["coding"][0]["code"] == "55284-4"  # as sent
    assert AuditEvent.objects.filter(
        action="observation.create", patient_id=cardio_patient.pk
    ).exists()

"""Patient-record resources beyond Condition: AllergyIntolerance, Encounter, MedicationRequest.

Create and read back, search compared with a plain filter of the same rows, If-Match, history,
another department's patient, and the official R4 example read back as sent."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from careloop.patients import models as pm
from careloop.patients import services as patient_services
from tests.conftest import patient_data
from tests.corpus import CORPUS

EXAMPLES = CORPUS / "hl7-fhir-r4-examples"


def allergy(
    patient_id: int, substance: str = "Penicillin", severity: str = "severe"
) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "category": ["medication"],
        "code": {"text": substance},
        "patient": {"reference": f"Patient/{patient_id}"},
        "reaction": [{"manifestation": [{"text": "Rash"}], "severity": severity}],
        "recordedDate": "2023-05-06",
    }


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {e["resource"]["id"] for e in response.json().get("entry", [])}


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def test_allergy_create_read_update_history(fhir: Any, world: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/AllergyIntolerance", allergy(cardio_patient.pk))
    assert created.status_code == 201, created.content
    aid = created.json()["id"]
    row = pm.Allergy.objects.get(pk=aid)
    assert (row.substance, row.category, row.reaction, row.severity) == (
        "Penicillin", "medication", "Rash", "severe",
    )  # fmt: skip
    assert str(row.noted_on) == "2023-05-06"
    read = client.get(f"/fhir/AllergyIntolerance/{aid}").json()
    assert read["code"] == {"text": "Penicillin"}
    assert read["patient"] == {"reference": f"Patient/{cardio_patient.pk}"}
    assert read["clinicalStatus"]["coding"][0]["code"] == "active"

    changed = allergy(cardio_patient.pk, severity="mild")
    changed["id"] = aid
    updated = client.put(f"/fhir/AllergyIntolerance/{aid}", changed, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    assert updated.json()["reaction"][0]["severity"] == "mild"
    stale = client.put(f"/fhir/AllergyIntolerance/{aid}", changed, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    history = client.get(f"/fhir/AllergyIntolerance/{aid}/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    first = client.get(f"/fhir/AllergyIntolerance/{aid}/_history/1").json()
    assert first["reaction"][0]["severity"] == "severe"

    # Staff edit the substance: the sent code gives way to the stored one.
    staff_edit = {"substance": "Amoxicillin", "category": "medication", "reaction": "Rash",
                  "severity": "mild", "noted_on": "2023-05-06"}  # fmt: skip
    patient_services.update_record(
        world.actor("doctor.cardiology"), cardio_patient.pk, "allergies", int(aid), staff_edit, 2
    )
    assert client.get(f"/fhir/AllergyIntolerance/{aid}").json()["code"] == {"text": "Amoxicillin"}

    assert (
        client.delete(f"/fhir/AllergyIntolerance/{aid}", HTTP_IF_MATCH='W/"3"').status_code == 204
    )
    assert client.get(f"/fhir/AllergyIntolerance/{aid}").status_code == 404


def test_allergy_search_matches_a_plain_filter(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    other = patient_services.create_patient(world.actor("nurse.cardiology"), patient_data())
    sent = [
        (cardio_patient, "Penicillin", "doctor.cardiology"),
        (cardio_patient, "Peanut", "doctor.cardiology"),
        (other, "penicillin", "doctor.cardiology"),
        (endo_patient, "Penicillin", "doctor.endocrinology"),
    ]
    for patient, substance, username in sent:
        made = fhir(username).post("/fhir/AllergyIntolerance", allergy(patient.pk, substance))
        assert made.status_code == 201, made.content
    rows = list(pm.Allergy.objects.all())
    visible = [r for r in rows if r.patient_id != endo_patient.pk]
    client = fhir("doctor.cardiology")
    for query, keep in [
        ({"patient": str(cardio_patient.pk)}, lambda r: r.patient_id == cardio_patient.pk),
        ({"code": "penicillin"}, lambda r: r.substance.lower() == "penicillin"),
        ({"code": "Peanut", "patient": str(other.pk)}, lambda r: False),
        ({"clinical-status": "active"}, lambda r: True),
        ({"clinical-status": "resolved"}, lambda r: False),
        ({"_lastUpdated": "ge2000-01-01"}, lambda r: True),
        ({"patient": str(endo_patient.pk)}, lambda r: False),
    ]:
        expected = {str(r.pk) for r in visible if keep(r)}
        assert ids(client.get("/fhir/AllergyIntolerance", query)) == expected, query


def test_allergy_of_another_department_is_not_found(
    fhir: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    made = fhir("doctor.endocrinology").post("/fhir/AllergyIntolerance", allergy(endo_patient.pk))
    assert made.status_code == 201
    client = fhir("doctor.cardiology")
    assert client.get(f"/fhir/AllergyIntolerance/{made.json()['id']}").status_code == 404
    refused = client.post("/fhir/AllergyIntolerance", allergy(endo_patient.pk))
    assert refused.status_code in (404, 422)
    assert (
        not pm.Allergy.objects.filter(patient_id=endo_patient.pk)
        .exclude(pk=made.json()["id"])
        .exists()
    )


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 example corpus is absent")
def test_allergy_example_reads_back_as_sent(fhir: Any, cardio_patient: Any) -> None:
    sent = json.loads((EXAMPLES / "AllergyIntolerance-example.json").read_text(encoding="utf-8"))
    sent["patient"] = {"reference": f"Patient/{cardio_patient.pk}"}
    sent["asserter"] = {"reference": f"Patient/{cardio_patient.pk}"}
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/AllergyIntolerance", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/AllergyIntolerance/{created.json()['id']}").json()
    assert content(got) == content(sent)
    row = pm.Allergy.objects.get(pk=created.json()["id"])
    assert (row.substance, row.category, row.severity) == ("Cashew nuts", "food", "severe")
    assert row.reaction == "Anaphylactic reaction; Urticaria"
    assert str(row.noted_on) == "2014-10-09"


def encounter(patient_id: int, start: str = "2024-03-01", klass: str = "AMB") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
        "reasonCode": [{"text": "Hypertension"}],
    }


def test_encounter_create_read_update_history(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/Encounter", encounter(cardio_patient.pk))
    assert created.status_code == 201, created.content
    eid = created.json()["id"]
    row = pm.Encounter.objects.get(pk=eid)
    assert (row.kind, str(row.admitted_on), row.diagnoses) == (
        "outpatient", "2024-03-01", "Hypertension",
    )  # fmt: skip
    assert row.department.name  # the patient's department
    changed = encounter(cardio_patient.pk, klass="IMP")
    changed["period"]["end"] = "2024-03-05"
    updated = client.put(f"/fhir/Encounter/{eid}", changed, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    assert pm.Encounter.objects.get(pk=eid).kind == "inpatient"
    stale = client.put(f"/fhir/Encounter/{eid}", changed, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    history = client.get(f"/fhir/Encounter/{eid}/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert client.get(f"/fhir/Encounter/{eid}/_history/1").json()["class"]["code"] == "AMB"
    other = fhir("doctor.endocrinology")
    assert other.get(f"/fhir/Encounter/{eid}").status_code == 404


def test_encounter_search_matches_a_plain_filter(
    fhir: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    for start, klass in [("2024-01-31", "AMB"), ("2024-02-15", "IMP"), ("2024-03-01", "EMER")]:
        made = fhir("doctor.cardiology").post(
            "/fhir/Encounter", encounter(cardio_patient.pk, start, klass)
        )
        assert made.status_code == 201, made.content
    made = fhir("doctor.endocrinology").post("/fhir/Encounter", encounter(endo_patient.pk))
    assert made.status_code == 201, made.content
    visible = [r for r in pm.Encounter.objects.all() if r.patient_id == cardio_patient.pk]
    client = fhir("doctor.cardiology")
    for query, keep in [
        ({"patient": str(cardio_patient.pk)}, lambda r: True),
        ({"date": "ge2024-02-15"}, lambda r: str(r.admitted_on) >= "2024-02-15"),
        ({"date": "2024-02"}, lambda r: str(r.admitted_on).startswith("2024-02")),
        ({"class": "IMP"}, lambda r: r.kind == "inpatient"),
        ({"status": "in-progress"}, lambda r: r.kind == "inpatient"),
        ({"status": "finished"}, lambda r: r.kind != "inpatient"),
        ({"type": "emergency"}, lambda r: r.kind == "emergency"),
        ({"patient": str(endo_patient.pk)}, lambda r: False),
    ]:
        expected = {str(r.pk) for r in visible if keep(r)}
        assert ids(client.get("/fhir/Encounter", query)) == expected, query


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 example corpus is absent")
def test_encounter_example_reads_back_as_sent(fhir: Any, cardio_patient: Any) -> None:
    """The example has no period; CareLoop needs the visit date, so the variant adds one."""
    sent = json.loads((EXAMPLES / "Encounter-example.json").read_text(encoding="utf-8"))
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    sent["period"] = {"start": "2024-05-01"}
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/Encounter", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/Encounter/{created.json()['id']}").json()
    assert content(got) == content(sent)
    assert pm.Encounter.objects.get(pk=created.json()["id"]).kind == "inpatient"


def prescription(
    patient_id: int, name: str = "Amlodipine", authored: str = "2024-03-01"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"code": "C08CA01"}], "text": name},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}],
            }
        ],
    }


def test_medication_request_crud_and_refusals(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/MedicationRequest", prescription(cardio_patient.pk))
    assert created.status_code == 201, created.content
    mid = created.json()["id"]
    row = pm.Medication.objects.get(pk=mid)
    assert (row.name, row.code, row.dose, row.unit, row.frequency, row.status) == (
        "Amlodipine", "C08CA01", 5, "mg", "bid", "active",
    )  # fmt: skip
    changed = prescription(cardio_patient.pk)
    changed["status"] = "stopped"
    updated = client.put(f"/fhir/MedicationRequest/{mid}", changed, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    stale = client.put(f"/fhir/MedicationRequest/{mid}", changed, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    history = client.get(f"/fhir/MedicationRequest/{mid}/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert client.get(f"/fhir/MedicationRequest/{mid}/_history/1").json()["status"] == "active"
    assert fhir("doctor.endocrinology").get(f"/fhir/MedicationRequest/{mid}").status_code == 404
    odd = prescription(cardio_patient.pk)
    odd["dosageInstruction"][0]["timing"] = {
        "repeat": {"frequency": 5, "period": 1, "periodUnit": "d"}
    }
    refused = client.post("/fhir/MedicationRequest", odd)
    assert refused.status_code == 422
    assert pm.Medication.objects.filter(patient=cardio_patient).count() == 1


def test_medication_request_search_matches_a_plain_filter(
    fhir: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    for name, authored in [("Amlodipine", "2024-01-31"), ("Metoprolol", "2024-02-15")]:
        made = client.post(
            "/fhir/MedicationRequest", prescription(cardio_patient.pk, name, authored)
        )
        assert made.status_code == 201, made.content
    made = fhir("doctor.endocrinology").post(
        "/fhir/MedicationRequest", prescription(endo_patient.pk)
    )
    assert made.status_code == 201, made.content
    visible = [r for r in pm.Medication.objects.all() if r.patient_id == cardio_patient.pk]
    for query, keep in [
        ({"patient": str(cardio_patient.pk)}, lambda r: True),
        ({"code": "metoprolol"}, lambda r: r.name == "Metoprolol"),
        ({"code": "C08CA01"}, lambda r: True),
        ({"authoredon": "ge2024-02"}, lambda r: str(r.start_date) >= "2024-02-01"),
        ({"status": "active"}, lambda r: True),
        ({"status": "completed"}, lambda r: False),
        ({"intent": "order"}, lambda r: True),
        ({"intent": "plan"}, lambda r: False),
    ]:
        expected = {str(r.pk) for r in visible if keep(r)}
        assert ids(client.get("/fhir/MedicationRequest", query)) == expected, query


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 example corpus is absent")
def test_medication_request_example_reads_back_as_sent(fhir: Any, cardio_patient: Any) -> None:
    """medrx0313 (medicationCodeableConcept, once a day); references to resources CareLoop does
    not hold (encounter, requester, reasons) are kept as sent, not resolved."""
    sent = json.loads((EXAMPLES / "MedicationRequest-medrx0313.json").read_text(encoding="utf-8"))
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/MedicationRequest", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/MedicationRequest/{created.json()['id']}").json()
    assert content(got) == content(sent)
    row = pm.Medication.objects.get(pk=created.json()["id"])
    assert (row.frequency, row.route, row.unit) == ("qd", "po", "mg")


def test_encounter_includes_its_department_and_the_patient(
    fhir: Any, cardio_patient: Any, world: Any
) -> None:
    client = fhir("doctor.cardiology")
    assert client.post("/fhir/Encounter", encounter(cardio_patient.pk)).status_code == 201
    row = pm.Encounter.objects.get(patient=cardio_patient)
    dept = f"Organization/dept-{row.department_id}"
    found = client.get(
        "/fhir/Encounter",
        {
            "service-provider": dept,
            "_include": ["Encounter:service-provider", "Encounter:patient"],
        },
    ).json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in found["entry"]}
    assert modes == {("Encounter", "match"), ("Organization", "include"), ("Patient", "include")}
    included = [e for e in found["entry"] if e["resource"]["resourceType"] == "Organization"]
    assert [e["fullUrl"].split("/fhir/")[-1] for e in included] == [dept]
    other = pm.Encounter.objects.exclude(department_id=row.department_id)
    assert (
        client.get("/fhir/Encounter", {"service-provider": "Organization/dept-0"}).json()["total"]
        == other.filter(department_id=0).count()
    )


def test_include_needs_read_permission_on_the_included_type(fhir: Any, cardio_patient: Any) -> None:
    assert (
        fhir("doctor.cardiology").post("/fhir/Encounter", encounter(cardio_patient.pk)).status_code
        == 201
    )
    narrow = fhir("doctor.cardiology", scopes="user/Encounter.rs")
    found = narrow.get(
        "/fhir/Encounter",
        {"_include": ["Encounter:service-provider", "Encounter:patient"]},
    ).json()
    assert [e["resource"]["resourceType"] for e in found["entry"]] == ["Encounter"]


def test_an_order_without_dosing_instructions_is_listed_not_reminded(
    fhir: Any, clinic: Any
) -> None:
    from careloop.reminders import models as rm
    from tests.support.clinic import utc

    p = clinic.patient()
    clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
    sent = prescription(p.pk, name="Hydrochlorothiazide 25 MG")
    del sent["dosageInstruction"]
    client = fhir(clinic.actor.user.username)
    created = client.post("/fhir/MedicationRequest", sent)
    assert created.status_code == 201, created.content
    row = pm.Medication.objects.get(pk=created.json()["id"])
    assert (row.frequency, row.dose, row.unit) == ("ud", None, "")
    assert not [
        o
        for o in rm.Occurrence.objects.filter(patient=p, kind="medication")
        if o.payload.get("medication_id") == row.pk
    ]
    got = client.get(f"/fhir/MedicationRequest/{row.pk}").json()
    assert "dosageInstruction" not in got  # read back as sent
    page = Client_for(clinic).get(f"/patients/{p.pk}/tab/medications/")
    assert "Hydrochlorothiazide 25 MG" in page.content.decode()
    # A scheduled order still needs its amount.
    scheduled = prescription(p.pk)
    del scheduled["dosageInstruction"][0]["doseAndRate"]
    refused = client.post("/fhir/MedicationRequest", scheduled)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == [
        "MedicationRequest.dosageInstruction.doseAndRate.doseQuantity"
    ]


def Client_for(clinic: Any) -> Any:  # noqa: N802 - reads like the class it returns
    from django.test import Client

    client = Client()
    client.force_login(clinic.actor.user)
    return client

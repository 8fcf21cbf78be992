"""MedicationDispense, MedicationStatement, Consent, Provenance and AuditEvent at /fhir.

Create → read → search → update with If-Match (412 when stale) → history → delete for the
writable types; scope attacks (another department, another organisation, a patient-context
token, _include); the audit trail only for auditors and only their organisation's events;
validation errors as an OperationOutcome naming the element; the official R4 examples read
back as sent; and the ``dispenses`` record kind through the patient services."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.accounts.roles import Role
from careloop.audit.models import AuditEvent
from careloop.kit.errors import StaleVersion, ValidationFailed
from careloop.patients import models as pm
from careloop.patients import services as patient_services
from tests.conftest import PASSWORD
from tests.corpus import CORPUS

EXAMPLES = CORPUS / "hl7-fhir-r4-examples"
needs_corpus = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 example corpus is absent")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PURPOSE = "urn:careloop:consent-purpose"
CHANNEL = "urn:careloop:fhir:consent-channel"
DAYS = "MedicationDispense.daysSupply"
# The MedicationDispense examples that name the medicine by code (medicationCodeableConcept).
CODED_DISPENSES = [
    "MedicationDispense-meddisp0307.json",
    "MedicationDispense-meddisp0316.json",
    "MedicationDispense-meddisp0318.json",
    "MedicationDispense-meddisp0321.json",
    "MedicationDispense-meddisp0325.json",
    "MedicationDispense-meddisp0326.json",
    "MedicationDispense-meddisp0327.json",
    "MedicationDispense-meddisp0328.json",
]


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e.get("search", {}).get("mode") == "match"
    }


def issue(response: Any, status: int, expression: str) -> None:
    """An OperationOutcome with the status that names the element."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    where = [e for i in body["issue"] for e in i.get("expression", [])]
    assert any(e.startswith(expression) for e in where), where


def prescription(world: Any, patient: Any, username: str = "doctor.cardiology") -> Any:
    return patient_services.add_record(
        world.actor(username),
        patient.pk,
        "medications",
        {"name": "Atorvastatin", "code": "617312", "dose": "20", "unit": "mg",
         "route": "po", "frequency": "qn", "start_date": "2025-01-02", "status": "active"},
    )  # fmt: skip


def dispense(patient_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "617312", "display": "atorvastatin 20 MG"}],
            "text": "Atorvastatin 20 mg tablet",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "quantity": {"value": 28, "unit": "tablet"},
        "daysSupply": {"value": 28, "unit": "days", "system": "http://unitsofmeasure.org",
                       "code": "d"},
        "whenHandedOver": "2025-01-03",
    }  # fmt: skip
    body.update(changes)
    return body


def consent(patient_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2025-02-01",
        "sourceAttachment": {"title": "Signed consent form"},
        "provision": {
            "type": "permit",
            "purpose": [{"system": PURPOSE, "code": "care_reminders"}],
            "extension": [{"url": CHANNEL, "valueCode": "sms"}],
        },
    }
    body.update(changes)
    return body


# --- the dispenses record kind ------------------------------------------------------------


def test_dispenses_record_kind_is_versioned_audited_and_soft_deleted(
    world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    actor = world.actor("nurse.cardiology")
    order = prescription(world, cardio_patient)
    data = {"name": "阿托伐他汀钙片", "prescription": order.pk, "quantity": "28",
            "quantity_unit": "片", "days_supply": 28, "when_handed_over": "2025-01-03",
            "drug_class": "statins", "source": "his"}  # fmt: skip
    row = patient_services.add_record(actor, cardio_patient.pk, "dispenses", data)
    assert (row.prescription_id, row.days_supply, row.status, row.drug_class) == (
        order.pk, 28, "completed", "statins",
    )  # fmt: skip
    assert AuditEvent.objects.filter(action="dispenses.create", object_id=str(row.pk)).exists()

    changed = patient_services.update_record(
        actor, cardio_patient.pk, "dispenses", row.pk, {"days_supply": 30}, 1
    )
    assert (changed.version, changed.days_supply, changed.name) == (2, 30, "阿托伐他汀钙片")
    with pytest.raises(StaleVersion):
        patient_services.update_record(
            actor, cardio_patient.pk, "dispenses", row.pk, {"days_supply": 31}, 1
        )
    patient_services.delete_record(actor, cardio_patient.pk, "dispenses", row.pk, 2)
    row.refresh_from_db()
    assert row.deleted_at is not None
    versions = pm.RecordVersion.objects.filter(kind="dispenses", object_id=row.pk)
    assert sorted(versions.values_list("version", "change")) == [
        (1, "create"), (2, "update"), (3, "delete"),
    ]  # fmt: skip
    assert versions.get(version=1).snapshot["days_supply"] == 28

    # Another patient's prescription cannot be filled; a handed-over fill needs its date and
    # a days supply of at least one day.
    other = prescription(world, endo_patient, "doctor.endocrinology")
    for bad, field in [
        ({**data, "prescription": other.pk}, "prescription"),
        ({**data, "when_handed_over": ""}, "when_handed_over"),
        ({**data, "days_supply": 0}, "days_supply"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            patient_services.add_record(actor, cardio_patient.pk, "dispenses", bad)
        assert field in refused.value.details


def test_dispensings_are_shown_with_the_medications(world: Any, cardio_patient: Any) -> None:
    patient_services.add_record(
        world.actor("nurse.cardiology"), cardio_patient.pk, "dispenses",
        {"name": "Metformin XR", "quantity": "60", "quantity_unit": "tablet",
         "days_supply": 30, "when_handed_over": "2025-03-04"},
    )  # fmt: skip
    Staff.objects.filter(username="nurse.cardiology").update(language="en")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username="nurse.cardiology", password=PASSWORD)
    page = client.get(reverse("patients:tab", args=[cardio_patient.pk, "medications"]))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="section-dispenses"' in text
    for shown in ("Metformin XR", "2025-03-04", "Days supply", ">30<"):
        assert shown in text, shown


# --- MedicationDispense -------------------------------------------------------------------


def test_dispense_create_read_search_update_history_delete(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    order = prescription(world, cardio_patient)
    sent = dispense(
        cardio_patient.pk, authorizingPrescription=[{"reference": f"MedicationRequest/{order.pk}"}]
    )
    created = client.post("/fhir/MedicationDispense", sent)
    assert created.status_code == 201, created.content
    did = created.json()["id"]
    row = pm.Dispense.objects.get(pk=did)
    assert (row.name, row.code, row.code_system, row.days_supply, row.source) == (
        "Atorvastatin 20 mg tablet", "617312", RXNORM, 28, "fhir",
    )  # fmt: skip
    assert (row.prescription_id, str(row.when_handed_over), row.quantity_unit) == (
        order.pk, "2025-01-03", "tablet",
    )  # fmt: skip
    assert content(client.get(f"/fhir/MedicationDispense/{did}").json()) == content(sent)

    later = client.post(
        "/fhir/MedicationDispense",
        dispense(cardio_patient.pk, whenHandedOver="2025-02-01", status="in-progress"),
    )
    later_id = later.json()["id"]
    for query, expected in [
        ({"patient": str(cardio_patient.pk)}, {did, later_id}),
        ({"subject": f"Patient/{cardio_patient.pk}"}, {did, later_id}),
        ({"prescription": f"MedicationRequest/{order.pk}"}, {did}),
        ({"whenhandedover": "2025-01-03"}, {did}),
        ({"whenhandedover": "ge2025-01-04"}, {later_id}),
        ({"whenhandedover": "lt2025-02"}, {did}),
        ({"status": "in-progress"}, {later_id}),
        ({"code": f"{RXNORM}|617312"}, {did, later_id}),
        ({"code": "http://hl7.org/fhir/sid/ndc|617312"}, set()),
        ({"_lastUpdated": "ge2000-01-01"}, {did, later_id}),
    ]:
        assert ids(client.get("/fhir/MedicationDispense", query)) == expected, query

    changed = dispense(cardio_patient.pk, id=did, daysSupply={"value": 30, "unit": "d"})
    updated = client.put(f"/fhir/MedicationDispense/{did}", changed, HTTP_IF_MATCH='W/"1"')
    assert updated.status_code == 200, updated.content
    assert pm.Dispense.objects.get(pk=did).days_supply == 30
    assert pm.Dispense.objects.get(pk=did).source == "fhir"  # an update keeps the source
    stale = client.put(f"/fhir/MedicationDispense/{did}", changed, HTTP_IF_MATCH='W/"1"')
    issue(stale, 412, "If-Match")
    history = client.get(f"/fhir/MedicationDispense/{did}/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    first = client.get(f"/fhir/MedicationDispense/{did}/_history/1").json()
    assert first["daysSupply"]["value"] == 28
    issue(client.delete(f"/fhir/MedicationDispense/{did}", HTTP_IF_MATCH='W/"1"'), 412, "If-Match")
    assert (
        client.delete(f"/fhir/MedicationDispense/{did}", HTTP_IF_MATCH='W/"2"').status_code == 204
    )
    assert client.get(f"/fhir/MedicationDispense/{did}").status_code == 404
    assert pm.Dispense.objects.get(pk=did).deleted_at is not None


def test_a_staff_change_to_a_dispense_shows_through(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    sent = dispense(cardio_patient.pk, whenPrepared="2025-01-02T10:00:00Z")
    did = client.post("/fhir/MedicationDispense", sent).json()["id"]
    patient_services.update_record(
        world.actor("nurse.cardiology"), cardio_patient.pk, "dispenses", int(did),
        {"days_supply": 14, "drug_class": "statins"}, 1,
    )  # fmt: skip
    got = client.get(f"/fhir/MedicationDispense/{did}").json()
    assert got["daysSupply"] == {"value": 14, "unit": "d", "system": "http://unitsofmeasure.org",
                                 "code": "d"}  # fmt: skip
    assert got["whenPrepared"] == sent["whenPrepared"]  # what CareLoop does not model is kept
    assert got["quantity"] == sent["quantity"]


def test_dispense_time_handed_over_is_the_local_date(fhir: Any, cardio_patient: Any) -> None:
    # 16:20 UTC is 00:20 the next day in Shanghai, the organisation's time zone.
    sent = dispense(cardio_patient.pk, whenHandedOver="2015-01-15T16:20:00Z")
    made = fhir("doctor.cardiology").post("/fhir/MedicationDispense", sent)
    assert str(pm.Dispense.objects.get(pk=made.json()["id"]).when_handed_over) == "2015-01-16"


def test_dispense_validation_names_the_element(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    pid = cardio_patient.pk
    no_days = dispense(pid)
    del no_days["daysSupply"]
    by_reference = dispense(pid, medicationReference={"reference": "Medication/1"})
    del by_reference["medicationCodeableConcept"]
    other = prescription(world, endo_patient, "doctor.endocrinology")
    for body, status, expression in [
        (no_days, 422, "MedicationDispense.daysSupply"),
        (dispense(pid, daysSupply={"value": 1, "code": "wk"}), 422, DAYS),
        (dispense(pid, daysSupply={"value": 2.5, "code": "d"}), 422, DAYS),
        (dispense(pid, daysSupply={"value": 0, "code": "d"}), 422, DAYS),
        (dispense(pid, whenHandedOver=None), 422, "MedicationDispense.whenHandedOver"),
        (dispense(pid, status="done"), 422, "MedicationDispense.status"),
        (by_reference, 422, "MedicationDispense.medicationReference"),
        (dispense(pid, authorizingPrescription=[{"reference": f"MedicationRequest/{other.pk}"}]),
         422, "MedicationDispense.authorizingPrescription"),
        (dispense(pid, authorizingPrescription=[{"reference": "Observation/1"}]), 422,
         "MedicationDispense.authorizingPrescription"),
        (dispense(pid, quantity={"value": "many"}), 400, "MedicationDispense.quantity"),
    ]:  # fmt: skip
        if body.get("whenHandedOver") is None:
            body.pop("whenHandedOver", None)
        body = {k: v for k, v in body.items() if v is not None}
        issue(client.post("/fhir/MedicationDispense", body), status, expression)
    assert not pm.Dispense.objects.exists()


@needs_corpus
@pytest.mark.parametrize("name", CODED_DISPENSES)
def test_dispense_examples_read_back_as_sent(
    name: str, fhir: Any, world: Any, cardio_patient: Any
) -> None:
    # Variant: the example's patient and prescription are rewritten to local ones (CareLoop
    # links a dispensing only to a prescription of the same patient that it holds).
    order = prescription(world, cardio_patient)
    sent = example(name)
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    sent["authorizingPrescription"] = [{"reference": f"MedicationRequest/{order.pk}"}]
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/MedicationDispense", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/MedicationDispense/{created.json()['id']}").json()
    assert content(got) == content(sent)
    row = pm.Dispense.objects.get(pk=created.json()["id"])
    assert row.days_supply == sent["daysSupply"]["value"]


def test_dispense_is_not_reachable_from_another_department_or_organisation(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    made = fhir("doctor.endocrinology").post("/fhir/MedicationDispense", dispense(endo_patient.pk))
    did = made.json()["id"]
    for attacker in ("doctor.cardiology", "nurse.other", "admin.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/MedicationDispense/{did}").status_code == 404
        assert client.get(f"/fhir/MedicationDispense/{did}/_history").status_code == 404
        for query in (
            {"patient": str(endo_patient.pk), "_include": "MedicationDispense:patient"},
            {"_include": "MedicationDispense:subject"},
            {"_id": did},
        ):
            found = client.get("/fhir/MedicationDispense", query)
            assert found.status_code == 200
            assert found.json()["total"] == 0, (attacker, query)
            assert endo_patient.name.encode() not in found.content
        refused = client.put(f"/fhir/MedicationDispense/{did}", dispense(endo_patient.pk, id=did))
        # 404 outside the patient scope; 403 first for a role that writes no clinical data.
        assert refused.status_code == (403 if attacker == "admin.other" else 404)
        assert client.delete(f"/fhir/MedicationDispense/{did}").status_code in (403, 404)
        assert client.post("/fhir/MedicationDispense", dispense(endo_patient.pk)).status_code in (
            403,
            404,
            422,
        )
    assert pm.Dispense.objects.count() == 1
    assert pm.Dispense.objects.get().version == 1


def test_a_patient_context_token_reaches_only_its_patient(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    other = patient_services.create_patient(
        world.actor("nurse.cardiology"),
        {"name": "李四", "sex": "female", "date_of_birth": "1950-01-01",
         "phones": ["13912345678"]},
    )  # fmt: skip
    doctor = fhir("doctor.cardiology")
    mine = doctor.post("/fhir/MedicationDispense", dispense(cardio_patient.pk)).json()["id"]
    theirs = doctor.post("/fhir/MedicationDispense", dispense(other.pk)).json()["id"]
    token = fhir(
        "doctor.cardiology",
        scopes="patient/MedicationDispense.cruds patient/Patient.rs",
        patient_id=cardio_patient.pk,
    )
    assert ids(token.get("/fhir/MedicationDispense")) == {mine}
    assert token.get(f"/fhir/MedicationDispense/{theirs}").status_code == 404
    included = token.get(
        "/fhir/MedicationDispense", {"_include": "MedicationDispense:patient"}
    ).json()
    assert {e["resource"]["id"] for e in included["entry"]} == {mine, str(cardio_patient.pk)}
    assert token.post("/fhir/MedicationDispense", dispense(other.pk)).status_code == 403


# --- MedicationStatement ------------------------------------------------------------------


def statement(patient_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"text": "Hydrochlorothiazide 25 mg"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-11-01",
        "informationSource": {"reference": f"Patient/{patient_id}"},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 25, "unit": "mg"}}],
            }
        ],
    }
    body.update(changes)
    return body


def test_statements_list_the_medication_list_and_create_reported_entries(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    order = prescription(world, cardio_patient)
    sent = statement(cardio_patient.pk)
    created = client.post("/fhir/MedicationStatement", sent)
    assert created.status_code == 201, created.content
    sid = created.json()["id"]
    row = pm.Medication.objects.get(pk=sid)
    assert (row.origin, row.frequency, str(row.start_date), row.name) == (
        "reported", "qd", "2024-11-01", "Hydrochlorothiazide 25 mg",
    )  # fmt: skip
    assert content(client.get(f"/fhir/MedicationStatement/{sid}").json()) == content(sent)
    assert pm.RecordVersion.objects.filter(kind="medications", object_id=sid).count() == 1

    # The prescription is on the list too; staff see which entry was reported.
    listed = client.get("/fhir/MedicationStatement", {"patient": str(cardio_patient.pk)})
    assert ids(listed) == {str(order.pk), sid}
    read_order = client.get(f"/fhir/MedicationStatement/{order.pk}").json()
    assert "category" not in read_order and read_order["effectiveDateTime"] == "2025-01-02"
    for query, expected in [
        ({"effective": "lt2025"}, {sid}),
        ({"effective": "ge2025-01-01"}, {str(order.pk)}),
        ({"code": "617312"}, {str(order.pk)}),
        ({"status": "active"}, {str(order.pk), sid}),
        ({"status": "stopped"}, set()),
    ]:
        assert ids(client.get("/fhir/MedicationStatement", query)) == expected, query

    # The statement's elements never leak into the MedicationRequest view of the same row.
    as_request = client.get(f"/fhir/MedicationRequest/{sid}").json()
    assert "informationSource" not in as_request and "dosage" not in as_request
    # Statements are created here, changed elsewhere.
    assert client.put(f"/fhir/MedicationStatement/{sid}", {**sent, "id": sid}).status_code == 405
    assert client.delete(f"/fhir/MedicationStatement/{sid}").status_code == 405
    history = client.get(f"/fhir/MedicationStatement/{sid}/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"1"']


def test_statement_validation_and_scope(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    no_dose = statement(cardio_patient.pk)
    del no_dose["dosage"][0]["doseAndRate"]
    issue(client.post("/fhir/MedicationStatement", no_dose), 422, "MedicationStatement.dosage")
    issue(
        client.post("/fhir/MedicationStatement", statement(cardio_patient.pk, status="intended")),
        422, "MedicationStatement.status",
    )  # fmt: skip
    theirs = prescription(world, endo_patient, "doctor.endocrinology")
    assert client.get(f"/fhir/MedicationStatement/{theirs.pk}").status_code == 404
    found = client.get("/fhir/MedicationStatement", {"patient": str(endo_patient.pk)})
    assert found.json()["total"] == 0
    assert client.post("/fhir/MedicationStatement", statement(endo_patient.pk)).status_code == 404


@needs_corpus
def test_statement_example_reads_back_as_sent(fhir: Any, cardio_patient: Any) -> None:
    # Variant of example003: CareLoop keeps a medicine with a dosing frequency, and the example
    # gives none ("1 tablet per day" only in text), so its timing is added; the patient is
    # rewritten to a local one (the example's informationSource too, being the same patient).
    sent = example("MedicationStatement-example003.json")
    sent["subject"] = {"reference": f"Patient/{cardio_patient.pk}"}
    sent["informationSource"] = {"reference": f"Patient/{cardio_patient.pk}"}
    sent["dosage"][0]["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/MedicationStatement", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/MedicationStatement/{created.json()['id']}").json()
    assert content(got) == content(sent)


# --- Consent ------------------------------------------------------------------------------


def test_consent_create_read_search_update_history_delete(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    sent = consent(cardio_patient.pk)
    created = client.post("/fhir/Consent", sent)
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    row = pm.Consent.objects.get(pk=cid)
    assert (row.purpose, row.channel, row.granted, str(row.decided_on), row.source) == (
        "care_reminders", "sms", True, "2025-02-01", "paper",
    )  # fmt: skip
    assert content(client.get(f"/fhir/Consent/{cid}").json()) == content(sent)

    # A later refusal for the same purpose and channel is in force; the first is not.
    refusal = consent(cardio_patient.pk, dateTime="2025-03-01")
    refusal["provision"] = {**refusal["provision"], "type": "deny"}
    later = client.post("/fhir/Consent", refusal).json()["id"]
    assert pm.Consent.objects.get(pk=later).granted is False
    assert client.get(f"/fhir/Consent/{cid}").json()["status"] == "inactive"
    education = consent(cardio_patient.pk)
    education["provision"] = {**education["provision"],
                              "purpose": [{"system": PURPOSE, "code": "education"}]}  # fmt: skip
    edu = client.post("/fhir/Consent", education).json()["id"]
    for query, expected in [
        ({"patient": str(cardio_patient.pk)}, {cid, later, edu}),
        ({"status": "active"}, {later, edu}),
        ({"status": "inactive"}, {cid}),
        ({"purpose": f"{PURPOSE}|education"}, {edu}),
        ({"purpose": "research"}, set()),
        ({"date": "ge2025-02-15"}, {later}),
        ({"date": "2025-02"}, {cid, edu}),
        ({"scope": "patient-privacy"}, {cid, later, edu}),
    ]:
        assert ids(client.get("/fhir/Consent", query)) == expected, query

    changed = consent(cardio_patient.pk, id=edu)
    changed["provision"] = {**education["provision"], "type": "deny"}
    assert client.put(f"/fhir/Consent/{edu}", changed, HTTP_IF_MATCH='W/"1"').status_code == 200
    assert pm.Consent.objects.get(pk=edu).granted is False
    issue(client.put(f"/fhir/Consent/{edu}", changed, HTTP_IF_MATCH='W/"1"'), 412, "If-Match")
    history = client.get(f"/fhir/Consent/{edu}/_history").json()
    assert [e["resource"]["provision"]["type"] for e in history["entry"]] == ["deny", "permit"]
    assert client.delete(f"/fhir/Consent/{later}", HTTP_IF_MATCH='W/"1"').status_code == 204
    # With the refusal withdrawn (entered in error), the earlier permit is in force again.
    assert client.get(f"/fhir/Consent/{cid}").json()["status"] == "active"


def test_consent_is_written_with_the_consent_role(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    # An organisation admin records consents (as in the staff pages) without clinical writing.
    made = fhir("admin").post("/fhir/Consent", consent(cardio_patient.pk))
    assert made.status_code == 201, made.content
    assert fhir("auditor").post("/fhir/Consent", consent(cardio_patient.pk)).status_code == 403


def test_consent_validation_names_the_element(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    pid = cardio_patient.pk
    base = consent(pid)
    no_type = copy.deepcopy(base)
    del no_type["provision"]["type"]
    bad_purpose = copy.deepcopy(base)
    bad_purpose["provision"]["purpose"] = [{"system": PURPOSE, "code": "marketing"}]
    no_channel = copy.deepcopy(base)
    del no_channel["provision"]["extension"]
    no_source = copy.deepcopy(base)
    del no_source["sourceAttachment"]
    for body, status, expression in [
        (no_type, 422, "Consent.provision.type"),
        (bad_purpose, 422, "Consent.provision.purpose"),
        (no_channel, 422, "Consent.provision.extension"),
        (no_source, 422, "Consent.extension"),
        (consent(pid, status="proposed"), 422, "Consent.status"),
        (consent(pid, scope={"coding": [{"code": "research"}]}), 422, "Consent.scope"),
        (consent(pid, dateTime="2999-01-01"), 422, "Consent.dateTime"),
        (consent(pid, dateTime="2025"), 422, "Consent.dateTime"),
    ]:
        issue(client.post("/fhir/Consent", body), status, expression)
    assert not pm.Consent.objects.exists()


def test_consent_scope_attacks(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    cid = fhir("doctor.endocrinology").post("/fhir/Consent", consent(endo_patient.pk)).json()["id"]
    for attacker in ("doctor.cardiology", "nurse.other", "admin.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/Consent/{cid}").status_code == 404
        found = client.get("/fhir/Consent", {"_include": "Consent:patient"})
        assert found.json()["total"] == 0 and endo_patient.name.encode() not in found.content
        assert client.put(f"/fhir/Consent/{cid}", consent(endo_patient.pk, id=cid)).status_code in (
            403, 404,
        )  # fmt: skip
    # A patient-context token may not record another patient's consent.
    token = fhir("doctor.cardiology", scopes="patient/Consent.cruds", patient_id=cardio_patient.pk)
    assert token.post("/fhir/Consent", consent(endo_patient.pk)).status_code in (403, 404)
    assert token.get(f"/fhir/Consent/{cid}").status_code == 404
    assert pm.Consent.objects.count() == 1


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "Consent-consent-example-basic.json",
        "Consent-consent-example-notTime.json",
        "Consent-consent-example-Out.json",
        "Consent-consent-example-notOrg.json",
    ],
)
def test_consent_examples_read_back_as_sent(name: str, fhir: Any, cardio_patient: Any) -> None:
    # Variant: CareLoop keeps one decision per purpose and channel, which the examples do not
    # state, so the purpose coding and the channel extension are added to the provision (and
    # a permit where the example leaves the type out); the patient is rewritten to a local one.
    sent = example(name)
    sent["patient"] = {"reference": f"Patient/{cardio_patient.pk}"}
    provision = sent.setdefault("provision", {})
    provision.setdefault("type", "permit")
    provision["purpose"] = [{"system": PURPOSE, "code": "research"}]
    provision["extension"] = [{"url": CHANNEL, "valueCode": "wechat"}]
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/Consent", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/Consent/{created.json()['id']}").json()
    assert content(got) == content(sent)
    row = pm.Consent.objects.get(pk=created.json()["id"])
    assert (row.purpose, row.channel, row.granted) == (
        "research", "wechat", provision["type"] == "permit",
    )  # fmt: skip


# --- Provenance ---------------------------------------------------------------------------


def test_provenance_tells_who_changed_which_record_when(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    did = client.post("/fhir/MedicationDispense", dispense(cardio_patient.pk)).json()["id"]
    client.put(
        f"/fhir/MedicationDispense/{did}",
        dispense(cardio_patient.pk, id=did, status="stopped"),
        HTTP_IF_MATCH='W/"1"',
    )
    found = client.get("/fhir/Provenance", {"target": f"MedicationDispense/{did}"}).json()
    assert found["total"] == 2
    resources = [e["resource"] for e in found["entry"]]
    assert [r["activity"]["coding"][0]["code"] for r in resources] == ["UPDATE", "CREATE"]
    assert resources[0]["target"] == [{"reference": f"MedicationDispense/{did}/_history/2"}]
    doctor = world.staff["doctor.cardiology"]
    assert resources[0]["agent"][0]["who"]["reference"] == f"Practitioner/{doctor.pk}"
    one = client.get(f"/fhir/Provenance/{resources[1]['id']}")
    assert one.status_code == 200 and one.json()["recorded"] == resources[1]["recorded"]
    versioned = client.get("/fhir/Provenance", {"target": f"MedicationDispense/{did}/_history/1"})
    assert ids(versioned) == {resources[1]["id"]}
    for query in (
        {"agent": f"Practitioner/{doctor.pk}"},
        {"patient": str(cardio_patient.pk)},
        {"recorded": "ge2000-01-01"},
    ):
        assert {resources[0]["id"], resources[1]["id"]} <= ids(
            client.get("/fhir/Provenance", query)
        )
    assert ids(client.get("/fhir/Provenance", {"recorded": "lt2000-01-01"})) == set()

    # Another department's changes are out of reach, by id, search and _include.
    cond = patient_services.add_record(
        world.actor("doctor.endocrinology"), endo_patient.pk, "conditions",
        {"icd10_code": "E11", "display": "T2DM"},
    )  # fmt: skip
    theirs = pm.RecordVersion.objects.get(kind="conditions", object_id=cond.pk)
    for attacker in ("doctor.cardiology", "nurse.other"):
        other = fhir(attacker)
        assert other.get(f"/fhir/Provenance/{theirs.pk}").status_code == 404
        listed = other.get(
            "/fhir/Provenance", {"target": f"Condition/{cond.pk}", "_include": "Provenance:patient"}
        )
        assert listed.json()["total"] == 0 and endo_patient.name.encode() not in listed.content
    assert fhir("auditor").get("/fhir/Provenance").status_code == 403
    assert client.post("/fhir/Provenance", {"resourceType": "Provenance"}).status_code == 405


# --- AuditEvent ---------------------------------------------------------------------------


def test_audit_events_are_for_auditors_of_the_organisation(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    doctor = fhir("doctor.cardiology")
    did = doctor.post("/fhir/MedicationDispense", dispense(cardio_patient.pk)).json()["id"]
    doctor.get(f"/fhir/MedicationDispense/{did}")
    fhir("nurse.other").get(f"/fhir/MedicationDispense/{did}")  # refused, audited elsewhere
    other_auditor = accounts.create_staff(
        organisation_id=world.other_org.pk, username="auditor.other", password=PASSWORD,
        role=Role.AUDITOR, department_ids=[], display_name="auditor.other",
    )  # fmt: skip

    for refused in ("nurse.cardiology", "doctor.cardiology", "admin", "head.cardiology"):
        client = fhir(refused)
        issue_status = client.get("/fhir/AuditEvent")
        assert issue_status.status_code == 403, refused
        any_event = AuditEvent.objects.filter(organisation_id=world.org.pk).first()
        assert client.get(f"/fhir/AuditEvent/{any_event.pk}").status_code == 403
    assert AuditEvent.objects.filter(
        actor="nurse.cardiology", outcome="denied", detail__type="AuditEvent"
    ).exists()

    auditor = fhir("auditor")
    own = set(AuditEvent.objects.filter(organisation_id=world.org.pk).values_list("pk", flat=True))
    everything = auditor.get("/fhir/AuditEvent", {"_count": "200"})
    assert {int(i) for i in ids(everything)} == own  # the search itself is audited after it
    create = AuditEvent.objects.get(action="dispenses.create", object_id=did)
    read = auditor.get(f"/fhir/AuditEvent/{create.pk}").json()
    assert read["action"] == "C" and read["outcome"] == "0"
    assert read["subtype"] == [{"system": "urn:careloop:audit-event", "code": "dispenses.create"}]
    assert (
        read["agent"][0]["who"]["reference"]
        == f"Practitioner/{world.staff['doctor.cardiology'].pk}"
    )
    whats = [e["what"] for e in read["entity"]]
    assert {"reference": f"Patient/{cardio_patient.pk}"} in whats
    assert {"reference": f"MedicationDispense/{did}"} in whats

    other_event = AuditEvent.objects.filter(organisation_id=world.other_org.pk).first()
    assert other_event is not None  # the other organisation's refused read
    assert auditor.get(f"/fhir/AuditEvent/{other_event.pk}").status_code == 404
    assert str(other_event.pk) not in ids(auditor.get("/fhir/AuditEvent", {"_count": "200"}))
    theirs = fhir("auditor.other").get("/fhir/AuditEvent", {"_count": "200"})
    assert ids(theirs) and not {int(i) for i in ids(theirs)} & own
    assert other_auditor.organisation_id == world.other_org.pk

    doctor_pk = world.staff["doctor.cardiology"].pk
    for query, keep in [
        ({"agent": f"Practitioner/{doctor_pk}"}, lambda e: e.actor_id == doctor_pk),
        ({"patient": str(cardio_patient.pk)}, lambda e: e.patient_id == cardio_patient.pk),
        ({"entity": f"MedicationDispense/{did}"},
         lambda e: e.object_type == "patients.dispense" and e.object_id == did),
        ({"action": "C"}, lambda e: e.action.endswith(".create")),
        ({"outcome": "4"}, lambda e: e.outcome == "denied"),
        ({"type": "dispenses"}, lambda e: e.action.startswith("dispenses.")),
        ({"subtype": "fhir.read"}, lambda e: e.action == "fhir.read"),
        ({"date": "ge2000-01-01"}, lambda e: True),
        ({"date": "lt2000-01-01"}, lambda e: False),
    ]:  # fmt: skip
        rows = AuditEvent.objects.filter(organisation_id=world.org.pk)
        expected = {str(e.pk) for e in rows if keep(e)}
        assert ids(auditor.get("/fhir/AuditEvent", {**query, "_count": "200"})) == expected, query

    # An auditor sees no patient through _include (auditors read nothing clinical).
    included = auditor.get("/fhir/AuditEvent", {"_include": "AuditEvent:patient"})
    assert included.status_code == 200
    assert all(e["resource"]["resourceType"] == "AuditEvent" for e in included.json()["entry"]
               if e["search"]["mode"] != "outcome")  # fmt: skip
    assert cardio_patient.name.encode() not in included.content
    # The audit trail is read-only.
    assert auditor.post("/fhir/AuditEvent", {"resourceType": "AuditEvent"}).status_code == 405
    assert auditor.delete(f"/fhir/AuditEvent/{create.pk}").status_code == 405

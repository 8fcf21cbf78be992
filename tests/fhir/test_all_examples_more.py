"""The other types CareLoop creates over FHIR: every official R4 example of CarePlan, Task,
MedicationDispense, MedicationStatement, Consent, Appointment, Questionnaire,
QuestionnaireResponse, Communication and Subscription is either accepted and read back as
sent, or refused with a 422 OperationOutcome naming the element CareLoop cannot record —
never a 500, never stored in part. (Flag accepts no create: alerts come from CareLoop's rules.)

"As sent" means as in test_all_examples.py: the same content except id, meta, text and the
references CareLoop rewrites to its own resources (the patient; a dispensing's prescription;
an appointment's slot, with its start and end). The few elements the server sets itself are
named in SERVER_SET.
"""

from __future__ import annotations

import copy
import json
import re
import socket
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from careloop.fhir.registry import mapper_for
from careloop.kit import clock
from careloop.patients import services as patient_services
from careloop.subscriptions import guard
from tests.appointments.conftest import MONDAY_8AM, Clinic, Frozen
from tests.fhir.test_all_examples import CORPUS, _retarget, content

TYPES = (
    "CarePlan",
    "Task",
    "MedicationDispense",
    "MedicationStatement",
    "Consent",
    "Appointment",
    "Questionnaire",
    "QuestionnaireResponse",
    "Communication",
    "Subscription",
)
NAMES = sorted(
    p.name for t in TYPES for p in (CORPUS.glob(f"{t}-*.json") if CORPUS.is_dir() else [])
)
pytestmark = pytest.mark.skipif(not NAMES, reason="the R4 example corpus is absent")
TUE = date(2026, 3, 10)  # a clinic day after the frozen Monday 08:00

# Who sends each type (the role the staff pages need for the same write).
SENDER = {"Questionnaire": "admin", "Subscription": "admin"}

# Elements CareLoop sets itself, whatever was sent: when an appointment was booked; a
# subscription is active once its endpoint has passed the checks.
SERVER_SET = {"Appointment": ("created",), "Subscription": ("status",)}
# Accepted but not kept: a Subscription's contact (the subscriptions table has no column for
# it and keeps no extra elements). Named here so that a change either way fails the test.
NOT_KEPT = {"Subscription-example.json": ("contact",)}

# Example → the element the refusal names (the first issue where the OperationOutcome lists
# several). One reason per group.
REFUSED = {
    # Not one of CareLoop's own plans (it enrols a patient in a plan it runs reminders for).
    **{
        f"CarePlan-{n}.json": "CarePlan.instantiatesCanonical"
        for n in ("example", "gpvisit", "integrate", "obesity-narrative", "preg")
    },
    # A plan already completed, or a draft: an enrolment starts active.
    **{f"CarePlan-{n}.json": "CarePlan.status" for n in ("f001", "f002", "f003", "f201")},
    # A task already under way, accepted or completed: a new follow-up is requested or ready.
    **{f"Task-example{n}.json": "Task.status" for n in (1, 2, 4, 5, 6)},
    # About a claim, not a patient: the worklist holds follow-ups of patients.
    **{f"Task-fm-example{n}.json": "Task.for" for n in (1, 3, 4, 5, 6)},
    # A Medication outside the resource: CareLoop holds no Medication resources.
    **{
        f"MedicationDispense-meddisp{n}.json": "MedicationDispense.medicationReference"
        for n in (
            "008 0301 0302 0303 0305 0306 0308 0309 0310 0312 0313 0317 0319 0320 0329 0330 0331"
        ).split()
    },
    **{
        f"MedicationStatement-example00{n}.json": "MedicationStatement.medicationReference"
        for n in (1, 2, 7)
    },
    # The medication list needs a CareLoop frequency and, when scheduled, a dose.
    "MedicationStatement-example003.json": "MedicationStatement.dosage.timing",
    "MedicationStatement-example004.json": "MedicationStatement.dosage.doseAndRate.doseQuantity",
    # Entered in error: not a medicine the patient takes.
    "MedicationStatement-example005.json": "MedicationStatement.status",
    # CareLoop records one permit or deny per purpose and channel; these give neither a
    # provision type nor (notOrg) one of its purposes.
    **{
        f"Consent-consent-example-{n}.json": "Consent.provision.type"
        for n in ("Emergency Out basic notThem notThis notTime pkb signature smartonfhir").split()
    },
    "Consent-consent-example-notOrg.json": "Consent.provision.purpose",
    # A form CareLoop cannot show: no title, an answer list outside the resource, a dateTime
    # item, repeating groups.
    "Questionnaire-f201.json": "Questionnaire.title",
    "Questionnaire-qs1.json": "Questionnaire.title",
    "Questionnaire-3141.json": "Questionnaire.item[0].item[0].answerValueSet",
    "Questionnaire-bb.json": "Questionnaire.item[0].item[1].item[2].item[0].item[0].type",
    # Answers to no questionnaire in the organisation's library, or about a contained subject.
    "QuestionnaireResponse-bb.json": "QuestionnaireResponse.questionnaire",
    "QuestionnaireResponse-f201.json": "QuestionnaireResponse.questionnaire",
    "QuestionnaireResponse-gcs.json": "QuestionnaireResponse.questionnaire",
    "QuestionnaireResponse-3141.json": "QuestionnaireResponse.subject",
    # Sent by a device or a contained provider: a message is from the staff member sending it
    # or relayed from the patient.
    "Communication-example.json": "Communication.sender",
    "Communication-fm-solicited.json": "Communication.sender",
    # A subscription in error: CareLoop sets that state itself when deliveries fail.
    "Subscription-example-error.json": "Subscription.status",
}


@pytest.fixture
def frozen() -> Iterator[Frozen]:
    previous = clock.fake()
    yield Frozen(MONDAY_8AM)
    clock.install(previous)


def variant(name: str, patient_id: int, world: Any, clinic: Clinic) -> dict[str, Any]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    # An absolute reference to the example server's patient is to the patient too.
    text = re.sub(r'"reference": "https?://[^"]*/Patient/', '"reference": "Patient/', text)
    sent = _retarget(json.loads(text), f"Patient/{patient_id}")
    kind = sent["resourceType"]
    if kind == "MedicationDispense" and "authorizingPrescription" in sent:
        order = patient_services.add_record(
            world.actor("doctor.cardiology"), patient_id, "medications",
            {"name": "Atorvastatin", "code": "617312", "dose": "20", "unit": "mg",
             "route": "po", "frequency": "qn", "start_date": "2025-01-02", "status": "active"},
        )  # fmt: skip
        sent["authorizingPrescription"] = [{"reference": f"MedicationRequest/{order.pk}"}]
    if kind == "Appointment":
        slot = clinic.slot(TUE, 9)
        sent["slot"] = [{"reference": f"Slot/{slot.pk}"}]
        sent["start"], sent["end"] = "2026-03-10T01:00:00Z", "2026-03-10T01:30:00Z"
    return sent  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NAMES)
def test_example_round_trips_or_is_refused_naming_the_element(
    name: str, fhir: Any, cardio_patient: Any, world: Any, frozen: Frozen, monkeypatch: Any
) -> None:
    # The example's endpoints are public hosts; answer for them without the network.
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
    monkeypatch.setattr(guard.socket, "getaddrinfo", lambda *a, **k: public)
    clinic = Clinic(world)
    clinic.schedule()
    sent = variant(name, cardio_patient.pk, world, clinic)
    kind = sent["resourceType"]
    model = mapper_for(kind).model
    before = model._default_manager.count()
    client = fhir(SENDER.get(kind, "doctor.cardiology"))
    created = client.post(f"/fhir/{kind}", copy.deepcopy(sent))
    if name in REFUSED:
        assert created.status_code == 422, created.content.decode()[:600]
        outcome = created.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == [REFUSED[name]]
        assert all(i.get("expression") for i in outcome["issue"])  # each names its element
        assert model._default_manager.count() == before  # nothing stored
        return
    assert created.status_code == 201, created.content.decode()[:600]
    got = content(client.get(f"/fhir/{kind}/{created.json()['id']}").json())
    expected = content(sent)
    for element in SERVER_SET.get(kind, ()):
        expected.pop(element, None)
        got.pop(element, None)
    for element in NOT_KEPT.get(name, ()):
        assert element not in got
        expected.pop(element)
    assert got == expected


def test_the_tables_name_only_examples_of_the_corpus() -> None:
    assert set(REFUSED) | set(NOT_KEPT) <= set(NAMES)
    assert not set(REFUSED) & set(NOT_KEPT)

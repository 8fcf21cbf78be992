"""Schedule, Slot, Appointment, Questionnaire, QuestionnaireResponse and Communication at /fhir:
each over CareLoop's own tables and through the same services as the staff pages and the
portal (capacity, idempotency, scoring, alert rules, urgent words), scoped like them."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from careloop.alerts import models as alerts
from careloop.appointments import models as am
from careloop.kit import clock
from careloop.messaging import services as msg_services
from careloop.messaging.models import Message
from careloop.patients import services as patient_services
from careloop.portal.context import PortalActor
from careloop.questionnaires import models as qm
from careloop.questionnaires import services as q_services
from tests.appointments.conftest import MONDAY_8AM, Clinic, Frozen, local
from tests.conftest import patient_data
from tests.corpus import CORPUS as SHARED
from tests.observations.support import care_team, join

EXAMPLES = SHARED / "hl7-fhir-r4-examples"
TUE = date(2026, 3, 10)
PHQ9 = "https://careloop.dev/fhir/Questionnaire/phq-9"
NEEDS_CORPUS = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 corpus is absent")


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def ids(bundle: Any) -> list[str]:
    return [e["resource"]["id"] for e in bundle.json()["entry"] if e["search"]["mode"] == "match"]


def expression(response: Any) -> list[str]:
    return [x for i in response.json()["issue"] for x in i.get("expression", [])]


@pytest.fixture
def frozen() -> Iterator[Frozen]:
    previous = clock.fake()
    f = Frozen(MONDAY_8AM)
    yield f
    clock.install(previous)


@pytest.fixture
def clinic(world: Any, frozen: Frozen) -> Clinic:
    made = Clinic(world)
    made.made = made.schedule()  # type: ignore[attr-defined]
    made.endo = made.schedule(dept=world.endo, name="内分泌门诊")  # type: ignore[attr-defined]
    return made


def patient(world: Any, username: str = "nurse.cardiology", **kw: Any) -> Any:
    return patient_services.create_patient(world.actor(username), patient_data(**kw))


def booking(patient_id: int, slot: am.Slot, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot.pk}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        **extra,
    }


# --- the CapabilityStatement ------------------------------------------------------------------


def test_metadata_lists_the_types_with_their_interactions_and_parameters(fhir: Any) -> None:
    meta = fhir("doctor.cardiology").get("/fhir/metadata").json()
    types = {r["type"]: r for r in meta["rest"][0]["resource"]}
    expected = {
        "Schedule": ({"read", "search-type"}, {"actor", "active", "service-type", "date"}),
        "Slot": ({"read", "search-type"}, {"schedule", "start", "status", "service-type"}),
        "Appointment": (
            {"read", "search-type", "create", "update", "delete"},
            {"patient", "actor", "date", "status", "slot", "_lastUpdated"},
        ),
        "Questionnaire": (
            {"read", "search-type", "create", "update"},
            {"url", "name", "title", "status", "version"},
        ),
        "QuestionnaireResponse": (
            {"read", "search-type", "create"},
            {"patient", "subject", "questionnaire", "status", "authored"},
        ),
        "Communication": (
            {"read", "search-type", "create"},
            {"patient", "subject", "sent", "_lastUpdated"},
        ),
    }
    for name, (interactions, params) in expected.items():
        entry = types[name]
        assert interactions <= {i["code"] for i in entry["interaction"]}, name
        assert "delete" not in {i["code"] for i in entry["interaction"]} or name == "Appointment"
        assert params <= {p["name"] for p in entry["searchParam"]}, name


# --- Schedule and Slot ------------------------------------------------------------------------


def test_schedules_and_slots_are_scoped_to_the_actors_clinics(fhir: Any, clinic: Any) -> None:
    doctor = fhir("doctor.cardiology")
    schedule = clinic.made
    found = doctor.get("/fhir/Schedule")
    assert ids(found) == [str(schedule.pk)]
    read = doctor.get(f"/fhir/Schedule/{schedule.pk}").json()
    assert read["active"] is True
    assert read["serviceType"] == [{"text": schedule.name}]
    doc = schedule.doctor_id
    assert ids(doctor.get("/fhir/Schedule", {"actor": f"Practitioner/{doc}"})) == [str(schedule.pk)]
    day = doctor.get(
        "/fhir/Slot",
        [("schedule", f"Schedule/{schedule.pk}"), ("start", "ge2026-03-10"),
         ("start", "lt2026-03-11"), ("status", "free"), ("_count", "50")],
    )  # fmt: skip
    assert day.json()["total"] == 14  # 08:00-12:00 and 13:30-16:30 in 30-minute slots
    slot = clinic.slot(TUE, 9)
    got = doctor.get(f"/fhir/Slot/{slot.pk}").json()
    assert got["status"] == "free"
    assert got["schedule"] == {"reference": f"Schedule/{schedule.pk}"}
    assert got["start"] == "2026-03-10T01:00:00Z"
    # Another department's clinic, another organisation: not there.
    endo = fhir("nurse.endocrinology")
    assert endo.get(f"/fhir/Schedule/{schedule.pk}").status_code == 404
    assert endo.get(f"/fhir/Slot/{slot.pk}").status_code == 404
    assert str(slot.pk) not in ids(endo.get("/fhir/Slot", {"start": "2026-03-10"}))
    other = fhir("nurse.other")
    assert other.get(f"/fhir/Slot/{slot.pk}").status_code == 404
    assert other.get("/fhir/Schedule").json()["total"] == 0
    # Schedules are set up in the schedule pages, not here.
    assert doctor.post("/fhir/Slot", {"resourceType": "Slot"}).status_code == 405


# --- Appointment ------------------------------------------------------------------------------


def test_appointment_book_read_search_update_cancel(
    fhir: Any, clinic: Any, cardio_patient: Any
) -> None:
    nurse = fhir("nurse.cardiology")
    slot = clinic.slot(TUE, 9)
    made = nurse.post("/fhir/Appointment", booking(cardio_patient.pk, slot, description="复诊"))
    assert made.status_code == 201, made.content
    appt = made.json()
    assert appt["status"] == "booked"
    assert appt["start"] == "2026-03-10T01:00:00Z" and appt["end"] == "2026-03-10T01:30:00Z"
    row = am.Appointment.objects.get(pk=appt["id"])
    assert row.slot_id == slot.pk and row.reason == "复诊"
    assert am.Slot.objects.get(pk=slot.pk).booked == 1  # a place taken, like the booking page
    path = f"/fhir/Appointment/{appt['id']}"
    assert nurse.get(path).json()["description"] == "复诊"
    for query in (
        {"patient": f"Patient/{cardio_patient.pk}"},
        {"actor": f"Patient/{cardio_patient.pk}"},
        {"actor": f"Practitioner/{row.doctor_id}"},
        {"date": "2026-03-10"},
        {"status": "booked"},
        {"slot": f"Slot/{slot.pk}"},
        {"_lastUpdated": "ge2026-03-09"},
    ):
        assert ids(nurse.get("/fhir/Appointment", query)) == [appt["id"]], query
    assert ids(nurse.get("/fhir/Appointment", {"date": "2026-03-11"})) == []
    # Moving it to another slot reschedules through the service; a stale version is refused.
    later = clinic.slot(TUE, 10)
    moved = copy.deepcopy(appt)
    moved["slot"] = [{"reference": f"Slot/{later.pk}"}]
    moved.pop("start")
    moved.pop("end")
    put = nurse.put(path, moved, HTTP_IF_MATCH='W/"1"')
    assert put.status_code == 200, put.content
    assert put.json()["start"] == "2026-03-10T02:00:00Z"
    assert am.Slot.objects.get(pk=slot.pk).booked == 0
    stale = nurse.put(path, {**moved, "status": "cancelled"}, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    cancelled = nurse.put(
        path,
        {**moved, "status": "cancelled", "cancelationReason": {"text": "patient asked"}},
        HTTP_IF_MATCH='W/"2"',
    )
    assert cancelled.status_code == 200, cancelled.content
    assert am.Appointment.objects.get(pk=appt["id"]).status == "cancelled"
    assert am.Slot.objects.get(pk=later.pk).booked == 0
    assert ids(nurse.get("/fhir/Appointment", {"status": "cancelled"})) == [appt["id"]]


def test_delete_cancels_and_states_change_through_the_queue(
    fhir: Any, clinic: Any, cardio_patient: Any, frozen: Frozen
) -> None:
    nurse = fhir("nurse.cardiology")
    today = nurse.post("/fhir/Appointment", booking(cardio_patient.pk, clinic.slot(TUE, 11)))
    other = nurse.post("/fhir/Appointment", booking(cardio_patient.pk, clinic.slot(TUE, 14)))
    assert nurse.delete(f"/fhir/Appointment/{other.json()['id']}").status_code == 204
    gone = nurse.get(f"/fhir/Appointment/{other.json()['id']}").json()
    assert gone["status"] == "cancelled"
    frozen.set(local(TUE, 10))
    path = f"/fhir/Appointment/{today.json()['id']}"
    arrived = nurse.put(path, {**nurse.get(path).json(), "status": "arrived"})
    assert arrived.status_code == 200, arrived.content
    assert am.Appointment.objects.get(pk=today.json()["id"]).queue_number == 1
    done = nurse.put(path, {**arrived.json(), "status": "fulfilled"})
    assert done.json()["status"] == "fulfilled"
    back = nurse.put(path, {**done.json(), "status": "booked"})
    assert back.status_code == 422
    assert expression(back) == ["Appointment.status"]


def test_a_full_slot_is_409_and_the_same_identifier_answers_the_first_booking(
    fhir: Any, clinic: Any, world: Any
) -> None:
    nurse = fhir("nurse.cardiology")
    slot = clinic.slot(TUE, 9)  # two places
    first, second, third = (patient(world) for _ in range(3))
    key = {"identifier": [{"system": "urn:test:booking", "value": "abc-1"}]}
    made = nurse.post("/fhir/Appointment", booking(first.pk, slot, **key))
    again = nurse.post("/fhir/Appointment", booking(first.pk, slot, **key))
    assert (made.status_code, again.status_code) == (201, 200)
    assert made.json()["id"] == again.json()["id"]
    reused = nurse.post("/fhir/Appointment", booking(second.pk, slot, **key))
    assert reused.status_code == 409  # the same key for another booking
    twice = nurse.post("/fhir/Appointment", booking(first.pk, slot))
    assert twice.status_code == 409  # the patient already holds a place in it
    assert nurse.post("/fhir/Appointment", booking(second.pk, slot)).status_code == 201
    full = nurse.post("/fhir/Appointment", booking(third.pk, slot))
    assert full.status_code == 409
    assert full.json()["resourceType"] == "OperationOutcome"
    assert full.json()["issue"][0]["code"] == "conflict"
    assert am.Slot.objects.get(pk=slot.pk).booked == 2
    busy = nurse.get(f"/fhir/Slot/{slot.pk}").json()
    assert busy["status"] == "busy"
    assert ids(nurse.get("/fhir/Slot", {"status": "busy"})) == [str(slot.pk)]


def test_appointment_validation_names_the_element(
    fhir: Any, clinic: Any, cardio_patient: Any
) -> None:
    nurse = fhir("nurse.cardiology")
    slot = clinic.slot(TUE, 9)
    no_slot = booking(cardio_patient.pk, slot)
    no_slot.pop("slot")
    assert expression(nurse.post("/fhir/Appointment", no_slot)) == ["Appointment.slot"]
    wrong_start = booking(cardio_patient.pk, slot, start="2026-03-10T05:00:00Z")
    assert expression(nurse.post("/fhir/Appointment", wrong_start)) == ["Appointment.start"]
    endo_slot = clinic.slot(TUE, 9, dept=clinic.world.endo)
    foreign = nurse.post("/fhir/Appointment", booking(cardio_patient.pk, endo_slot))
    assert foreign.status_code == 422
    assert expression(foreign) == ["Appointment.slot[0]"]
    assert am.Slot.objects.get(pk=endo_slot.pk).booked == 0


def test_appointment_scope_attacks(fhir: Any, clinic: Any, cardio_patient: Any, world: Any) -> None:
    nurse = fhir("nurse.cardiology")
    mine = nurse.post("/fhir/Appointment", booking(cardio_patient.pk, clinic.slot(TUE, 9)))
    someone = patient(world)
    theirs = nurse.post("/fhir/Appointment", booking(someone.pk, clinic.slot(TUE, 10)))
    path = f"/fhir/Appointment/{mine.json()['id']}"
    for username in ("nurse.endocrinology", "nurse.other", "admin.other"):
        attacker = fhir(username)
        assert attacker.get(path).status_code == 404, username
        assert attacker.get("/fhir/Appointment").json()["total"] == 0, username
        assert attacker.delete(path).status_code in (403, 404), username
    assert am.Appointment.objects.get(pk=mine.json()["id"]).status == "booked"
    # A token bound to one patient reaches only that patient's appointments and patient.
    bound = fhir(
        "nurse.cardiology",
        scopes="patient/Appointment.rs patient/Patient.rs",
        patient_id=cardio_patient.pk,
    )
    assert bound.get(f"/fhir/Appointment/{theirs.json()['id']}").status_code == 404
    found = bound.get("/fhir/Appointment", {"_include": "Appointment:patient"}).json()
    assert {e["resource"]["id"] for e in found["entry"]} == {
        mine.json()["id"],
        str(cardio_patient.pk),
    }
    # Through _include, another department sees no patient either.
    endo = fhir("nurse.endocrinology").get("/fhir/Appointment", {"_include": "Appointment:patient"})
    assert endo.json()["entry"] == []


@NEEDS_CORPUS
def test_official_appointment_example_round_trips(
    fhir: Any, clinic: Any, cardio_patient: Any
) -> None:
    """Derived: the example's time is in the past and names no slot; the variant books the
    slot of that hour on a clinic day, for a local patient (CareLoop stamps ``created``)."""
    sent = example("Appointment-example.json")
    slot = clinic.slot(TUE, 9)
    sent["start"], sent["end"] = "2026-03-10T01:00:00Z", "2026-03-10T01:30:00Z"
    sent["slot"] = [{"reference": f"Slot/{slot.pk}"}]
    sent["participant"][0]["actor"]["reference"] = f"Patient/{cardio_patient.pk}"
    sent.pop("created")  # CareLoop stamps when it was booked
    client = fhir("nurse.cardiology")
    made = client.post("/fhir/Appointment", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    got = client.get(f"/fhir/Appointment/{made.json()['id']}").json()
    assert got.pop("created") == "2026-03-09T00:00:00Z"
    assert content(got) == content(sent)
    row = am.Appointment.objects.get(pk=made.json()["id"])
    assert row.kind == "revisit"  # FOLLOWUP
    assert row.reason == sent["description"]


# --- Questionnaire ----------------------------------------------------------------------------


@NEEDS_CORPUS
def test_questionnaire_import_read_search_update(fhir: Any, world: Any) -> None:
    admin = fhir("admin")
    sent = example("Questionnaire-zika-virus-exposure-assessment.json")
    made = admin.post("/fhir/Questionnaire", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    path = f"/fhir/Questionnaire/{made.json()['id']}"
    got = fhir("nurse.cardiology").get(path)
    assert content(got.json()) == content(sent)
    assert qm.Questionnaire.objects.get(pk=made.json()["id"]).organisation_id == world.org.pk
    for query in (
        {"url": sent["url"]},
        {"name": sent["name"][:4]},
        {"title": "zika"},
        {"status": sent["status"]},
    ):
        assert made.json()["id"] in ids(admin.get("/fhir/Questionnaire", query)), query
    assert ids(admin.get("/fhir/Questionnaire", {"version": "9.9"})) == []
    # The same Questionnaire again is the one stored.
    assert admin.post("/fhir/Questionnaire", copy.deepcopy(sent)).status_code == 200
    version = got.json()["meta"]["versionId"]
    retired = {**sent, "id": made.json()["id"], "status": "retired"}
    changed = admin.put(path, retired, HTTP_IF_MATCH=f'W/"{version}"')
    assert changed.status_code == 200, changed.content
    assert changed.json()["status"] == "retired"
    stale = admin.put(path, {**retired, "status": "active"}, HTTP_IF_MATCH=f'W/"{version}"')
    assert stale.status_code == 412
    # Other organisations do not see it; nurses cannot import.
    assert fhir("admin.other").get(path).status_code == 404
    assert fhir("nurse.cardiology").post("/fhir/Questionnaire", sent).status_code == 403


@NEEDS_CORPUS
def test_official_phq9_questionnaire_round_trips(fhir: Any) -> None:
    sent = example("Questionnaire-phq-9-questionnaire.json")
    made = fhir("admin").post("/fhir/Questionnaire", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    got = fhir("admin").get(f"/fhir/Questionnaire/{made.json()['id']}").json()
    assert content(got) == content(sent)
    assert qm.Questionnaire.objects.get(pk=got["id"]).instrument == "phq9"


def test_questionnaire_errors_name_the_element_and_shipped_ones_are_read_only(
    fhir: Any, world: Any
) -> None:
    admin = fhir("admin")
    bad = {
        "resourceType": "Questionnaire",
        "status": "active",
        "title": "Broken",
        "item": [{"linkId": "a", "type": "choice", "text": "Pick"}],
    }
    refused = admin.post("/fhir/Questionnaire", bad)
    assert refused.status_code == 422
    assert expression(refused) == ["Questionnaire.item[0].answerOption"]
    assert not qm.Questionnaire.objects.filter(title="Broken").exists()
    q_services.load_shipped()
    phq = qm.Questionnaire.objects.get(organisation__isnull=True, url=PHQ9)
    path = f"/fhir/Questionnaire/{phq.pk}"
    shipped = admin.get(path).json()
    assert shipped["url"] == PHQ9
    assert admin.put(path, shipped).status_code == 403


# --- QuestionnaireResponse --------------------------------------------------------------------


def phq9_response(patient_id: int, scores: list[int]) -> dict[str, Any]:
    codes = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{PHQ9}|1.0.0",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": [
            {"linkId": f"phq9-{n}", "answer": [{"valueCoding": {"code": codes[s]}}]}
            for n, s in enumerate(scores, start=1)
        ]
        + [{"linkId": "phq9-difficulty", "answer": [{"valueCoding": {"code": "LA6572-7"}}]}],
    }


def test_phq9_response_via_fhir_is_scored_and_raises_the_urgent_alert(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    q_services.load_shipped()
    join(cardio_patient, care_team(world, world.cardio))
    phq = qm.Questionnaire.objects.get(organisation__isnull=True, url=PHQ9)
    assignment = q_services.assign(
        world.actor("nurse.cardiology"), patient_id=cardio_patient.pk, questionnaire_id=phq.pk
    )
    nurse = fhir("nurse.cardiology")
    made = nurse.post(
        "/fhir/QuestionnaireResponse", phq9_response(cardio_patient.pk, [0] * 8 + [1])
    )
    assert made.status_code == 201, made.content
    row = qm.Response.objects.get(pk=made.json()["id"])
    assert (row.status, row.score, row.band) == ("completed", 1, "minimal")
    assert row.source == "staff" and row.assignment_id == assignment.pk
    alert = alerts.Alert.objects.get(patient=cardio_patient, rule="phq9-item9")
    assert alert.priority == "stat" and alert.focus_id == row.pk
    qm.Assignment.objects.get(pk=assignment.pk, status="completed")
    for query in (
        {"patient": f"Patient/{cardio_patient.pk}"},
        {"subject": f"Patient/{cardio_patient.pk}"},
        {"questionnaire": PHQ9},
        {"questionnaire": f"Questionnaire/{phq.pk}"},
        {"status": "completed"},
        {"authored": "2026"},
    ):
        assert ids(nurse.get("/fhir/QuestionnaireResponse", query)) == [str(row.pk)], query
    # Scope: another department, another organisation, a token bound to another patient.
    path = f"/fhir/QuestionnaireResponse/{row.pk}"
    for username in ("nurse.endocrinology", "nurse.other"):
        assert fhir(username).get(path).status_code == 404
        assert fhir(username).get("/fhir/QuestionnaireResponse").json()["total"] == 0
    other = patient(world)
    bound = fhir(
        "nurse.cardiology", scopes="patient/QuestionnaireResponse.crs", patient_id=other.pk
    )
    assert bound.get(path).status_code == 404
    assert (
        bound.post(
            "/fhir/QuestionnaireResponse", phq9_response(cardio_patient.pk, [0] * 9)
        ).status_code
        == 403
    )


def test_phq9_low_scores_raise_nothing_and_bad_answers_name_the_item(
    fhir: Any, world: Any, cardio_patient: Any
) -> None:
    q_services.load_shipped()
    nurse = fhir("nurse.cardiology")
    ok = nurse.post("/fhir/QuestionnaireResponse", phq9_response(cardio_patient.pk, [0] * 9))
    assert ok.status_code == 201
    assert not alerts.Alert.objects.filter(patient=cardio_patient).exists()
    bad = phq9_response(cardio_patient.pk, [0] * 9)
    bad["item"][3]["answer"] = [{"valueCoding": {"code": "nonsense"}}]
    refused = nurse.post("/fhir/QuestionnaireResponse", bad)
    assert refused.status_code == 422
    assert expression(refused) == ["QuestionnaireResponse.item[3].answer"]
    missing = phq9_response(cardio_patient.pk, [0] * 9)
    del missing["item"][8]
    refused = nurse.post("/fhir/QuestionnaireResponse", missing)
    assert refused.status_code == 422 and expression(refused) == ["QuestionnaireResponse.item"]
    unknown = phq9_response(cardio_patient.pk, [0] * 9)
    unknown["item"].append({"linkId": "nope", "answer": [{"valueString": "x"}]})
    refused = nurse.post("/fhir/QuestionnaireResponse", unknown)
    assert expression(refused) == ["QuestionnaireResponse.item[10]"]
    endo = patient(world, "nurse.endocrinology")
    other = nurse.post("/fhir/QuestionnaireResponse", phq9_response(endo.pk, [0] * 9))
    assert other.status_code == 404
    assert qm.Response.objects.count() == 1


@NEEDS_CORPUS
def test_official_questionnaire_response_example_round_trips(
    fhir: Any, cardio_patient: Any
) -> None:
    """Derived: the f201 response answers a questionnaire shaped slightly differently from the
    f201 Questionnaire example (which also lacks a title); the variant of the questionnaire
    asks exactly what the response answers, and the response names it and a local patient."""
    questionnaire = example("Questionnaire-f201.json")
    questionnaire["title"] = "Lifelines Questionnaire 1 part 1"
    questionnaire["item"][0] = {
        "linkId": "1",
        "type": "group",
        "item": [{"linkId": "1.1", "text": "Do you have allergies?", "type": "string"}],
    }
    for group in questionnaire["item"][1:]:
        for item in group["item"]:
            item["type"] = "date" if item["linkId"] == "2.2" else "string"
    admin = fhir("admin")
    assert admin.post("/fhir/Questionnaire", questionnaire).status_code == 201
    sent = example("QuestionnaireResponse-f201.json")
    sent["questionnaire"] = questionnaire["url"]
    sent["subject"]["reference"] = f"Patient/{cardio_patient.pk}"
    client = fhir("doctor.cardiology")
    made = client.post("/fhir/QuestionnaireResponse", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    got = client.get(f"/fhir/QuestionnaireResponse/{made.json()['id']}").json()
    assert content(got) == content(sent)
    row = qm.Response.objects.get(pk=got["id"])
    assert row.status == "completed" and row.staff.username == "doctor.cardiology"


# --- Communication ----------------------------------------------------------------------------


@pytest.fixture
def thread_patient(world: Any, cardio_patient: Any) -> Any:
    join(cardio_patient, care_team(world, world.cardio))
    relay = PortalActor(patient_id=cardio_patient.pk, organisation_id=world.org.pk, session_id=0)
    msg_services.start_thread(relay, subject="药", body="What time should I take it?")
    return cardio_patient


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def test_staff_reply_and_relayed_patient_message(
    fhir: Any, world: Any, thread_patient: Any
) -> None:
    nurse = fhir("nurse.cardiology")
    me = world.staff["nurse.cardiology"].pk
    first = nurse.get("/fhir/Communication", {"patient": f"Patient/{thread_patient.pk}"})
    [question] = [e["resource"] for e in first.json()["entry"]]
    assert question["sender"] == {"reference": f"Patient/{thread_patient.pk}"}
    assert question["payload"] == [{"contentString": "What time should I take it?"}]
    reply = {
        "resourceType": "Communication",
        "status": "completed",
        "identifier": [{"value": "reply-0001"}],
        "subject": {"reference": f"Patient/{thread_patient.pk}"},
        "sender": {"reference": f"Practitioner/{me}"},
        "inResponseTo": [{"reference": f"Communication/{question['id']}"}],
        "payload": [
            {"contentString": "After breakfast."},
            {"contentAttachment": {"contentType": "image/png", "title": "plan.png", "data": PNG}},
        ],
    }
    made = nurse.post("/fhir/Communication", reply)
    assert made.status_code == 201, made.content
    row = Message.objects.get(pk=made.json()["id"])
    assert row.author_kind == "staff" and row.body == "After breakfast."
    assert row.thread_id == Message.objects.get(pk=question["id"]).thread_id
    again = nurse.post("/fhir/Communication", reply)
    assert (again.status_code, again.json()["id"]) == (200, made.json()["id"])
    # The stored attachment is offered through the inbox's protected route, not as data.
    read = nurse.get(f"/fhir/Communication/{row.pk}").json()
    assert read["sender"] == reply["sender"]
    [att] = row.attachments.all()
    shown = nurse.get("/fhir/Communication", {"_id": str(row.pk)}).json()["entry"][0]
    assert shown["resource"]["payload"] == reply["payload"]  # as sent while unchanged
    Message.objects.filter(pk=row.pk).update(body="After breakfast!")
    rebuilt = nurse.get(f"/fhir/Communication/{row.pk}").json()["payload"]
    assert rebuilt[1]["contentAttachment"]["url"] == f"/inbox/attachments/{att.pk}/"
    assert nurse.get(rebuilt[1]["contentAttachment"]["url"]).status_code in (200, 302)
    # A message from the patient relayed by a system: urgent words raise the urgent alert.
    relayed = nurse.post(
        "/fhir/Communication",
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": f"Patient/{thread_patient.pk}"},
            "sender": {"reference": f"Patient/{thread_patient.pk}"},
            "topic": {"text": "Tonight"},
            "payload": [{"contentString": "I have chest pain since noon"}],
        },
    )
    assert relayed.status_code == 201, relayed.content
    message = Message.objects.get(pk=relayed.json()["id"])
    assert message.author_kind == "patient" and message.urgent
    assert message.thread.subject == "Tonight"
    assert alerts.Alert.objects.filter(patient=thread_patient, rule="symptom-urgent").exists()
    assert nurse.get(f"/fhir/Communication/{message.pk}").json()["priority"] == "urgent"
    found = nurse.get(
        "/fhir/Communication", [("subject", f"Patient/{thread_patient.pk}"), ("sent", "2026")]
    )
    assert found.json()["total"] == 3
    assert nurse.get("/fhir/Communication", {"_lastUpdated": "lt2000"}).json()["total"] == 0


def test_communication_scope_attacks_and_errors(fhir: Any, world: Any, thread_patient: Any) -> None:
    nurse = fhir("nurse.cardiology")
    [entry] = nurse.get("/fhir/Communication").json()["entry"]
    path = f"/fhir/Communication/{entry['resource']['id']}"
    for username in ("nurse.endocrinology", "nurse.other", "auditor"):
        assert fhir(username).get(path).status_code in (403, 404), username
    endo = fhir("nurse.endocrinology")
    assert endo.get("/fhir/Communication").json()["total"] == 0
    leak = endo.get("/fhir/Communication", {"_include": "Communication:patient"})
    assert leak.json()["entry"] == []
    other = patient(world)
    bound = fhir("nurse.cardiology", scopes="patient/Communication.crs", patient_id=other.pk)
    assert bound.get(path).status_code == 404
    assert bound.get("/fhir/Communication").json()["total"] == 0
    impostor = {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": f"Patient/{thread_patient.pk}"},
        "payload": [{"contentString": "hello"}],
    }
    assert bound.post("/fhir/Communication", impostor).status_code == 403
    as_endo = endo.post("/fhir/Communication", impostor)
    assert as_endo.status_code == 422 and expression(as_endo) == ["Communication.subject"]
    forged = {**impostor, "sender": {"reference": f"Practitioner/{world.staff['admin'].pk}"}}
    assert expression(nurse.post("/fhir/Communication", forged)) == ["Communication.sender"]
    linked = {
        **impostor,
        "payload": [{"contentAttachment": {"url": "https://example.org/x.png"}}],
    }
    assert expression(nurse.post("/fhir/Communication", linked)) == [
        "Communication.payload[0].contentAttachment.data"
    ]
    empty = {**impostor, "payload": [{"contentString": "  "}]}
    assert expression(nurse.post("/fhir/Communication", empty)) == ["Communication.payload"]
    assert Message.objects.count() == 1


@NEEDS_CORPUS
def test_official_communication_example_round_trips(
    fhir: Any, world: Any, thread_patient: Any
) -> None:
    """Derived: CareLoop messages are sent by staff or the patient, not by a device, and
    CareLoop stamps the time it was sent; the variant is sent by the nurse."""
    sent = example("Communication-example.json")
    sent["subject"] = {"reference": f"Patient/{thread_patient.pk}"}
    sent["sender"] = {"reference": f"Practitioner/{world.staff['nurse.cardiology'].pk}"}
    sent.pop("sent")
    client = fhir("nurse.cardiology")
    made = client.post("/fhir/Communication", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    got = client.get(f"/fhir/Communication/{made.json()['id']}").json()
    stamped = got.pop("sent")
    assert stamped.startswith("20")
    assert content(got) == content(sent)
    assert Message.objects.get(pk=got["id"]).body == sent["payload"][0]["contentString"]

"""PractitionerRole, CareTeam, CarePlan, Task and Flag over CareLoop's staff, care teams,
enrolments, worklist tasks and alerts: reads and searches scoped like the staff pages, writes
through the same services as the staff pages, official R4 examples read back as sent."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from careloop.accounts.models import Staff
from careloop.alerts import models as am
from careloop.alerts import selectors as alert_selectors
from careloop.alerts import services as alert_services
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from tests.conftest import patient_data
from tests.corpus import CORPUS as SHARED
from tests.observations.support import care_team, join
from tests.support.clinic import Clinic

EXAMPLES = SHARED / "hl7-fhir-r4-examples"
needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the R4 examples are absent")


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def issue_paths(response: Any) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return [x for i in body["issue"] for x in i.get("expression", [])]


def etag(response: Any) -> str:
    return str(response["ETag"])


def plan_resource(patient: Any, code: str = "hypertension") -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "instantiatesCanonical": [f"urn:careloop:plan:{code}"],
        "subject": {"reference": f"Patient/{patient.pk}"},
    }


class Work:
    """Care teams, tasks and alerts as the system makes them, for cardiology patients."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.n = 0

    def team(self, patient: Any, department: Any = None) -> Any:
        team = care_team(self.world, department or self.world.cardio)
        join(patient, team)
        return team

    def task(self, patient: Any, reason: str = "No answer to the reminder") -> am.Task:
        self.n += 1
        return alert_services.open_task(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            kind=am.Task.Kind.CALL_PATIENT,
            source_key=f"care-types:{patient.pk}:{self.n}",
            due_at=utc_now() + timedelta(hours=2),
            reason=reason,
        )

    def alert(self, patient: Any, priority: str = "urgent") -> am.Alert:
        self.n += 1
        now = utc_now()
        return am.Alert.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            department_id=patient.department_links.first().department_id,
            rule="bp-high",
            stage=str(self.n),
            key=f"bp-high:{patient.pk}:{self.n}",
            severity="high",
            priority=priority,
            priority_rank=am.PRIORITY_RANK[priority],
            performer_role=am.Alert.Route.NURSE,
            text_zh="血压偏高",
            text_en="Blood pressure high",
            triggered_at=now - timedelta(minutes=10),
            raised_at=now,
            due_at=now + timedelta(minutes=15),
        )


@pytest.fixture
def work(world: Any) -> Work:
    return Work(world)


# --- CapabilityStatement -------------------------------------------------------------------------


def test_metadata_lists_the_types_with_their_interactions_and_parameters(fhir: Any) -> None:
    statement = fhir(None).get("/fhir/metadata").json()
    found = {r["type"]: r for r in statement["rest"][0]["resource"]}
    expected = {
        "PractitionerRole": ({"read", "search-type"}, {"_id", "practitioner", "organization",
                                                        "role", "active"}),
        "CareTeam": ({"read", "search-type"}, {"_id", "patient", "subject", "status"}),
        "CarePlan": ({"read", "search-type", "create", "update", "delete"},
                     {"_id", "_lastUpdated", "patient", "subject", "status", "date", "category"}),
        "Task": ({"read", "search-type", "create", "update"},
                 {"_id", "_lastUpdated", "patient", "owner", "status", "priority",
                  "business-status", "authored-on", "period"}),
        "Flag": ({"read", "search-type", "update"},
                 {"_id", "_lastUpdated", "patient", "date", "status"}),
    }  # fmt: skip
    for rt, (interactions, params) in expected.items():
        entry = found[rt]
        codes = {i["code"] for i in entry["interaction"]}
        assert interactions <= codes, rt
        assert "delete" in codes if "delete" in interactions else "delete" not in codes
        assert params <= {p["name"] for p in entry["searchParam"]}, rt
    assert "CareTeam:patient" in found["CareTeam"]["searchInclude"]


# --- PractitionerRole ----------------------------------------------------------------------------


def test_practitioner_role_shows_role_and_departments(fhir: Any, world: Any) -> None:
    nurse = world.staff["nurse.cardiology"]
    got = fhir("doctor.cardiology").get(f"/fhir/PractitionerRole/{nurse.pk}").json()
    assert got["practitioner"]["reference"] == f"Practitioner/{nurse.pk}"
    assert got["organization"] == {"reference": f"Organization/org-{world.org.pk}"}
    codes = {(c["system"], c["code"]) for c in got["code"][0]["coding"]}
    assert ("http://terminology.hl7.org/CodeSystem/practitioner-role", "nurse") in codes
    departments = [e["valueReference"]["reference"] for e in got["extension"]]
    assert departments == [f"Organization/dept-{world.cardio.pk}"]
    assert got["active"] is True


def test_practitioner_role_search(fhir: Any, world: Any) -> None:
    client = fhir("nurse.endocrinology")
    cardio = client.get(f"/fhir/PractitionerRole?organization=Organization/dept-{world.cardio.pk}")
    assert sorted(ids(cardio.json())) == sorted(
        f"PractitionerRole/{world.staff[u].pk}"
        for u in ("head.cardiology", "doctor.cardiology", "nurse.cardiology")
    )
    nurses = client.get("/fhir/PractitionerRole?role=nurse&organization=Organization/dept-"
                        f"{world.cardio.pk}").json()  # fmt: skip
    assert ids(nurses) == [f"PractitionerRole/{world.staff['nurse.cardiology'].pk}"]
    whole = client.get(f"/fhir/PractitionerRole?organization=org-{world.org.pk}").json()
    assert whole["total"] == Staff.objects.filter(organisation=world.org).count()
    doctor = world.staff["doctor.cardiology"]
    one = client.get(f"/fhir/PractitionerRole?practitioner=Practitioner/{doctor.pk}").json()
    assert ids(one) == [f"PractitionerRole/{doctor.pk}"]
    doctor.is_active = False
    doctor.save()
    assert ids(client.get(f"/fhir/PractitionerRole?_id={doctor.pk}&active=true").json()) == []


def test_practitioner_role_of_another_organisation_is_not_found(fhir: Any, world: Any) -> None:
    other = world.staff["nurse.other"]
    client = fhir("admin")
    assert client.get(f"/fhir/PractitionerRole/{other.pk}").status_code == 404
    found = client.get(f"/fhir/PractitionerRole?organization=org-{world.other_org.pk}").json()
    assert found["total"] == 0


# --- CareTeam ------------------------------------------------------------------------------------


def test_care_team_is_the_patients_department_team(
    fhir: Any, world: Any, work: Work, cardio_patient: Any
) -> None:
    team = work.team(cardio_patient)
    client = fhir("nurse.cardiology")
    bundle = client.get(
        f"/fhir/CareTeam?patient=Patient/{cardio_patient.pk}&status=active"
        "&_include=CareTeam:patient"
    ).json()
    assert len(ids(bundle)) == 1
    assert ids(bundle, "include") == [f"Patient/{cardio_patient.pk}"]
    got = bundle["entry"][0]["resource"]
    assert got["name"] == team.name
    assert got["subject"] == {"reference": f"Patient/{cardio_patient.pk}"}
    members = {(p["member"]["reference"], p["role"][0]["coding"][0]["code"])
               for p in got["participant"]}  # fmt: skip
    assert members == {
        (f"Practitioner/{world.staff['doctor.cardiology'].pk}", "responsible-doctor"),
        (f"Practitioner/{world.staff['nurse.cardiology'].pk}", "nurse"),
    }
    assert got["managingOrganization"][0]["reference"] == f"Organization/dept-{world.cardio.pk}"
    again = client.get(f"/fhir/CareTeam/{got['id']}")
    assert again.status_code == 200
    assert content(again.json()) == content(got)
    # A doctor who leaves is no longer on the team, and the version moves.
    doctor = world.staff["doctor.cardiology"]
    doctor.is_active = False
    doctor.save()
    later = client.get(f"/fhir/CareTeam/{got['id']}").json()
    assert len(later["participant"]) == 1
    assert later["meta"]["versionId"] != got["meta"]["versionId"]


def test_care_team_scope_and_include_leakage(
    fhir: Any, world: Any, work: Work, cardio_patient: Any, endo_patient: Any
) -> None:
    work.team(cardio_patient)
    link = cardio_patient.department_links.first()
    for attacker in ("nurse.endocrinology", "nurse.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/CareTeam/{link.pk}").status_code == 404
        found = client.get(
            f"/fhir/CareTeam?subject=Patient/{cardio_patient.pk}&_include=CareTeam:subject"
        )
        assert found.json()["total"] == 0
        assert cardio_patient.name.encode() not in found.content
        every = client.get("/fhir/CareTeam?_include=CareTeam:patient")
        assert f"Patient/{cardio_patient.pk}" not in ids(every.json(), "include")
    # A token bound to another patient of the same department sees only that patient's teams.
    other = patient_services.create_patient(
        world.actor("nurse.cardiology"), patient_data(record_number="MRN-C3")
    )
    bound = fhir("nurse.cardiology", scopes="patient/*.rs", patient_id=other.pk)
    assert bound.get(f"/fhir/CareTeam/{link.pk}").status_code == 404
    found = bound.get("/fhir/CareTeam?_include=CareTeam:patient").json()
    assert ids(found, "include") == [f"Patient/{other.pk}"]
    assert f"CareTeam/{link.pk}" not in ids(found)


# --- CarePlan ------------------------------------------------------------------------------------


def test_careplan_create_read_search_end(fhir: Any, clinic: Clinic) -> None:
    patient = clinic.patient()
    client = fhir("nurse.cardiology")
    created = client.post("/fhir/CarePlan", plan_resource(patient))
    assert created.status_code == 201, created.content
    plan = created.json()
    tpl = clinic.template("hypertension")
    enrolment = cm.Enrolment.objects.get(pk=int(plan["id"]))
    assert enrolment.patient_id == patient.pk
    assert enrolment.template_id == tpl.pk
    assert enrolment.enrolled_by == clinic.world.staff["nurse.cardiology"]
    assert plan["instantiatesCanonical"] == [f"urn:careloop:plan:hypertension|{tpl.version}"]
    assert plan["title"] == tpl.name
    assert plan["period"] == {"start": enrolment.starts_on.isoformat()}
    assert {a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]} == set(
        tpl.activities.values_list("code", flat=True)
    )
    assert client.get(f"/fhir/CarePlan/{plan['id']}").json() == plan
    for query in (
        f"patient={patient.pk}",
        f"subject=Patient/{patient.pk}&status=active",
        f"category=urn:careloop:plan|hypertension&patient={patient.pk}",
        f"date={enrolment.starts_on.isoformat()}&patient={patient.pk}",
        f"_lastUpdated=ge{enrolment.starts_on.year}&patient={patient.pk}",
    ):
        assert ids(client.get(f"/fhir/CarePlan?{query}").json()) == [f"CarePlan/{plan['id']}"]
    assert client.get(f"/fhir/CarePlan?patient={patient.pk}&status=completed").json()["total"] == 0
    # Ending with a stale version is refused; with the current one it ends the enrolment.
    done = {**plan, "status": "completed", "note": [{"text": "Target reached"}]}
    stale = client.put(f"/fhir/CarePlan/{plan['id']}", done, HTTP_IF_MATCH='W/"99"')
    assert stale.status_code == 412
    ended = client.put(f"/fhir/CarePlan/{plan['id']}", done, HTTP_IF_MATCH=etag(created))
    assert ended.status_code == 200, ended.content
    assert ended.json()["status"] == "completed"
    enrolment.refresh_from_db()
    assert enrolment.status == "ended"
    assert enrolment.end_reason == "Target reached"
    assert not rm.Occurrence.objects.filter(
        enrolment=enrolment, status=rm.Status.SCHEDULED
    ).exists()
    assert ended.json()["meta"]["versionId"] == "2"
    reopened = client.put(f"/fhir/CarePlan/{plan['id']}", {**plan, "status": "active"})
    assert reopened.status_code == 422
    assert issue_paths(reopened) == ["CarePlan.status"]


def test_careplan_delete_revokes_the_enrolment(fhir: Any, clinic: Clinic) -> None:
    patient = clinic.patient()
    client = fhir("doctor.cardiology")
    created = client.post("/fhir/CarePlan", plan_resource(patient))
    plan_id = created.json()["id"]
    assert client.delete(f"/fhir/CarePlan/{plan_id}", HTTP_IF_MATCH='W/"7"').status_code == 412
    assert client.delete(f"/fhir/CarePlan/{plan_id}").status_code == 204
    enrolment = cm.Enrolment.objects.get(pk=int(plan_id))
    assert enrolment.status == "ended"
    assert not rm.Occurrence.objects.filter(
        enrolment=enrolment, status=rm.Status.SCHEDULED
    ).exists()
    assert client.get(f"/fhir/CarePlan/{plan_id}").json()["status"] == "revoked"
    # The patient can be enrolled again, as after ending it on the staff page.
    assert client.post("/fhir/CarePlan", plan_resource(patient)).status_code == 201


def test_careplan_create_schedules_the_same_reminders_as_staff(fhir: Any, clinic: Clinic) -> None:
    by_fhir, by_staff = clinic.patient(), clinic.patient()
    for p in (by_fhir, by_staff):
        clinic.prescribe(p, "bid")
    response = fhir("nurse.cardiology").post("/fhir/CarePlan", plan_resource(by_fhir))
    assert response.status_code == 201
    staff = plan_services.enrol(clinic.actor, by_staff.pk, clinic.template("hypertension").pk)

    def schedule(enrolment_id: int) -> list[tuple[str, str, str]]:
        rows = rm.Occurrence.objects.filter(enrolment_id=enrolment_id)
        return sorted((o.kind, str(o.local_due), o.status) for o in rows)

    got = schedule(int(response.json()["id"]))
    assert got, "enrolment through FHIR scheduled nothing"
    assert got == schedule(staff.pk)


def test_careplan_validation_names_the_element(fhir: Any, clinic: Clinic) -> None:
    patient = clinic.patient()
    client = fhir("nurse.cardiology")
    cases = [
        ({"instantiatesCanonical": None}, "CarePlan.instantiatesCanonical"),
        ({"instantiatesCanonical": ["urn:careloop:plan:nope"]}, "CarePlan.instantiatesCanonical"),
        ({"status": "draft"}, "CarePlan.status"),
        ({"intent": "proposal"}, "CarePlan.intent"),
    ]
    for change, element in cases:
        body = {k: v for k, v in {**plan_resource(patient), **change}.items() if v is not None}
        response = client.post("/fhir/CarePlan", body)
        assert response.status_code in (400, 422), (change, response.content)
        assert element in issue_paths(response), (change, response.json())
    assert client.post("/fhir/CarePlan", plan_resource(patient)).status_code == 201
    twice = client.post("/fhir/CarePlan", plan_resource(patient))
    assert twice.status_code == 409


def test_careplan_scope(fhir: Any, clinic: Clinic, world: Any) -> None:
    patient, other = clinic.patient(), clinic.patient()
    plan = fhir("nurse.cardiology").post("/fhir/CarePlan", plan_resource(patient)).json()
    for attacker in ("nurse.endocrinology", "nurse.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/CarePlan/{plan['id']}").status_code == 404
        assert client.put(f"/fhir/CarePlan/{plan['id']}", plan).status_code == 404
        assert client.delete(f"/fhir/CarePlan/{plan['id']}").status_code == 404
        found = client.get(f"/fhir/CarePlan?patient={patient.pk}&_include=CarePlan:patient")
        assert found.json()["total"] == 0
        assert patient.name.encode() not in found.content
        # Nor can they enrol the patient.
        assert client.post("/fhir/CarePlan", plan_resource(patient)).status_code in (403, 404)
    # A token in the context of another patient sees only that patient's plans.
    bound = fhir("doctor.cardiology", scopes="patient/*.cruds", patient_id=other.pk)
    assert bound.get(f"/fhir/CarePlan/{plan['id']}").status_code == 404
    assert bound.get("/fhir/CarePlan").json()["total"] == 0
    assert bound.get(f"/fhir/CarePlan?patient={patient.pk}").json()["total"] == 0
    assert bound.post("/fhir/CarePlan", plan_resource(patient)).status_code == 403
    assert bound.post("/fhir/CarePlan", plan_resource(other)).status_code == 201
    # An auditor reads no care plans at all.
    assert fhir("auditor").get(f"/fhir/CarePlan/{plan['id']}").status_code == 403


@needs_examples
def test_careplan_example_reads_back_as_sent(fhir: Any, clinic: Clinic) -> None:
    patient, reference = clinic.patient(), clinic.patient()
    client = fhir("nurse.cardiology")
    # What CareLoop always derives from the enrolment (plan, title, period, activities), as it
    # shows them for another patient enrolled in the same plan today.
    derived = client.post("/fhir/CarePlan", plan_resource(reference)).json()
    sent = example("CarePlan-gpvisit.json")
    # The variant: a local patient (also inside the contained resources), the plan CareLoop
    # enrols in, and the elements CareLoop derives from the enrolment rather than from input.
    sent["subject"] = {"reference": f"Patient/{patient.pk}"}
    for contained in sent["contained"]:
        if "subject" in contained:
            contained["subject"]["reference"] = f"Patient/{patient.pk}"
    for element in ("instantiatesCanonical", "title", "category", "period", "activity"):
        sent[element] = derived[element]
    if "description" in derived:
        sent["description"] = derived["description"]
    created = client.post("/fhir/CarePlan", copy.deepcopy(sent))
    assert created.status_code == 201, created.content
    got = client.get(f"/fhir/CarePlan/{created.json()['id']}").json()
    assert content(got) == content(sent)


# --- Task ----------------------------------------------------------------------------------------


def test_task_read_and_search(fhir: Any, world: Any, work: Work, cardio_patient: Any) -> None:
    work.team(cardio_patient)
    task = work.task(cardio_patient)
    client = fhir("nurse.cardiology")
    got = client.get(f"/fhir/Task/{task.pk}").json()
    nurse = world.staff["nurse.cardiology"]
    assert got["status"] == "ready"
    assert got["priority"] == "routine"
    assert got["for"] == {"reference": f"Patient/{cardio_patient.pk}"}
    assert got["owner"] == {"reference": f"Practitioner/{nurse.pk}"}
    assert got["code"]["coding"][0]["code"] == "call_patient"
    assert got["description"] == task.reason
    assert got["restriction"]["period"]["end"].endswith("Z")
    year = task.created_at.year
    for query in (
        f"patient={cardio_patient.pk}",
        f"owner=Practitioner/{nurse.pk}&status=ready",
        "priority=routine",
        f"authored-on=ge{year}&_lastUpdated=ge{year}",
        "code=call_patient",
    ):
        assert ids(client.get(f"/fhir/Task?{query}").json()) == [f"Task/{task.pk}"], query
    assert client.get("/fhir/Task?status=completed").json()["total"] == 0
    assert client.get("/fhir/Task?priority=stat").json()["total"] == 0
    assert client.get(f"/fhir/Task?period={year}").json()["total"] == 0


def test_task_updates_are_the_worklists(
    fhir: Any, world: Any, work: Work, cardio_patient: Any
) -> None:
    work.team(cardio_patient)
    task = work.task(cardio_patient)
    client = fhir("nurse.cardiology")
    first = client.get(f"/fhir/Task/{task.pk}")
    head = world.staff["head.cardiology"]
    moved = {**first.json(), "owner": {"reference": f"Practitioner/{head.pk}"}}
    response = client.put(f"/fhir/Task/{task.pk}", moved, HTTP_IF_MATCH=etag(first))
    assert response.status_code == 200, response.content
    # The worklist shows the task as the colleague's.
    page = alert_selectors.worklist(
        world.actor("nurse.cardiology"), alert_selectors.WorklistCriteria(owner=str(head.pk))
    )
    assert [(i.kind, i.id) for i in page.items] == [("task", task.pk)]
    # The old version is stale now.
    stale = client.put(f"/fhir/Task/{task.pk}", moved, HTTP_IF_MATCH=etag(first))
    assert stale.status_code == 412
    # Completing needs the outcome, named by element.
    done = {**response.json(), "status": "completed"}
    missing = client.put(f"/fhir/Task/{task.pk}", done)
    assert missing.status_code == 422
    assert issue_paths(missing) == ["Task.businessStatus"]
    wrong = client.put(f"/fhir/Task/{task.pk}", {**done, "businessStatus": {"coding": [
        {"system": "urn:careloop:task-outcome", "code": "maybe"}]}})  # fmt: skip
    assert wrong.status_code == 422
    assert issue_paths(wrong) == ["Task.businessStatus"]
    done["businessStatus"] = {
        "coding": [{"system": "urn:careloop:task-outcome", "code": "reached"}]
    }
    done["note"] = [{"text": "Will come on Monday"}]
    closed = client.put(f"/fhir/Task/{task.pk}", done, HTTP_IF_MATCH=etag(response))
    assert closed.status_code == 200, closed.content
    task.refresh_from_db()
    assert (task.status, task.outcome, task.note) == ("done", "reached", "Will come on Monday")
    assert task.closed_by == world.staff["nurse.cardiology"]
    assert closed.json()["status"] == "completed"
    assert "executionPeriod" in closed.json()
    page = alert_selectors.worklist(world.actor("nurse.cardiology"))
    assert ("task", task.pk) not in [(i.kind, i.id) for i in page.items]
    # Owner to someone outside the actor's departments is refused by the service.
    other = work.task(cardio_patient)
    body = client.get(f"/fhir/Task/{other.pk}").json()
    body["owner"] = {"reference": f"Practitioner/{world.staff['nurse.endocrinology'].pk}"}
    refused = client.put(f"/fhir/Task/{other.pk}", body)
    assert refused.status_code == 422
    assert issue_paths(refused) == ["Task.owner"]


def test_task_create_opens_a_follow_up(
    fhir: Any, world: Any, work: Work, cardio_patient: Any
) -> None:
    work.team(cardio_patient)
    client = fhir("doctor.cardiology")
    due = (utc_now() - timedelta(hours=1)).replace(microsecond=0)  # on today's worklist
    body = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "urn:careloop:task-kind", "code": "review"}]},
        "for": {"reference": f"Patient/{cardio_patient.pk}"},
        "description": "Check the new readings",
        "restriction": {"period": {"end": due.isoformat()}},
    }
    created = client.post("/fhir/Task", body)
    assert created.status_code == 201, created.content
    task = am.Task.objects.get(pk=int(created.json()["id"]))
    assert (task.kind, task.reason, task.due_at) == ("review", "Check the new readings", due)
    assert task.department_id == world.cardio.pk
    assert task.assignee == world.staff["nurse.cardiology"]  # the care team's nurse
    page = alert_selectors.worklist(world.actor("nurse.cardiology"))
    assert ("task", task.pk) in [(i.kind, i.id) for i in page.items]
    no_due = client.post("/fhir/Task", {k: v for k, v in body.items() if k != "restriction"})
    assert no_due.status_code == 422
    assert issue_paths(no_due) == ["Task.restriction.period.end"]
    assert fhir("nurse.endocrinology").post("/fhir/Task", body).status_code == 404


def test_task_scope(fhir: Any, world: Any, work: Work, cardio_patient: Any) -> None:
    work.team(cardio_patient)
    task = work.task(cardio_patient)
    for attacker in ("nurse.endocrinology", "nurse.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/Task/{task.pk}").status_code == 404
        body = fhir("nurse.cardiology").get(f"/fhir/Task/{task.pk}").json()
        assert client.put(f"/fhir/Task/{task.pk}", body).status_code == 404
        found = client.get(f"/fhir/Task?patient={cardio_patient.pk}&_include=Task:patient")
        assert found.json()["total"] == 0
        assert cardio_patient.name.encode() not in found.content
    other = patient_services.create_patient(
        world.actor("nurse.cardiology"), patient_data(record_number="MRN-C2")
    )
    bound = fhir("nurse.cardiology", scopes="patient/*.rs", patient_id=other.pk)
    assert bound.get(f"/fhir/Task/{task.pk}").status_code == 404
    assert bound.get("/fhir/Task?_include=Task:patient").json()["total"] == 0
    assert fhir("admin").get(f"/fhir/Task/{task.pk}").status_code == 403  # no worklist role
    # A token in the task's own patient context reads it but does not write Tasks.
    own = fhir("nurse.cardiology", scopes="patient/Task.rus", patient_id=cardio_patient.pk)
    body = own.get(f"/fhir/Task/{task.pk}").json()
    assert own.put(f"/fhir/Task/{task.pk}", body).status_code == 403


@needs_examples
def test_task_example_reads_back_as_sent(fhir: Any, work: Work, cardio_patient: Any) -> None:
    work.team(cardio_patient)
    task = work.task(cardio_patient)
    client = fhir("nurse.cardiology")
    current = client.get(f"/fhir/Task/{task.pk}").json()
    sent = example("Task-example1.json")
    sent["id"] = str(task.pk)
    # The variant: the worklist task's own patient, kind, owner, status and times, which
    # CareLoop derives from the task (an open worklist task is "ready"; the example's
    # in-progress lab order has no counterpart), instead of the example's.
    for element in (
        "status", "intent", "priority", "code", "for", "owner", "performerType",
        "authoredOn", "lastModified", "restriction",
    ):  # fmt: skip
        sent[element] = current[element]
    sent.pop("executionPeriod")  # an open task has not been carried out yet
    updated = client.put(f"/fhir/Task/{task.pk}", copy.deepcopy(sent))
    assert updated.status_code == 200, updated.content
    got = client.get(f"/fhir/Task/{task.pk}").json()
    assert content(got) == content(sent)


# --- Flag ----------------------------------------------------------------------------------------


def test_flag_read_search_resolve(fhir: Any, world: Any, work: Work, cardio_patient: Any) -> None:
    alert = work.alert(cardio_patient)
    client = fhir("nurse.cardiology")
    first = client.get(f"/fhir/Flag/{alert.pk}")
    flag = first.json()
    assert flag["status"] == "active"
    assert flag["code"]["coding"] == [{"system": "urn:careloop:alert-rule", "code": "bp-high"}]
    assert flag["subject"] == {"reference": f"Patient/{cardio_patient.pk}"}
    assert "end" not in flag["period"]
    assert {"url": "urn:careloop:fhir:alert-priority", "valueCode": "urgent"} in flag["extension"]
    today = utc_now().date().isoformat()
    for query in (
        f"patient={cardio_patient.pk}&status=active",
        f"date={today[:7]}",
        f"_lastUpdated=ge{today[:4]}",
        "code=bp-high",
    ):
        assert ids(client.get(f"/fhir/Flag?{query}").json()) == [f"Flag/{alert.pk}"], query
    assert client.get("/fhir/Flag?status=inactive").json()["total"] == 0
    inactive = {**flag, "status": "inactive"}
    missing = client.put(f"/fhir/Flag/{alert.pk}", inactive)
    assert missing.status_code == 422
    assert issue_paths(missing) == ["Flag.extension"]
    inactive["extension"] = [
        *flag["extension"],
        {"url": "urn:careloop:fhir:alert-outcome", "valueCode": "contacted_patient"},
    ]
    assert client.put(f"/fhir/Flag/{alert.pk}", inactive, HTTP_IF_MATCH='W/"1"').status_code == 412
    done = client.put(f"/fhir/Flag/{alert.pk}", inactive, HTTP_IF_MATCH=etag(first))
    assert done.status_code == 200, done.content
    alert.refresh_from_db()
    assert (alert.status, alert.outcome) == ("resolved", "contacted_patient")
    assert alert.closed_by == world.staff["nurse.cardiology"]
    assert done.json()["status"] == "inactive"
    assert "end" in done.json()["period"]
    assert ids(client.get("/fhir/Flag?status=inactive").json()) == [f"Flag/{alert.pk}"]
    assert client.post("/fhir/Flag", flag).status_code == 405
    assert client.delete(f"/fhir/Flag/{alert.pk}").status_code == 405


def test_flag_scope(fhir: Any, world: Any, work: Work, cardio_patient: Any) -> None:
    alert = work.alert(cardio_patient)
    for attacker in ("nurse.endocrinology", "nurse.other"):
        client = fhir(attacker)
        assert client.get(f"/fhir/Flag/{alert.pk}").status_code == 404
        found = client.get(f"/fhir/Flag?subject=Patient/{cardio_patient.pk}&_include=Flag:subject")
        assert found.json()["total"] == 0
        assert cardio_patient.name.encode() not in found.content
    bound = fhir("nurse.cardiology", scopes="patient/Flag.rs", patient_id=cardio_patient.pk)
    assert bound.get(f"/fhir/Flag/{alert.pk}").status_code == 200
    assert ids(bound.get("/fhir/Flag").json()) == [f"Flag/{alert.pk}"]
    elsewhere = patient_services.create_patient(
        world.actor("nurse.cardiology"), patient_data(record_number="MRN-C4")
    )
    other = fhir("nurse.cardiology", scopes="patient/Flag.rs", patient_id=elsewhere.pk)
    assert other.get(f"/fhir/Flag/{alert.pk}").status_code == 404
    assert other.get(f"/fhir/Flag?patient={cardio_patient.pk}").json()["total"] == 0


@needs_examples
def test_flag_example_reads_back_as_sent(fhir: Any, work: Work, cardio_patient: Any) -> None:
    alert = work.alert(cardio_patient)
    client = fhir("nurse.cardiology")
    current = client.get(f"/fhir/Flag/{alert.pk}").json()
    sent = example("Flag-example.json")
    sent["id"] = str(alert.pk)
    # The variant: an alert's category, code, subject and author are the rule's, and closing it
    # needs what was done (the outcome extension); the example's identifier is kept as sent.
    for element in ("category", "code", "subject", "author"):
        sent[element] = current[element]
    sent["extension"] = [
        *current["extension"],
        {"url": "urn:careloop:fhir:alert-outcome", "valueCode": "advice_given"},
    ]
    updated = client.put(f"/fhir/Flag/{alert.pk}", copy.deepcopy(sent))
    assert updated.status_code == 200, updated.content
    got = client.get(f"/fhir/Flag/{alert.pk}").json()
    # The period is the alert's own: from its trigger to the moment it was resolved.
    assert got["period"]["start"] == current["period"]["start"]
    assert "end" in got["period"]
    sent["period"] = got["period"]
    assert content(got) == content(sent)

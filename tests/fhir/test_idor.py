"""Attempts to reach another department's or organisation's patient through the FHIR facade:
by id, by search, by _include, by Bundle entry, by write, and past a token's scopes."""

from __future__ import annotations

from typing import Any

from careloop.audit.models import AuditEvent
from careloop.observations import models as om
from careloop.observations import services as obs_services
from careloop.patients import models as pm
from careloop.patients import services as patient_services
from tests.fhir.test_crud import condition


def _endo_rows(world: Any, endo_patient: Any) -> tuple[Any, Any]:
    actor = world.actor("doctor.endocrinology")
    cond = patient_services.add_record(
        actor, endo_patient.pk, "conditions", {"icd10_code": "E11", "display": "T2DM"}
    )
    report = obs_services.ingest(
        actor,
        [{"code": "glucose", "value": 7.0, "effective": "2024-01-02T08:00:00+08:00"}],
        patient_id=endo_patient.pk,
    )
    return cond, om.Observation.objects.get(pk=report.ids[0])


def test_read_by_id_answers_404_and_is_audited(fhir: Any, world: Any, endo_patient: Any) -> None:
    cond, reading = _endo_rows(world, endo_patient)
    for attacker in ("doctor.cardiology", "nurse.other"):
        client = fhir(attacker)
        for path in (
            f"/fhir/Patient/{endo_patient.pk}",
            f"/fhir/Condition/{cond.pk}",
            f"/fhir/Observation/{reading.pk}",
            f"/fhir/Patient/{endo_patient.pk}/_history",
            f"/fhir/Patient/{endo_patient.pk}/_history/1",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert endo_patient.name.encode() not in response.content
        assert AuditEvent.objects.filter(
            actor=attacker, outcome="denied", patient_id=endo_patient.pk
        ).exists()


def test_search_and_include_never_show_the_patient(
    fhir: Any, world: Any, endo_patient: Any, cardio_patient: Any
) -> None:
    _endo_rows(world, endo_patient)
    client = fhir("doctor.cardiology")
    for path in (
        f"/fhir/Observation?subject=Patient/{endo_patient.pk}&_include=Observation:subject",
        f"/fhir/Condition?patient={endo_patient.pk}",
        "/fhir/Patient?identifier=MRN-E1",
        f"/fhir/Patient?_id={endo_patient.pk}",
        "/fhir/Observation?_include=Observation:patient",
        "/fhir/Condition?_include=Condition:subject",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert endo_patient.name.encode() not in response.content, path
        assert response.json()["total"] == 0, path


def test_bundle_entries_cannot_reach_the_patient(fhir: Any, world: Any, endo_patient: Any) -> None:
    cond, _reading = _endo_rows(world, endo_patient)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{endo_patient.pk}"}},
            {"request": {"method": "GET", "url": f"Condition?patient={endo_patient.pk}"}},
            {
                "resource": condition(endo_patient.pk),
                "request": {"method": "POST", "url": "Condition"},
            },
            {"request": {"method": "DELETE", "url": f"Condition/{cond.pk}"}},
        ],
    }
    before = pm.Condition.objects.filter(patient=endo_patient, deleted_at__isnull=True).count()
    response = fhir("doctor.cardiology").post("/fhir", bundle)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("404") and statuses[2].startswith("404")
    assert statuses[3].startswith("404")
    assert response.json()["entry"][1]["resource"]["total"] == 0
    assert endo_patient.name.encode() not in response.content
    assert (
        pm.Condition.objects.filter(patient=endo_patient, deleted_at__isnull=True).count() == before
    )


def test_writes_into_an_outside_patient_are_refused(
    fhir: Any, world: Any, endo_patient: Any
) -> None:
    cond, _reading = _endo_rows(world, endo_patient)
    client = fhir("doctor.cardiology")
    assert client.post("/fhir/Condition", condition(endo_patient.pk)).status_code == 404
    moved = condition(endo_patient.pk)
    moved["id"] = str(cond.pk)
    assert client.put(f"/fhir/Condition/{cond.pk}", moved).status_code == 404
    assert client.delete(f"/fhir/Condition/{cond.pk}").status_code == 404
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{endo_patient.pk}"},
        "effectiveDateTime": "2024-01-01T08:00:00+08:00",
        "valueQuantity": {"value": 70, "code": "kg"},
    }
    assert client.post("/fhir/Observation", obs).status_code == 404
    assert not om.Observation.objects.filter(patient=endo_patient, kind="weight").exists()


def test_roles_and_scopes(fhir: Any, world: Any, cardio_patient: Any) -> None:
    auditor = fhir("auditor").get(f"/fhir/Patient/{cardio_patient.pk}")
    assert auditor.status_code == 403
    assert auditor.json()["issue"][0]["code"] == "forbidden"
    admin = fhir("admin").post("/fhir/Condition", condition(cardio_patient.pk))
    assert admin.status_code == 403
    read_only = fhir("doctor.cardiology", scopes="user/Condition.rs")
    assert read_only.post("/fhir/Condition", condition(cardio_patient.pk)).status_code == 403
    assert read_only.get("/fhir/Condition").status_code == 200
    assert read_only.get("/fhir/Patient").status_code == 403
    other = patient_services.create_patient(
        world.actor("nurse.cardiology"),
        {
            "name": "李四",
            "sex": "male",
            "date_of_birth": "1970-01-01",
            "phones": ["13911112222"],
        },
    )
    bound = fhir("doctor.cardiology", scopes="patient/*.rs", patient_id=cardio_patient.pk)
    assert bound.get(f"/fhir/Patient/{cardio_patient.pk}").status_code == 200
    assert bound.get(f"/fhir/Patient/{other.pk}").status_code == 404
    found = bound.get("/fhir/Patient").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [str(cardio_patient.pk)]

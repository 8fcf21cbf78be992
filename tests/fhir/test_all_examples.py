"""Every official R4 example of a type CareLoop creates is either accepted and read back as
sent, or refused with a 422 OperationOutcome naming the element CareLoop cannot record —
never a 500, never stored in part.

"As sent" means the same content except what the server owns (id, meta, text) and the
references it rewrites to its own resources: a reference to the patient points at the local
patient, and a Patient's managingOrganization is the CareLoop organisation holding the record.
Variants are derived where the example lacks what CareLoop requires of every record of the
type: a Patient gets a mainland mobile number, a Condition an ICD-10 coding.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from careloop.fhir.registry import mapper_for
from careloop.patients import models as pm
from tests.corpus import CORPUS as SHARED

CORPUS = SHARED / "hl7-fhir-r4-examples"
TYPES = (
    "Patient",
    "Condition",
    "AllergyIntolerance",
    "Encounter",
    "MedicationRequest",
    "Observation",
)
NAMES = sorted(
    p.name for t in TYPES for p in (CORPUS.glob(f"{t}-*.json") if CORPUS.is_dir() else [])
)
pytestmark = pytest.mark.skipif(not NAMES, reason="the R4 example corpus is absent")

# Example → the element the refusal names. One reason per group.
REFUSED = {
    # Not a person CareLoop follows up: an animal; no name; no date of birth.
    "Patient-animal.json": "Patient.extension",
    "Patient-newborn.json": "Patient.name",
    "Patient-proband.json": "Patient.name",
    "Patient-dicom.json": "Patient.birthDate",
    "Patient-ihe-pcd.json": "Patient.birthDate",
    "Patient-pat2.json": "Patient.birthDate",
    # "No known allergy" statements: the allergy list holds only what the patient reacts to.
    "AllergyIntolerance-nka.json": "AllergyIntolerance.code",
    "AllergyIntolerance-nkda.json": "AllergyIntolerance.code",
    "AllergyIntolerance-nkla.json": "AllergyIntolerance.code",
    # No date at all: CareLoop records every visit on its date.
    "Encounter-example.json": "Encounter.period.start",
    "Encounter-f001.json": "Encounter.period.start",
    "Encounter-f002.json": "Encounter.period.start",
    "Encounter-f003.json": "Encounter.period.start",
    "Encounter-f201.json": "Encounter.period.start",
    "Encounter-xcda.json": "Encounter.period.start",
    # A Medication outside the resource: CareLoop holds no Medication resources.
    "MedicationRequest-medrx002.json": "MedicationRequest.medicationReference",
    # A dose range ("1-2 tablets"): CareLoop records one dose per administration.
    "MedicationRequest-medrx0301.json": "MedicationRequest.dosageInstruction.doseAndRate.doseRange",
    "MedicationRequest-medrx0310.json": "MedicationRequest.dosageInstruction.doseAndRate.doseRange",
    "MedicationRequest-medrx0315.json": "MedicationRequest.dosageInstruction.doseAndRate.doseRange",
    "MedicationRequest-medrx0333.json": "MedicationRequest.dosageInstruction.doseAndRate.doseRange",
    # A dosage in several steps (tapering): CareLoop would remind of the first step only.
    "MedicationRequest-medrx0302.json": "MedicationRequest.dosageInstruction[1]",
    "MedicationRequest-medrx0303.json": "MedicationRequest.dosageInstruction[1]",
    "MedicationRequest-medrx0317.json": "MedicationRequest.dosageInstruction[1]",
    # No CareLoop frequency: infusions (hourly, by duration), every 3 weeks, 3 times a week,
    # four times a day on Mondays only.
    "MedicationRequest-medrx0316.json": "MedicationRequest.dosageInstruction.timing",
    "MedicationRequest-medrx0322.json": "MedicationRequest.dosageInstruction.timing",
    "MedicationRequest-medrx0327.json": "MedicationRequest.dosageInstruction.timing",
    "MedicationRequest-medrx0334.json": "MedicationRequest.dosageInstruction.timing",
    "MedicationRequest-medrx0336.json": "MedicationRequest.dosageInstruction.timing",
    "MedicationRequest-medrx0338.json": "MedicationRequest.dosageInstruction.timing",
    # The subject is not a Patient (a contained newborn) or is missing.
    "Observation-10minute-apgar-score.json": "Observation.subject",
    "Observation-1minute-apgar-score.json": "Observation.subject",
    "Observation-2minute-apgar-score.json": "Observation.subject",
    "Observation-5minute-apgar-score.json": "Observation.subject",
    "Observation-decimal.json": "Observation.subject",
    "Observation-vp-oyster.json": "Observation.subject",
    # Entered in error / cancelled: not a measurement (storing it would raise alerts).
    "Observation-f202.json": "Observation.status",
    "Observation-unsat.json": "Observation.status",
    # A blood pressure without its diastolic value (dataAbsentReason).
    "Observation-blood-pressure-dar.json": "Observation.component[1].valueQuantity.value",
    # Not a reading CareLoop records (see observations.domain.KINDS): laboratory results,
    # genetics, scores, BMI, height, head circumference, mean blood pressure, findings.
    **{
        f"Observation-{n}.json": "Observation.code"
        for n in (
            "656 abdo-tender alcohol-type bgpanel bloodgroup bmd bmi-using-related bmi "
            "body-length clinical-gender date-lastmp ekg example-TPMT-diplotype "
            "example-TPMT-haplotype-two example-diplotype1 example-genetics-1 example-genetics-3 "
            "example-genetics-4 example-genetics-5 example-genetics-brcapat example-haplotype1 "
            "example-phenotype eye-color f002 f003 f004 f005 f203 f204 f206 glasgow "
            "head-circumference map-sitting mbp secondsmoke trachcare vomiting"
        ).split()
    },
}


def _retarget(value: Any, patient: str) -> Any:
    if isinstance(value, dict):
        out = {k: _retarget(v, patient) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            out["reference"] = patient
        return out
    if isinstance(value, list):
        return [_retarget(v, patient) for v in value]
    return value


def content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def variant(name: str, patient_id: int) -> dict[str, Any]:
    sent = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    sent = _retarget(sent, f"Patient/{patient_id}")
    if sent["resourceType"] == "Patient":
        sent.setdefault("telecom", []).append({"system": "phone", "value": "13800138000"})
    if sent["resourceType"] == "Condition":
        sent.setdefault("code", {}).setdefault("coding", []).append(
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": "S72"}
        )
    return sent  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NAMES)
def test_example_round_trips_or_is_refused_naming_the_element(
    name: str, fhir: Any, cardio_patient: Any, world: Any
) -> None:
    sent = variant(name, cardio_patient.pk)
    kind = sent["resourceType"]
    model = mapper_for(kind).model
    before = model._default_manager.count()
    client = fhir("doctor.cardiology")
    created = client.post(f"/fhir/{kind}", copy.deepcopy(sent))
    if name in REFUSED:
        assert created.status_code == 422, created.content.decode()[:600]
        outcome = created.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert [i["expression"] for i in outcome["issue"]] == [[REFUSED[name]]]
        assert model._default_manager.count() == before  # nothing stored
        return
    assert created.status_code == 201, created.content.decode()[:600]
    got = client.get(f"/fhir/{kind}/{created.json()['id']}").json()
    expected = content(sent)
    if kind == "Patient":
        expected["managingOrganization"] = {"reference": f"Organization/org-{world.org.pk}"}
    assert content(got) == expected


def test_the_refused_table_names_only_examples_of_the_corpus() -> None:
    assert set(REFUSED) - set(NAMES) == set()


def _post(client: Any, name: str, patient_id: int, **changes: Any) -> Any:
    sent = variant(name, patient_id)
    sent.update(changes)
    return client.post(f"/fhir/{sent['resourceType']}", sent)


def test_an_order_on_hold_is_stored_stopped_and_reads_and_searches_as_sent(
    fhir: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    held = _post(client, "MedicationRequest-medrx0325.json", cardio_patient.pk)
    assert held.status_code == 201, held.content
    active = _post(client, "MedicationRequest-medrx0331.json", cardio_patient.pk)
    stopped = _post(client, "MedicationRequest-medrx0331.json", cardio_patient.pk, status="stopped")
    row = pm.Medication.objects.get(pk=held.json()["id"])
    assert row.status == "stopped"  # no dose reminders while on hold
    assert client.get(f"/fhir/MedicationRequest/{row.pk}").json()["status"] == "on-hold"

    def found(status: str) -> set[str]:
        bundle = client.get("/fhir/MedicationRequest", {"status": status}).json()
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert found("on-hold") == {held.json()["id"]}
    assert found("stopped") == {stopped.json()["id"]}
    assert found("active") == {active.json()["id"]}


@pytest.mark.parametrize(
    ("status", "where"),
    [("entered-in-error", "MedicationRequest.status"), ("unknown", "MedicationRequest.status")],
)
def test_an_order_entered_in_error_or_of_unknown_status_is_refused(
    status: str, where: str, fhir: Any, cardio_patient: Any
) -> None:
    made = _post(
        fhir("doctor.cardiology"), "MedicationRequest-medrx0331.json", cardio_patient.pk,
        status=status,
    )  # fmt: skip
    assert made.status_code == 422
    assert made.json()["issue"][0]["expression"] == [where]
    assert not pm.Medication.objects.filter(patient=cardio_patient).exists()


def test_a_contained_medication_names_the_medicine_until_staff_change_it(
    fhir: Any, cardio_patient: Any, world: Any
) -> None:
    from careloop.patients import services as patient_services

    client = fhir("doctor.cardiology")
    made = _post(client, "MedicationRequest-medrx0331.json", cardio_patient.pk)
    assert made.status_code == 201, made.content
    row = pm.Medication.objects.get(pk=made.json()["id"])
    assert (row.name, row.code, row.dose, row.frequency) == ("Warfarin Sodium", "114194", 7, "qd")
    patient_services.update_record(
        world.actor("doctor.cardiology"), cardio_patient.pk, "medications", row.pk,
        {"name": "Rivaroxaban", "code": ""}, 1,
    )  # fmt: skip
    got = client.get(f"/fhir/MedicationRequest/{row.pk}").json()
    assert got["medicationCodeableConcept"] == {"text": "Rivaroxaban"}
    assert "medicationReference" not in got and "contained" not in got


def test_a_dosage_with_an_end_stops_reminding_after_it(fhir: Any, cardio_patient: Any) -> None:
    sent = variant("MedicationRequest-medrx0331.json", cardio_patient.pk)
    sent["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"end": "2015-02-01"}
    made = fhir("doctor.cardiology").post("/fhir/MedicationRequest", sent)
    assert made.status_code == 201, made.content
    assert str(pm.Medication.objects.get(pk=made.json()["id"]).end_date) == "2015-02-01"


def test_a_visit_with_only_an_end_is_recorded_on_that_date(fhir: Any, cardio_patient: Any) -> None:
    client = fhir("doctor.cardiology")
    sent = variant("Encounter-home.json", cardio_patient.pk)
    sent["period"] = {"end": "2015-01-17T16:30:00+10:00"}
    made = client.post("/fhir/Encounter", copy.deepcopy(sent))
    assert made.status_code == 201, made.content
    row = pm.Encounter.objects.get(pk=made.json()["id"])
    assert (row.kind, str(row.admitted_on)) == ("follow_up", "2015-01-17")
    got = client.get(f"/fhir/Encounter/{row.pk}").json()
    assert content(got) == content(sent)
    sent["class"] = {"code": "IMP"}  # an inpatient stay needs its admission date
    refused = client.post("/fhir/Encounter", sent)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Encounter.period.start"]


def test_an_inactive_patient_is_refused_and_an_absent_active_stays_absent(
    fhir: Any, cardio_patient: Any
) -> None:
    client = fhir("nurse.cardiology")
    before = pm.Patient.objects.count()
    inactive = _post(client, "Patient-example.json", cardio_patient.pk, active=False)
    assert inactive.status_code == 422
    assert inactive.json()["issue"][0]["expression"] == ["Patient.active"]
    assert pm.Patient.objects.count() == before
    sent = variant("Patient-infant-twin-1.json", cardio_patient.pk)
    made = client.post("/fhir/Patient", sent)
    assert made.status_code == 201, made.content
    assert "active" not in client.get(f"/fhir/Patient/{made.json()['id']}").json()

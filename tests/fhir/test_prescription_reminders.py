"""A prescription sent through FHIR reminds the patient of each dose exactly as one entered on
the staff form does, and stopping it through FHIR ends the future reminders."""

from __future__ import annotations

from typing import Any

from careloop.kit.clock import utc_now
from careloop.patients import models as pm
from careloop.reminders import models as rm
from tests.fhir.test_records import prescription
from tests.support.clinic import utc

NOW = utc(2026, 3, 1, 16, 0)  # midnight in Shanghai


def _doses(patient: Any, medication_id: int) -> list[rm.Occurrence]:
    return [
        o
        for o in rm.Occurrence.objects.filter(patient=patient, kind="medication").order_by("due_at")
        if o.payload.get("medication_id") == medication_id
    ]


def test_fhir_prescription_plans_doses_like_the_staff_form(fhir: Any, clinic: Any) -> None:
    p = clinic.patient()
    clinic.enrol(p, "hypertension", now=NOW)
    staff = clinic.prescribe(p, "bid", name="缬沙坦")
    response = fhir(clinic.actor.user.username).post("/fhir/MedicationRequest", prescription(p.pk))
    assert response.status_code == 201, response.content
    via_fhir = pm.Medication.objects.get(pk=response.json()["id"])
    by_staff, by_fhir = _doses(p, staff.pk), _doses(p, via_fhir.pk)
    assert by_fhir, "no dose reminders were planned for the FHIR prescription"
    # Twice a day at the plan's dose times (which comes first depends on the time of day now).
    assert sorted({o.local_due[11:] for o in by_fhir}) == ["08:00", "20:00"]
    # The same times on the same days as the same frequency entered by staff.
    assert [o.local_due for o in by_fhir] == [o.local_due for o in by_staff]
    assert all(o.status == rm.Status.SCHEDULED for o in by_fhir)
    assert any("Amlodipine" in str(v) for v in by_fhir[0].payload.values())


def test_stopping_through_fhir_removes_future_doses(fhir: Any, clinic: Any) -> None:
    p = clinic.patient()
    clinic.enrol(p, "hypertension", now=NOW)
    client = fhir(clinic.actor.user.username)
    created = client.post("/fhir/MedicationRequest", prescription(p.pk))
    mid = int(created.json()["id"])
    assert _doses(p, mid)
    stopped = prescription(p.pk)
    stopped["status"] = "stopped"
    response = client.put(f"/fhir/MedicationRequest/{mid}", stopped, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200, response.content
    now = utc_now()
    future = [
        o
        for o in _doses(p, mid)
        if o.due_at > now and o.status not in (rm.Status.CANCELLED, rm.Status.SKIPPED)
    ]
    assert future == []

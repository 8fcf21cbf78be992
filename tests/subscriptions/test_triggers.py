"""Task, Flag and Appointment changes queue deliveries in the transaction of the change."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction

from careloop.alerts import models as am
from careloop.alerts import services as alert_services
from careloop.fhir.registry import mappers
from careloop.kit.clock import utc_now
from careloop.subscriptions import delivery, signals
from careloop.subscriptions import models as sm
from tests.subscriptions.conftest import allow, reading, subscribe


def _task(world: Any, patient: Any, key: str = "sub-test-1") -> am.Task:
    return alert_services.open_task(
        organisation_id=world.org.pk,
        patient_id=patient.pk,
        kind=am.Task.Kind.CALL_PATIENT,
        source_key=key,
        due_at=utc_now() + timedelta(hours=2),
        reason="Call about the missed readings",
    )


def test_task_changes_are_queued_with_the_change(world, fhir, receiver, cardio_patient) -> None:
    if "Task" not in mappers():
        pytest.skip("no Task mapper")
    allow(world)
    subscribe(fhir("doctor.cardiology"), f"Task?patient={cardio_patient.pk}", receiver.url)
    task = _task(world, cardio_patient)
    # Queued by the save itself, no scan needed.
    assert sm.Delivery.objects.filter(resource_type="Task", resource_id=str(task.pk)).count() == 1
    alert_services.close_task(world.actor("nurse.cardiology"), task.pk, outcome="reached")
    assert sm.Delivery.objects.filter(resource_type="Task").count() == 2
    signals.scan()  # the scan finds the same changes and adds nothing
    assert sm.Delivery.objects.filter(resource_type="Task").count() == 2
    assert delivery.run_once("w1") == {"delivered": 2}
    statuses = [json.loads(r.body)["status"] for r in receiver.got]
    assert all(s == "completed" for s in statuses)  # the resource as it is at send time
    assert {r.headers["X-CareLoop-Delivery"] for r in receiver.got} == {
        str(d.pk) for d in sm.Delivery.objects.all()
    }


def test_a_rolled_back_change_queues_nothing(world, fhir, receiver, cardio_patient) -> None:
    if "Task" not in mappers():
        pytest.skip("no Task mapper")
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Task", receiver.url)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        _task(world, cardio_patient, "rolled-back")
        raise Boom
    assert not sm.Delivery.objects.exists()


def test_task_criteria_filter_by_status(world, fhir, receiver, cardio_patient) -> None:
    if "Task" not in mappers():
        pytest.skip("no Task mapper")
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Task?status=completed", receiver.url)
    task = _task(world, cardio_patient)
    assert not sm.Delivery.objects.exists()
    alert_services.close_task(world.actor("nurse.cardiology"), task.pk, outcome="reached")
    assert sm.Delivery.objects.count() == 1


def test_flags_raised_in_bulk_are_found_by_the_scan(world, fhir, receiver, cardio_patient) -> None:
    if "Flag" not in mappers():
        pytest.skip("no Flag mapper")
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Flag", receiver.url)
    reading(world, cardio_patient, code="bp", systolic=200, diastolic=125)
    alert = am.Alert.objects.filter(patient=cardio_patient).first()
    if alert is None:
        pytest.skip("the default rules raised no alert for this reading")
    signals.scan()
    assert sm.Delivery.objects.filter(resource_type="Flag").count() >= 1
    before = sm.Delivery.objects.count()
    alert_services.acknowledge_alert(world.actor("doctor.cardiology"), alert.pk)
    assert sm.Delivery.objects.count() == before + 1
    delivery.run_once("w1")
    assert {json.loads(r.body)["resourceType"] for r in receiver.got} == {"Flag"}


def test_subscriptions_of_other_organisations_are_not_matched(
    world, fhir, receiver, cardio_patient
) -> None:
    sm.AllowedHost.objects.create(organisation=world.other_org, host="127.0.0.1")
    subscribe(fhir("admin.other"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    assert not sm.Delivery.objects.exists()


def test_appointment_booking_and_cancelling_are_delivered(
    world, fhir, receiver, cardio_patient, clinic
) -> None:
    if "Appointment" not in mappers():
        pytest.skip("no Appointment mapper")
    from careloop.appointments import services as appointment_services
    from tests.appointments.conftest import TUE

    allow(world)
    subscribe(fhir("doctor.cardiology"), f"Appointment?patient={cardio_patient.pk}", receiver.url)
    clinic.schedule()
    slot = clinic.slot(TUE, 9)
    appt = appointment_services.book(clinic.nurse, cardio_patient.pk, slot.pk).appointment
    assert sm.Delivery.objects.filter(resource_type="Appointment").count() == 1
    appointment_services.cancel(clinic.nurse, appt.pk, reason="patient travelling")
    assert sm.Delivery.objects.filter(resource_type="Appointment").count() == 2
    assert delivery.run_once("w1") == {"delivered": 2}
    assert {json.loads(r.body)["status"] for r in receiver.got} == {"cancelled"}

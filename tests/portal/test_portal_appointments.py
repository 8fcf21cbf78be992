"""Appointments from the patient's side: open revisit times of their own departments, booking
with an idempotency key, the "just filled" answer (also under a real race for the last place),
moving and cancelling (with a confirmation step), and nobody else's appointment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps

from careloop.appointments import models as am
from careloop.appointments import services
from careloop.audit.models import AuditEvent
from careloop.reminders import models as rm
from tests.appointments import conftest as appointment_fixtures
from tests.appointments.conftest import TUE, WED, race
from tests.portal.client import portal_client

# The appointment tests' clinic (a frozen clock, a cardiology schedule) and their race set-up.
clinic = appointment_fixtures.clinic
frozen = appointment_fixtures.frozen
racing_db = appointment_fixtures.racing_db

A = am.Appointment
FILLED = "that time has just filled up"


def book(client: Any, slot: am.Slot, key: str = "k1") -> Any:
    return client.post("/portal/appointments/book", {"slot": slot.pk, "idempotency_key": key})


@pytest.mark.django_db
class TestBooking:
    def test_the_slots_page_offers_open_times_of_the_patients_departments(
        self, clinic: Any, make_patient: Any, world: Any
    ) -> None:
        clinic.schedule(capacity=1)
        clinic.schedule(dept=world.endo)
        patient = make_patient()
        full = clinic.slot(TUE, 9)
        services.book(clinic.nurse, make_patient().pk, full.pk)
        html = portal_client(patient).get("/portal/appointments/book").content.decode()
        assert f'data-testid="slot-{clinic.slot(TUE, 10).pk}"' in html
        assert f'data-testid="slot-{full.pk}"' not in html
        endo = clinic.slot(TUE, 10, dept=world.endo)
        assert f'data-testid="slot-{endo.pk}"' not in html
        assert 'name="idempotency_key"' in html
        assert AuditEvent.objects.filter(action="portal.slot.list", patient_id=patient.pk).exists()

    def test_booking_takes_a_place_schedules_reminders_and_is_audited_as_the_patient(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient()
        slot = clinic.slot(WED, 9)
        client = portal_client(patient)
        response = book(client, slot)
        assert response.status_code == 302
        appt = A.objects.get(patient=patient)
        assert (appt.slot_id, appt.status, appt.kind, appt.booked_by) == (
            slot.pk, "booked", "revisit", None,
        )  # fmt: skip
        slot.refresh_from_db()
        assert slot.booked == 1
        assert rm.Occurrence.objects.filter(ref=appt.ref, kind="appointment").count() == 2
        event = AuditEvent.objects.get(action="appointment.book")
        assert (event.actor, event.patient_id) == (f"patient:{patient.pk}", patient.pk)
        listing = client.get("/portal/appointments").content.decode()
        assert f'data-testid="appointment-{appt.pk}"' in listing
        assert "2026-03-11 09:00" in listing
        today = client.get("/portal/").content.decode()
        assert f'data-testid="appointment-{appt.pk}"' in today

    def test_the_same_form_sent_twice_books_once(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        patient = make_patient()
        slot = clinic.slot(WED, 9)
        client = portal_client(patient)
        assert book(client, slot, "same").status_code == 302
        assert book(client, slot, "same").status_code == 302
        assert A.objects.filter(patient=patient).count() == 1
        slot.refresh_from_db()
        assert slot.booked == 1

    def test_a_slot_that_just_filled_says_so_and_books_nothing(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=1)
        patient = make_patient()
        slot = clinic.slot(WED, 9)
        services.book(clinic.nurse, make_patient().pk, slot.pk)
        response = book(portal_client(patient), slot)
        assert response.status_code == 409
        assert FILLED in response.content.decode()
        assert not A.objects.filter(patient=patient).exists()

    def test_a_slot_of_another_department_answers_404(
        self, clinic: Any, make_patient: Any, world: Any
    ) -> None:
        clinic.schedule(dept=world.endo)
        patient = make_patient()
        response = book(portal_client(patient), clinic.slot(WED, 9, dept=world.endo))
        assert response.status_code == 404
        assert not A.objects.exists()


@pytest.mark.django_db
class TestChanges:
    @pytest.fixture
    def booked(self, clinic: Any, make_patient: Any) -> tuple[Any, A]:
        clinic.schedule()
        patient = make_patient()
        appt = services.book(clinic.nurse, patient.pk, clinic.slot(TUE, 9).pk).appointment
        return patient, appt

    def test_reschedule_moves_the_place_and_the_reminders(self, booked: Any, clinic: Any) -> None:
        patient, appt = booked
        client = portal_client(patient)
        page = client.get(f"/portal/appointments/{appt.pk}/reschedule").content.decode()
        assert f'data-testid="slot-{appt.slot_id}"' not in page  # not its own slot
        new = clinic.slot(WED, 10)
        response = client.post(
            f"/portal/appointments/{appt.pk}/reschedule", {"slot": new.pk, "version": appt.version}
        )
        assert response.status_code == 302
        appt.refresh_from_db()
        assert (appt.slot_id, appt.version) == (new.pk, 2)
        assert am.Slot.objects.get(pk=clinic.slot(TUE, 9).pk).booked == 0
        assert am.Slot.objects.get(pk=new.pk).booked == 1
        event = AuditEvent.objects.get(action="appointment.reschedule")
        assert event.actor == f"patient:{patient.pk}"
        again = client.post(  # the same move sent twice is no error
            f"/portal/appointments/{appt.pk}/reschedule", {"slot": new.pk, "version": 1}
        )
        assert again.status_code == 302

    def test_reschedule_to_a_full_slot_says_it_just_filled(
        self, booked: Any, clinic: Any, make_patient: Any
    ) -> None:
        patient, appt = booked
        full = clinic.slot(WED, 10)
        for _ in range(2):
            services.book(clinic.nurse, make_patient().pk, full.pk)
        response = portal_client(patient).post(
            f"/portal/appointments/{appt.pk}/reschedule", {"slot": full.pk, "version": 1}
        )
        assert response.status_code == 409
        assert FILLED in response.content.decode()
        appt.refresh_from_db()
        assert appt.slot_id == clinic.slot(TUE, 9).pk

    def test_cancel_asks_first_then_gives_the_place_back(self, booked: Any, clinic: Any) -> None:
        patient, appt = booked
        client = portal_client(patient)
        confirm = client.get(f"/portal/appointments/{appt.pk}/cancel")
        assert confirm.status_code == 200
        assert 'data-testid="confirm-cancel"' in confirm.content.decode()
        appt.refresh_from_db()
        assert appt.status == "booked"
        response = client.post(
            f"/portal/appointments/{appt.pk}/cancel", {"version": appt.version, "reason": "出差"}
        )
        assert response.status_code == 302
        appt.refresh_from_db()
        assert (appt.status, appt.cancel_reason) == ("cancelled", "出差")
        assert am.Slot.objects.get(pk=appt.slot_id).booked == 0
        assert not rm.Occurrence.objects.filter(ref=appt.ref, status="scheduled").exists()
        event = AuditEvent.objects.get(action="appointment.cancel")
        assert event.actor == f"patient:{patient.pk}"

    def test_another_patients_appointment_answers_404_and_stays(
        self, booked: Any, clinic: Any, make_patient: Any
    ) -> None:
        _owner, appt = booked
        intruder = portal_client(make_patient())
        base = f"/portal/appointments/{appt.pk}"
        assert intruder.get(f"{base}/cancel").status_code == 404
        assert intruder.post(f"{base}/cancel", {"version": 1}).status_code == 404
        assert intruder.get(f"{base}/reschedule").status_code == 404
        moved = intruder.post(f"{base}/reschedule", {"slot": clinic.slot(WED, 9).pk, "version": 1})
        assert moved.status_code == 404
        appt.refresh_from_db()
        assert (appt.status, appt.version, appt.slot_id) == ("booked", 1, clinic.slot(TUE, 9).pk)
        assert AuditEvent.objects.filter(action="appointment.read", outcome="denied").exists()


# --- a real race for the last place -------------------------------------------------------------


@pytest.fixture
def _put_back_after_flush(django_db_blocker: Any) -> Iterator[None]:
    """Set up before the transactional database, so torn down after its flush: put the audit
    triggers and the terminology back, as the appointment tests' conftest hook does."""
    yield
    with django_db_blocker.unblock():
        appointment_fixtures._audit_triggers(up=True)
        appointment_fixtures._concepts.load(apps, None)


def test_two_patients_racing_for_the_last_place_one_wins_the_other_is_told(
    _put_back_after_flush: None, racing_db: Any, clinic: Any, make_patient: Any
) -> None:
    clinic.schedule(capacity=2)
    slot = clinic.slot(WED, 9)
    services.book(clinic.nurse, make_patient().pk, slot.pk)
    patients = [make_patient(), make_patient()]
    clients = [portal_client(p) for p in patients]

    results = race(lambda i: book(clients[i], slot, f"race-{i}"), 2)

    codes = sorted(r.status_code for r in results)
    assert codes == [302, 409], results
    loser = next(r for r in results if r.status_code == 409)
    assert FILLED in loser.content.decode()
    slot.refresh_from_db()
    assert (slot.booked, slot.capacity) == (2, 2)
    assert A.objects.filter(slot=slot, patient__in=patients).count() == 1

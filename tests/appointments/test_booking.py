"""Booking rules: places, states, versions, and the clinic schedules that open the slots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from careloop.appointments import models as am
from careloop.appointments import services
from careloop.audit.models import AuditEvent
from careloop.kit.errors import Forbidden, StaleVersion, ValidationFailed
from tests.appointments.conftest import MON, TUE, WED, local

A = am.Appointment


class TestBooking:
    def test_a_booking_takes_a_place_and_is_audited(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        patient = make_patient()
        slot = clinic.slot(TUE, 9)
        appt = services.book(clinic.nurse, patient.pk, slot.pk, reason="血压复查").appointment
        slot.refresh_from_db()
        assert (slot.booked, slot.capacity) == (1, 2)
        assert (appt.status, appt.kind, appt.version) == ("booked", "revisit", 1)
        assert appt.department_id == clinic.world.cardio.pk
        assert appt.doctor == clinic.world.staff["doctor.cardiology"]
        assert appt.starts_at == local(TUE, 9) and appt.local_date == TUE
        assert appt.booked_by.username == "nurse.cardiology"
        event = AuditEvent.objects.get(action="appointment.book")
        assert (event.patient_id, event.actor, event.object_id) == (
            patient.pk,
            "nurse.cardiology",
            str(appt.pk),
        )

    def test_a_full_slot_refuses_with_409(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule(capacity=1)
        slot = clinic.slot(TUE, 9)
        services.book(clinic.nurse, make_patient().pk, slot.pk)
        with pytest.raises(services.SlotFull) as err:
            services.book(clinic.nurse, make_patient().pk, slot.pk)
        assert err.value.status == 409
        assert A.objects.filter(slot=slot).count() == 1

    def test_closed_and_past_slots_refuse(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient()
        closed = clinic.slot(TUE, 9)
        services.set_slot_status(clinic.head, closed.pk, "closed")
        with pytest.raises(services.SlotUnavailable):
            services.book(clinic.nurse, patient.pk, closed.pk)
        frozen.set(local(MON, 8, 30))  # Monday's 08:00-08:30 is over, 08:30-09:00 is on
        with pytest.raises(services.SlotUnavailable):
            services.book(clinic.nurse, patient.pk, clinic.slot(MON, 8).pk)
        services.book(clinic.nurse, patient.pk, clinic.slot(MON, 8, 30).pk)
        assert A.objects.count() == 1

    def test_a_patient_holds_one_active_appointment_per_slot(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=3)
        patient = make_patient()
        slot = clinic.slot(TUE, 9)
        first = services.book(clinic.nurse, patient.pk, slot.pk).appointment
        with pytest.raises(services.AlreadyBooked):
            services.book(clinic.nurse, patient.pk, slot.pk)
        # The database refuses it too, whatever the code above it does.
        with pytest.raises(IntegrityError), transaction.atomic():
            A.objects.create(
                organisation=first.organisation,
                patient=patient,
                slot=slot,
                department=first.department,
                starts_at=slot.starts_at,
                local_date=slot.local_date,
            )
        services.cancel(clinic.nurse, first.pk, "改期")
        again = services.book(clinic.nurse, patient.pk, slot.pk).appointment
        assert again.pk != first.pk
        slot.refresh_from_db()
        assert slot.booked == 1

    def test_the_database_never_lets_booked_exceed_capacity(self, clinic: Any) -> None:
        clinic.schedule(capacity=1)
        slot = clinic.slot(TUE, 9)
        am.Slot.objects.filter(pk=slot.pk).update(booked=1)
        with pytest.raises(IntegrityError), transaction.atomic():
            am.Slot.objects.filter(pk=slot.pk).update(booked=F("booked") + 1)

    def test_input_is_checked(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        patient = make_patient()
        slot = clinic.slot(TUE, 9)
        with pytest.raises(ValidationFailed) as err:
            services.book(clinic.nurse, patient.pk, slot.pk, kind="surgery", reason="x" * 501)
        assert set(err.value.details) == {"kind", "reason"}
        dead = make_patient(deceased_on="2026-01-02")
        with pytest.raises(ValidationFailed) as err:
            services.book(clinic.nurse, dead.pk, slot.pk)
        assert "patient" in err.value.details
        slot.refresh_from_db()
        assert slot.booked == 0

    def test_auditors_may_not_book(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        with pytest.raises(Forbidden):
            services.book(clinic.world.actor("auditor"), make_patient().pk, clinic.slot(TUE, 9).pk)


class TestCancel:
    def test_cancelling_gives_the_place_back_once(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule(capacity=1)
        slot = clinic.slot(TUE, 9)
        appt = services.book(clinic.nurse, make_patient().pk, slot.pk).appointment
        done = services.cancel(clinic.nurse, appt.pk, "患者出差", expected_version=1)
        assert (done.status, done.cancel_reason, done.version) == ("cancelled", "患者出差", 2)
        services.cancel(clinic.nurse, appt.pk)  # a second click changes nothing
        slot.refresh_from_db()
        assert slot.booked == 0
        services.book(clinic.nurse, make_patient().pk, slot.pk)

    def test_only_booked_appointments_are_cancelled(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 10).pk).appointment
        services.check_in(clinic.nurse, appt.pk)
        with pytest.raises(services.WrongState):
            services.cancel(clinic.nurse, appt.pk)

    def test_an_old_version_is_refused(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        services.reschedule(clinic.nurse, appt.pk, clinic.slot(TUE, 10).pk, 1)
        with pytest.raises(StaleVersion) as err:
            services.cancel(clinic.nurse, appt.pk, expected_version=1)
        assert err.value.details["current_version"] == 2
        assert A.objects.get(pk=appt.pk).status == "booked"


class TestReschedule:
    def test_the_place_moves_with_the_appointment(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        old, new = clinic.slot(TUE, 9), clinic.slot(WED, 14)
        appt = services.book(clinic.nurse, make_patient().pk, old.pk).appointment
        moved = services.reschedule(clinic.nurse, appt.pk, new.pk, appt.version)
        old.refresh_from_db()
        new.refresh_from_db()
        assert (old.booked, new.booked) == (0, 1)
        assert (moved.slot_id, moved.starts_at, moved.local_date, moved.version) == (
            new.pk,
            local(WED, 14),
            WED,
            2,
        )
        assert AuditEvent.objects.filter(action="appointment.reschedule").count() == 1

    def test_a_full_target_changes_nothing(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule(capacity=1)
        old, full = clinic.slot(TUE, 9), clinic.slot(TUE, 10)
        appt = services.book(clinic.nurse, make_patient().pk, old.pk).appointment
        services.book(clinic.nurse, make_patient().pk, full.pk)
        with pytest.raises(services.SlotFull):
            services.reschedule(clinic.nurse, appt.pk, full.pk, 1)
        old.refresh_from_db()
        full.refresh_from_db()
        assert (old.booked, full.booked) == (1, 1)
        assert A.objects.get(pk=appt.pk).slot_id == old.pk

    def test_a_stale_version_is_refused(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        services.reschedule(clinic.nurse, appt.pk, clinic.slot(TUE, 10).pk, 1)
        with pytest.raises(StaleVersion):
            services.reschedule(clinic.nurse, appt.pk, clinic.slot(TUE, 11).pk, 1)
        assert A.objects.get(pk=appt.pk).starts_at == local(TUE, 10)


class TestSchedules:
    def test_a_schedule_opens_its_weekday_slots_for_the_coming_weeks(self, clinic: Any) -> None:
        schedule = clinic.schedule()
        slots = am.Slot.objects.filter(schedule=schedule)
        # 08:00-12:00 and 13:30-16:30 in 30 minutes: 8 + 6 slots each weekday.
        assert slots.filter(local_date=TUE).count() == 14
        assert not slots.filter(local_date=MON + timedelta(days=5)).exists()  # Saturday
        assert slots.order_by("local_date").last().local_date == MON + timedelta(days=28)
        assert services.generate_slots(schedule, MON + timedelta(days=28)) == 0
        assert schedule.generated_until == MON + timedelta(days=28)

    def test_the_horizon_moves_forward_with_time(self, clinic: Any) -> None:
        schedule = clinic.schedule()
        before = am.Slot.objects.filter(schedule=schedule).count()
        clinic_clock = MON + timedelta(days=7)
        added = services.top_up_slots(local(clinic_clock, 8))
        assert added == 5 * 14
        assert am.Slot.objects.filter(schedule=schedule).count() == before + added

    def test_a_changed_pattern_removes_empty_slots_and_keeps_booked_ones(
        self, clinic: Any, make_patient: Any
    ) -> None:
        schedule = clinic.schedule()
        kept = clinic.slot(TUE, 14)
        appt = services.book(clinic.nurse, make_patient().pk, kept.pk).appointment
        services.save_schedule(
            clinic.head,
            {
                "name": schedule.name,
                "department": schedule.department_id,
                "doctor": schedule.doctor_id,
                "weekdays": ["1", "2", "3", "4", "5"],
                "sessions": "08:00-12:00",
                "slot_minutes": 30,
                "capacity": 3,
                "valid_from": "2026-03-01",
                "active": "on",
            },
            schedule_id=schedule.pk,
            expected_version=1,
        )
        afternoon = am.Slot.objects.filter(schedule=schedule, local_date=TUE)
        assert afternoon.filter(starts_at__gte=local(TUE, 13)).count() == 1
        kept.refresh_from_db()
        assert (kept.status, kept.booked) == ("closed", 1)
        assert A.objects.get(pk=appt.pk).status == "booked"
        assert clinic.slot(TUE, 9).capacity == 3
        event = AuditEvent.objects.filter(action="schedule.update").get()
        assert event.detail["slots_closed"] == 1 and event.detail["slots_removed"] > 0

    def test_schedules_are_for_heads_and_admins(self, clinic: Any) -> None:
        for username in ("nurse.cardiology", "doctor.cardiology", "auditor"):
            with pytest.raises(Forbidden):
                clinic.schedule(actor=clinic.world.actor(username))
        assert not am.ClinicSchedule.objects.exists()
        clinic.schedule(actor=clinic.world.actor("admin"))
        clinic.schedule(dept=clinic.world.endo, actor=clinic.world.actor("admin"))
        assert am.ClinicSchedule.objects.count() == 2

    def test_bad_input_is_refused_field_by_field(self, clinic: Any) -> None:
        with pytest.raises(ValidationFailed) as err:
            clinic.schedule(sessions="12:00-08:00", weekdays=[], valid_to="2026-02-01")
        assert set(err.value.details) >= {"sessions", "weekdays", "valid_to"}
        assert not am.ClinicSchedule.objects.exists()

    def test_a_head_cannot_schedule_another_department(self, clinic: Any) -> None:
        with pytest.raises(ValidationFailed) as err:
            services.save_schedule(
                clinic.head,
                {
                    "name": "x",
                    "department": clinic.world.endo.pk,
                    "weekdays": ["1"],
                    "sessions": "08:00-09:00",
                    "slot_minutes": 30,
                    "capacity": 1,
                    "valid_from": "2026-03-01",
                },
            )
        assert "department" in err.value.details

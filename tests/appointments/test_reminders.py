"""Appointment reminders: scheduled on booking, replaced on reschedule, withdrawn on cancel."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from careloop.appointments import services
from careloop.reminders import models as rm
from tests.appointments.conftest import MON, TUE, WED, local


def reminders(appt: Any, **filters: Any) -> list[rm.Occurrence]:
    return list(
        rm.Occurrence.objects.filter(ref=f"appointment:{appt.pk}", **filters).order_by("due_at")
    )


class TestOnBooking:
    def test_evening_before_and_two_hours_before_an_early_slot(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient()
        appt = services.book(clinic.nurse, patient.pk, clinic.slot(TUE, 9).pk).appointment
        rows = reminders(appt)
        assert [(r.due_at, r.local_due, r.status) for r in rows] == [
            (local(MON, 18), "2026-03-09T18:00", "scheduled"),
            (local(TUE, 7), "2026-03-10T07:00", "scheduled"),
        ]
        assert {r.kind for r in rows} == {"appointment"}
        assert {r.patient_id for r in rows} == {patient.pk}
        assert {r.time_zone for r in rows} == {"Asia/Shanghai"}
        assert [r.source_key for r in rows] == [
            f"appointment:{appt.pk}:v1:day_before",
            f"appointment:{appt.pk}:v1:morning",
        ]
        assert rows[0].payload["appointment_local"] == "2026-03-10 09:00"
        assert rows[0].wake_at == rows[0].due_at  # the dispatcher will pick it up

    def test_a_later_slot_is_reminded_at_half_past_seven(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(WED, 14).pk).appointment
        assert [r.due_at for r in reminders(appt)] == [local(TUE, 18), local(WED, 7, 30)]

    def test_times_are_the_patients_own(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        patient = make_patient(time_zone="Europe/London")
        appt = services.book(clinic.nurse, patient.pk, clinic.slot(WED, 14).pk).appointment
        # Wednesday 14:00 in Shanghai is 06:00 in London: the evening before is 18:00 London
        # time on Tuesday, and "two hours before" beats 07:30 on the day.
        london = ZoneInfo("Europe/London")
        rows = reminders(appt)
        assert [r.due_at.astimezone(london).strftime("%a %H:%M") for r in rows] == [
            "Tue 18:00",
            "Wed 04:00",
        ]
        assert {r.time_zone for r in rows} == {"Europe/London"}

    def test_a_same_day_booking_gets_only_what_is_still_ahead(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 10).pk).appointment
        assert reminders(appt) == []  # the clock reads Monday 08:00; 07:30 and Sunday are past
        later = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 15).pk)
        assert [r.due_at for r in reminders(later.appointment)] == []


class TestChanges:
    def test_a_reschedule_replaces_the_reminders(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        services.reschedule(clinic.nurse, appt.pk, clinic.slot(WED, 14).pk, 1)
        old = reminders(appt, source_key__contains=":v1:")
        new = reminders(appt, source_key__contains=":v2:")
        assert {(r.status, r.reason) for r in old} == {("cancelled", "rescheduled")}
        assert [(r.due_at, r.status) for r in new] == [
            (local(TUE, 18), "scheduled"),
            (local(WED, 7, 30), "scheduled"),
        ]
        assert new[0].payload["appointment_local"] == "2026-03-11 14:00"

    def test_a_cancel_withdraws_them(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        services.cancel(clinic.nurse, appt.pk, "不来了")
        assert {(r.status, r.reason) for r in reminders(appt)} == {
            ("cancelled", "appointment_cancelled")
        }

    def test_a_reminder_already_sent_is_left_as_it_is(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        evening = reminders(appt)[0]
        rm.Occurrence.objects.filter(pk=evening.pk).update(status="sent")
        services.cancel(clinic.nurse, appt.pk)
        assert [r.status for r in reminders(appt)] == ["sent", "cancelled"]

    def test_checking_in_withdraws_what_is_still_pending(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 11).pk).appointment
        frozen.set(local(TUE, 7))  # evening reminder went out; morning one (07:30) pending
        rm.Occurrence.objects.filter(source_key__endswith=":day_before").update(status="sent")
        services.check_in(clinic.nurse, appt.pk)
        assert [(r.status, r.reason) for r in reminders(appt)] == [
            ("sent", ""),
            ("cancelled", "checked_in"),
        ]

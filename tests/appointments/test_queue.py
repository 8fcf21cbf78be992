"""The day's queue: numbers at check-in, calling in, "your turn is near", no-shows."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.appointments import models as am
from careloop.appointments import selectors, services
from careloop.audit.models import AuditEvent
from careloop.reminders import models as rm
from tests.appointments.conftest import MON, TUE, local, race

A = am.Appointment


def booked_today(clinic: Any, make_patient: Any, count: int, dept: Any = None) -> list[Any]:
    """``count`` patients booked into Monday's clinic, two per slot from 09:00."""
    out = []
    for i in range(count):
        slot = clinic.slot(MON, 9 + i // 4, 30 * (i // 2 % 2), dept=dept)
        nurse = clinic.world.actor(f"nurse.{(dept or clinic.world.cardio).code}")
        patient = make_patient(nurse.user.username)
        out.append(services.book(nurse, patient.pk, slot.pk).appointment)
    return out


def queue_reminders(appt: Any) -> list[rm.Occurrence]:
    return list(rm.Occurrence.objects.filter(ref=f"queue:{appt.pk}"))


class TestCheckIn:
    def test_numbers_follow_arrival_per_department_and_day(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        clinic.schedule(dept=clinic.world.endo)
        a, b, c = booked_today(clinic, make_patient, 3)
        (e,) = booked_today(clinic, make_patient, 1, dept=clinic.world.endo)
        assert services.check_in(clinic.nurse, c.pk).queue_number == 1
        assert services.check_in(clinic.nurse, a.pk).queue_number == 2
        assert services.check_in(clinic.world.actor("nurse.endocrinology"), e.pk).queue_number == 1
        assert services.check_in(clinic.nurse, b.pk).queue_number == 3
        done = A.objects.get(pk=c.pk)
        assert (done.status, done.checked_in_at is not None) == ("checked_in", True)
        assert AuditEvent.objects.filter(action="appointment.check_in").count() == 4

    def test_checking_in_twice_keeps_the_number(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        (a,) = booked_today(clinic, make_patient, 1)
        first = services.check_in(clinic.nurse, a.pk)
        again = services.check_in(clinic.nurse, a.pk)
        assert first.queue_number == again.queue_number == 1
        assert am.QueueCounter.objects.get().last_number == 1

    def test_only_on_the_day(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        with pytest.raises(services.NotToday) as err:
            services.check_in(clinic.nurse, appt.pk)
        assert err.value.status == 409
        assert A.objects.get(pk=appt.pk).queue_number is None

    def test_a_new_day_starts_at_one(self, clinic: Any, frozen: Any, make_patient: Any) -> None:
        clinic.schedule()
        (a,) = booked_today(clinic, make_patient, 1)
        tuesday = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk)
        services.check_in(clinic.nurse, a.pk)
        frozen.set(local(TUE, 8))
        assert services.check_in(clinic.nurse, tuesday.appointment.pk).queue_number == 1


@pytest.mark.django_db(transaction=True)
class TestConcurrentCheckIns:
    def test_ten_patients_arriving_at_once_get_ten_different_numbers(
        self, racing_db: Any, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=4)
        appts = booked_today(clinic, make_patient, 10)
        results = race(lambda i: services.check_in(clinic.nurse, appts[i].pk), 10)
        assert all(isinstance(r, A) for r in results), results
        numbers = sorted(
            A.objects.filter(pk__in=[a.pk for a in appts]).values_list("queue_number", flat=True)
        )
        assert numbers == list(range(1, 11))


class TestCalling:
    def test_the_lowest_waiting_number_is_called_in(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        a, b, c = booked_today(clinic, make_patient, 3)
        for appt in (b, a, c):
            services.check_in(clinic.nurse, appt.pk)
        dept = clinic.world.cardio.pk
        assert services.call_next(clinic.nurse, dept).pk == b.pk
        assert services.call_next(clinic.nurse, dept).pk == a.pk
        q = selectors.queue(clinic.nurse, dept)
        assert [x.pk for x in q.serving] == [b.pk, a.pk]
        assert [x.pk for x in q.waiting] == [c.pk]
        services.complete(clinic.nurse, b.pk)
        assert services.call_next(clinic.nurse, dept).pk == c.pk
        assert services.call_next(clinic.nurse, dept) is None
        q = selectors.queue(clinic.nurse, dept)
        assert [x.pk for x in q.done] == [b.pk]
        assert A.objects.get(pk=b.pk).status == "completed"

    def test_nobody_checked_in_means_nobody_is_called(self, clinic: Any) -> None:
        clinic.schedule()
        assert services.call_next(clinic.nurse, clinic.world.cardio.pk) is None


class TestTurnIsNear:
    def test_the_three_at_the_front_are_told_once_calling_starts(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=4)
        appts = booked_today(clinic, make_patient, 6)
        for appt in appts:
            services.check_in(clinic.nurse, appt.pk)
        assert not rm.Occurrence.objects.filter(kind="queue").exists()  # nobody called yet

        services.call_next(clinic.nurse, clinic.world.cardio.pk)  # number 1 goes in
        told = {a.pk for a in appts if queue_reminders(a)}
        assert told == {appts[1].pk, appts[2].pk, appts[3].pk}
        near = queue_reminders(appts[1])[0]
        assert (near.kind, near.status, near.due_at) == ("queue", "scheduled", local(MON, 8))
        assert near.payload["queue_number"] == 2

        services.call_next(clinic.nurse, clinic.world.cardio.pk)  # number 2 goes in
        told = {a.pk for a in appts if queue_reminders(a)}
        assert told == {a.pk for a in appts[1:5]}
        assert all(len(queue_reminders(a)) <= 1 for a in appts)

    def test_n_is_configurable(self, clinic: Any, make_patient: Any, settings: Any) -> None:
        settings.QUEUE_NEAR_POSITIONS = 1
        clinic.schedule(capacity=4)
        appts = booked_today(clinic, make_patient, 4)
        for appt in appts:
            services.check_in(clinic.nurse, appt.pk)
        services.call_next(clinic.nurse, clinic.world.cardio.pk)
        assert [bool(queue_reminders(a)) for a in appts] == [False, True, False, False]

    def test_a_no_show_at_the_front_moves_the_queue(self, clinic: Any, make_patient: Any) -> None:
        settings_n = services.near_positions()
        clinic.schedule(capacity=4)
        appts = booked_today(clinic, make_patient, settings_n + 3)
        for appt in appts:
            services.check_in(clinic.nurse, appt.pk)
        services.call_next(clinic.nurse, clinic.world.cardio.pk)
        services.mark_no_show(clinic.nurse, appts[1].pk)
        assert queue_reminders(appts[settings_n + 1])
        assert [r.status for r in queue_reminders(appts[1])] == ["cancelled"]


class TestNoShows:
    def test_marking_by_hand(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        (a,) = booked_today(clinic, make_patient, 1)
        tuesday = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk)
        assert services.mark_no_show(clinic.nurse, a.pk).status == "no_show"
        with pytest.raises(services.WrongState):
            services.mark_no_show(clinic.nurse, tuesday.appointment.pk)  # not due yet

    def test_the_sweep_marks_what_was_still_booked_after_its_day(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        missed, came, cancelled = booked_today(clinic, make_patient, 3)
        tuesday = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk)
        services.check_in(clinic.nurse, came.pk)
        services.cancel(clinic.nurse, cancelled.pk)
        assert services.sweep_no_shows() == 0  # Monday is not over yet

        frozen.set(local(TUE, 0, 5))
        assert services.sweep_no_shows() == 1
        statuses = dict(A.objects.values_list("pk", "status"))
        assert statuses[missed.pk] == "no_show"
        assert statuses[came.pk] == "checked_in"
        assert statuses[cancelled.pk] == "cancelled"
        assert statuses[tuesday.appointment.pk] == "booked"
        event = AuditEvent.objects.get(action="appointment.no_show")
        assert (event.patient_id, event.actor) == (missed.patient_id, "system:no-show-sweep")
        assert services.sweep_no_shows() == 0

    def test_the_command_runs_both_jobs(self, clinic: Any, frozen: Any, make_patient: Any) -> None:
        from io import StringIO

        from django.core.management import call_command

        clinic.schedule()
        booked_today(clinic, make_patient, 1)
        frozen.set(local(TUE, 0, 5))
        out = StringIO()
        call_command("appointments", "all", stdout=out)
        assert "slots opened: 14" in out.getvalue()  # the next weekday came into the horizon
        assert "appointments marked missed: 1" in out.getvalue()

"""The overdue list (metrics.md, "Overdue and return to care")."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from careloop.appointments import selectors, services
from careloop.appointments.selectors import OverdueCriteria
from careloop.audit.models import AuditEvent
from careloop.kit.errors import ValidationFailed
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.appointments.conftest import MON, TUE, local


def overdue(actor: Any, **criteria: Any) -> list[Any]:
    return list(selectors.overdue(actor, OverdueCriteria(**criteria)).items)


def names(actor: Any, **criteria: Any) -> list[str]:
    return [r.patient.name for r in overdue(actor, **criteria)]


def plan_contact(patient: Any, kind: str, day: date, status: str = "sent") -> rm.Occurrence:
    """A plan reminder of ``kind`` that was due at 09:00 on ``day``."""
    occ = reminder_services.schedule_one(
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        kind=kind,
        source_key=f"test:{patient.pk}:{kind}:{day}",
        due_at=local(day, 9),
        time_zone="Asia/Shanghai",
        payload={"title": "复诊"},
    )
    rm.Occurrence.objects.filter(pk=occ.pk).update(status=status, wake_at=None)
    return occ


@pytest.fixture
def missed(clinic: Any, frozen: Any, make_patient: Any) -> Any:
    """A cardiology patient who did not come on Monday; the clock reads the next Monday."""
    clinic.schedule()
    patient = make_patient(name="刘未到")
    appt = services.book(clinic.nurse, patient.pk, clinic.slot(MON, 9).pk).appointment
    frozen.set(local(MON + timedelta(days=7), 9))
    services.sweep_no_shows()
    return appt


class TestWhoIsOverdue:
    def test_the_no_show_sweep_puts_a_missed_appointment_on_the_list(
        self, missed: Any, clinic: Any
    ) -> None:
        (row,) = overdue(clinic.nurse)
        assert (row.patient.pk, row.source, row.scheduled, row.days_overdue) == (
            missed.patient_id,
            "appointment",
            MON,
            7,
        )
        assert row.high_priority is False  # no readings yet to judge by
        assert AuditEvent.objects.filter(action="overdue.list", actor="nurse.cardiology").exists()

    def test_plan_revisits_and_calls_that_passed_unacknowledged(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        frozen.set(local(MON, 9))
        revisit = make_patient(name="王复诊")
        call = make_patient(name="李电话")
        fine = make_patient(name="赵已确认")
        pills = make_patient(name="钱服药")
        plan_contact(revisit, "revisit", MON - timedelta(days=3))
        plan_contact(call, "call", MON - timedelta(days=10), status="dead")
        plan_contact(fine, "revisit", MON - timedelta(days=3), status="acknowledged")
        plan_contact(pills, "medication", MON - timedelta(days=3))
        plan_contact(revisit, "call", MON)  # today is not overdue yet
        rows = {r.patient.name: r for r in overdue(clinic.nurse)}
        assert set(rows) == {"王复诊", "李电话"}
        assert (rows["王复诊"].source, rows["王复诊"].days_overdue) == ("revisit", 3)
        assert (rows["李电话"].source, rows["李电话"].days_overdue) == ("call", 10)
        assert names(clinic.nurse, source="call") == ["李电话"]

    def test_a_visit_after_the_date_ends_it(
        self, missed: Any, clinic: Any, make_patient: Any
    ) -> None:
        patient_services.add_record(
            clinic.nurse,
            missed.patient_id,
            "visits",
            {
                "kind": "outpatient",
                "department": clinic.world.cardio.pk,
                "admitted_on": (MON + timedelta(days=2)).isoformat(),
            },
        )
        assert overdue(clinic.nurse) == []

    def test_a_new_booking_ends_it(self, missed: Any, clinic: Any) -> None:
        services.book(clinic.nurse, missed.patient_id, clinic.slot(TUE + timedelta(days=7), 9).pk)
        assert overdue(clinic.nurse) == []

    def test_the_dead_and_the_long_gone_are_left_out(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        frozen.set(local(MON, 9))
        dead = make_patient(name="孙已故", deceased_on="2026-03-01")
        old = make_patient(name="周很久")
        plan_contact(dead, "revisit", MON - timedelta(days=20))
        plan_contact(old, "revisit", MON - timedelta(days=366))
        plan_contact(old, "call", MON - timedelta(days=365))
        (row,) = overdue(clinic.nurse)
        assert (row.patient.name, row.days_overdue) == ("周很久", 365)

    def test_one_row_per_patient_with_the_latest_follow_up(self, missed: Any, clinic: Any) -> None:
        plan_contact(missed.patient, "call", MON + timedelta(days=3))
        plan_contact(missed.patient, "revisit", MON - timedelta(days=30))
        (row,) = overdue(clinic.nurse)
        assert (row.source, row.days_overdue, row.missed) == ("call", 4, 3)


class TestCallResults:
    def test_remind_later_hides_the_patient_for_seven_days(
        self, missed: Any, clinic: Any, frozen: Any
    ) -> None:
        result = services.record_call_result(clinic.nurse, missed.patient_id, "remind_later")
        assert result.remind_on == MON + timedelta(days=14)
        assert overdue(clinic.nurse) == []
        frozen.set(local(MON + timedelta(days=14), 9))
        (row,) = overdue(clinic.nurse)
        assert row.last_result == result

    def test_agreed_to_visit_hides_for_thirty_days(self, missed: Any, clinic: Any) -> None:
        result = services.record_call_result(clinic.nurse, missed.patient_id, "agreed_to_visit")
        assert result.remind_on == MON + timedelta(days=37)
        assert overdue(clinic.nurse) == []

    def test_removed_with_a_reason_until_the_next_missed_follow_up(
        self, missed: Any, clinic: Any, frozen: Any
    ) -> None:
        with pytest.raises(ValidationFailed) as err:
            services.record_call_result(clinic.nurse, missed.patient_id, "removed")
        assert "remove_reason" in err.value.details
        services.record_call_result(
            clinic.nurse, missed.patient_id, "removed", remove_reason="moved"
        )
        assert overdue(clinic.nurse) == []
        plan_contact(missed.patient, "revisit", MON + timedelta(days=10))
        frozen.set(local(MON + timedelta(days=12), 9))
        (row,) = overdue(clinic.nurse)
        assert (row.source, row.days_overdue) == ("revisit", 2)

    def test_results_are_audited(self, missed: Any, clinic: Any) -> None:
        services.record_call_result(clinic.nurse, missed.patient_id, "remind_later", note="忙")
        event = AuditEvent.objects.get(action="overdue.call_result")
        assert (event.patient_id, event.detail["outcome"]) == (missed.patient_id, "remind_later")


class TestFiltersScopeAndPages:
    def test_other_departments_and_organisations_see_nothing(
        self, missed: Any, clinic: Any
    ) -> None:
        assert overdue(clinic.world.actor("nurse.endocrinology")) == []
        assert overdue(clinic.world.actor("admin.other")) == []
        assert len(overdue(clinic.world.actor("admin"))) == 1

    def test_filters(self, missed: Any, clinic: Any) -> None:
        assert names(clinic.nurse, q="刘") == ["刘未到"]
        assert names(clinic.nurse, q="王") == []
        assert names(clinic.nurse, min_days=8) == []
        assert names(clinic.nurse, min_days=7) == ["刘未到"]
        assert names(clinic.nurse, source="revisit") == []
        admin = clinic.world.actor("admin")
        assert names(admin, department=clinic.world.endo.pk) == []
        assert names(admin, department=clinic.world.cardio.pk) == ["刘未到"]

    def test_pages_longest_overdue_first(self, clinic: Any, frozen: Any, make_patient: Any) -> None:
        frozen.set(local(MON, 9))
        for days in range(1, 6):
            plan_contact(make_patient(name=f"患者{days}"), "revisit", MON - timedelta(days=days))
        page = selectors.overdue(clinic.nurse, OverdueCriteria(size=2, page=2))
        assert (page.total, page.pages, page.number) == (5, 3, 2)
        assert [r.days_overdue for r in page.items] == [3, 2]

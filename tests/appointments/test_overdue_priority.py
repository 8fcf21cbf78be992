"""High-priority overdue patients and "died" call results (metrics.md, "Overdue and return to
care")."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from careloop.appointments import domain, selectors, services
from careloop.appointments.selectors import OverdueCriteria
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.observations import services as observation_services
from careloop.patients import models as pm
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.appointments.conftest import MON, local


def overdue_rows(actor: Any) -> list[Any]:
    return list(selectors.overdue(actor, OverdueCriteria(size=100)).items)


def overdue_for(patient: Any, days: int) -> None:
    """A plan revisit ``days`` days before Monday that nobody came to."""
    day = MON - timedelta(days=days)
    occ = reminder_services.schedule_one(
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        kind="revisit",
        source_key=f"test:{patient.pk}:revisit:{day}",
        due_at=local(day, 9),
        time_zone="Asia/Shanghai",
        payload={"title": "复诊"},
    )
    rm.Occurrence.objects.filter(pk=occ.pk).update(status="sent", wake_at=None)


def reading(actor: Any, patient: Any, days_ago: int, **item: Any) -> None:
    """A reading taken at 07:00 ``days_ago`` days before Monday, entered by staff."""
    day = MON - timedelta(days=days_ago)
    at = local(day, 7).isoformat()
    observation_services.record_one(actor, patient.pk, {"effective": at, **item})


def bp(actor: Any, patient: Any, systolic: int, diastolic: int, days_ago: int = 3) -> None:
    reading(actor, patient, days_ago, code="bp", systolic=systolic, diastolic=diastolic)


def condition(actor: Any, patient: Any, code: str) -> None:
    patient_services.add_record(
        actor, patient.pk, "conditions", {"icd10_code": code, "status": "active"}
    )


class TestTheRule:
    """metrics.md: last BP ≥ 180/110, or prior heart attack / stroke and last BP ≥ 140/90, or
    last glucose in the highest band — unless overdue less than 30 days."""

    @pytest.mark.parametrize(
        ("bp", "prior", "expected"),
        [
            ((180, 80), False, True),
            ((150, 110), False, True),
            ((179, 109), False, False),
            ((140, 85), True, True),
            ((130, 90), True, True),
            ((139, 89), True, False),
            ((160, 95), False, False),
        ],
    )
    def test_blood_pressure(self, bp: tuple[int, int], prior: bool, expected: bool) -> None:
        assert domain.high_priority(days_overdue=30, bp=bp, prior_event=prior) is expected

    @pytest.mark.parametrize(
        ("sugar", "expected"),
        [
            (("fasting", 200.0), True),
            (("fasting", 199.0), False),
            (("random", 300.0), True),
            (("postprandial", 299.0), False),
            (("random", 250.0), False),
            (("hba1c", 9.0), True),
            (("hba1c", 8.9), False),
        ],
    )
    def test_the_highest_glucose_band(self, sugar: tuple[str, float], expected: bool) -> None:
        assert domain.high_priority(days_overdue=45, sugar=sugar) is expected

    def test_never_before_thirty_days_overdue(self) -> None:
        assert domain.high_priority(days_overdue=29, bp=(200, 120)) is False
        assert domain.high_priority(days_overdue=30, bp=(200, 120)) is True

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("I21.0", True),
            ("I22.9", True),
            ("I25.2", True),
            ("I252", True),
            ("I25.1", False),
            ("I60.9", True),
            ("I63.901", True),
            ("i64", True),
            ("I69.3", True),
            ("I65.2", False),
            ("I10", False),
        ],
    )
    def test_heart_attack_and_stroke_codes(self, code: str, expected: bool) -> None:
        assert domain.is_cardiovascular_event(code) is expected


class TestRanking:
    def test_high_priority_first_then_longest_overdue(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        nurse = clinic.nurse
        crisis = make_patient(name="甲危急")
        stroke = make_patient(name="乙卒中")
        plain = make_patient(name="丙普通")
        recent = make_patient(name="丁刚逾期")
        sugar = make_patient(name="戊高糖")
        overdue_for(crisis, 40)
        overdue_for(stroke, 35)
        overdue_for(plain, 90)
        overdue_for(recent, 20)
        overdue_for(sugar, 31)
        bp(nurse, crisis, 186, 112)
        condition(nurse, stroke, "I63.9")
        bp(nurse, stroke, 150, 92)
        bp(nurse, plain, 150, 92)  # the same pressure, no heart attack or stroke
        bp(nurse, recent, 190, 118)  # overdue less than 30 days
        reading(nurse, sugar, 2, code="glucose", value=320, unit="mg/dL", context="random")

        rows = overdue_rows(nurse)
        assert [(r.patient.name, r.high_priority) for r in rows] == [
            ("甲危急", True),
            ("乙卒中", True),
            ("戊高糖", True),
            ("丙普通", False),
            ("丁刚逾期", False),
        ]

    def test_the_last_reading_counts(self, clinic: Any, frozen: Any, make_patient: Any) -> None:
        nurse = clinic.nurse
        calmer = make_patient(name="己已控制")
        a1c = make_patient(name="庚糖化")
        overdue_for(calmer, 60)
        overdue_for(a1c, 60)
        bp(nurse, calmer, 190, 115, days_ago=10)
        bp(nurse, calmer, 132, 84, days_ago=2)
        # A fasting glucose in the top band, then a newer HbA1c below 9 %: the HbA1c is the
        # last blood-sugar measure.
        reading(nurse, a1c, 20, code="glucose", value=12.0, unit="mmol/L", context="fasting")
        reading(nurse, a1c, 5, code="hba1c", value=7.1, unit="%")
        assert [r.high_priority for r in overdue_rows(nurse)] == [False, False]

        reading(nurse, a1c, 1, code="hba1c", value=9.4, unit="%")
        (first, second) = overdue_rows(nurse)
        assert (first.patient.name, first.high_priority) == ("庚糖化", True)
        assert second.high_priority is False

    def test_ranking_spans_pages(self, clinic: Any, frozen: Any, make_patient: Any) -> None:
        nurse = clinic.nurse
        longest = [make_patient(name=f"久{i}") for i in range(3)]
        for i, p in enumerate(longest):
            overdue_for(p, 200 + i)
        urgent = make_patient(name="急")
        overdue_for(urgent, 31)
        bp(nurse, urgent, 200, 100)
        page = selectors.overdue(nurse, OverdueCriteria(size=2))
        assert page.total == 4
        assert [r.patient.name for r in page.items] == ["急", "久2"]


class TestDied:
    def test_died_marks_the_patient_dead_and_stops_reminders(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        nurse = clinic.nurse
        plan_services.load_templates()
        patient = make_patient(name="辛已故")
        overdue_for(patient, 40)
        template = cm.PlanTemplate.objects.get(code="hypertension", organisation__isnull=True)
        enrolment = plan_services.enrol(nurse, patient.pk, template.pk, now=frozen.now)
        pending = rm.Occurrence.objects.filter(enrolment=enrolment, status=rm.Status.SCHEDULED)
        assert pending.exists()

        services.record_call_result(nurse, patient.pk, "removed", remove_reason="died")

        patient.refresh_from_db()
        assert patient.deceased_on == date(2026, 3, 9)
        assert not pending.exists()
        assert rm.Occurrence.objects.filter(enrolment=enrolment, status="cancelled").exists()
        assert overdue_rows(nurse) == []
        update = AuditEvent.objects.get(action="patient.update", patient_id=patient.pk)
        assert update.actor == "nurse.cardiology"
        assert "deceased_on" in update.detail["fields"]

    def test_other_reasons_leave_the_patient_alive(
        self, clinic: Any, frozen: Any, make_patient: Any
    ) -> None:
        patient = make_patient(name="壬搬家")
        overdue_for(patient, 40)
        services.record_call_result(clinic.nurse, patient.pk, "removed", remove_reason="moved")
        assert pm.Patient.objects.get(pk=patient.pk).deceased_on is None
        assert overdue_rows(clinic.nurse) == []

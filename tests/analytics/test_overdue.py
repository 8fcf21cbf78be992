"""Overdue at the start of the month, % called, % returned to care (metrics.md), hand-computed
for August 2026 from the history."""

from __future__ import annotations

from datetime import date

import pytest

from careloop.analytics.registry import METRICS, all_metrics

from .conftest import Clinic, month

pytestmark = pytest.mark.django_db

AUG = month(2026, 8)


def test_overdue_called_and_returned_within_15_days(clinic: Clinic) -> None:
    reg = date(2026, 1, 5)
    p = {i: clinic.patient(reg, name=f"患者{i}") for i in range(1, 11)}
    # 1: missed 20 July; first call 3 August; a staff BP on 18 August (call + 15): returned.
    clinic.appointment(p[1], booked=date(2026, 6, 25), on=date(2026, 7, 20), status="no_show")
    clinic.call(p[1], date(2026, 8, 3), "remind_later", remind_on=date(2026, 8, 10))
    clinic.bp(p[1], date(2026, 8, 18), 130, 80)
    # 2: first call 5 August, second 20 August; refill on 21 August (16 days after the first).
    clinic.appointment(p[2], booked=date(2026, 6, 20), on=date(2026, 7, 10), status="no_show")
    clinic.call(p[2], date(2026, 8, 5), "remind_later", remind_on=date(2026, 8, 12))
    clinic.call(p[2], date(2026, 8, 20), "agreed_to_visit", remind_on=date(2026, 9, 19))
    clinic.dispense(p[2], date(2026, 8, 21))
    # 3: overdue, called only in September.
    clinic.appointment(p[3], booked=date(2026, 6, 20), on=date(2026, 7, 10), status="booked")
    clinic.call(p[3], date(2026, 9, 2), "agreed_to_visit", remind_on=date(2026, 10, 2))
    # 4: came (a staff BP) after the missed appointment: not overdue.
    clinic.appointment(p[4], booked=date(2026, 6, 20), on=date(2026, 7, 15), status="no_show")
    clinic.bp(p[4], date(2026, 7, 25), 130, 80)
    # 5: postponed by a July call to 19 August: not overdue on 1 August.
    clinic.appointment(p[5], booked=date(2026, 6, 20), on=date(2026, 7, 15), status="no_show")
    clinic.call(p[5], date(2026, 7, 20), "agreed_to_visit", remind_on=date(2026, 8, 19))
    # 6: dead.
    clinic.appointment(p[6], booked=date(2026, 6, 20), on=date(2026, 7, 15), status="no_show")
    from careloop.patients.models import Patient

    Patient.objects.filter(pk=p[6].pk).update(deceased_on=date(2026, 9, 1))
    # 7: scheduled more than 365 days before 1 August 2026.
    clinic.appointment(p[7], booked=date(2025, 7, 1), on=date(2025, 7, 31), status="no_show")
    # 8: removed from the list (moved away) after the missed appointment.
    clinic.appointment(p[8], booked=date(2026, 6, 20), on=date(2026, 7, 15), status="no_show")
    clinic.call(p[8], date(2026, 7, 25), "removed", reason="moved")
    # 9: the follow-up is in August, so not overdue at its start.
    clinic.appointment(p[9], booked=date(2026, 6, 20), on=date(2026, 8, 5), status="no_show")
    # 10: overdue; a worklist call without answer on 10 August; no visit since.
    clinic.appointment(p[10], booked=date(2026, 6, 1), on=date(2026, 7, 1), status="no_show")
    clinic.task(p[10], date(2026, 8, 10), outcome="no_answer")

    all_metrics()
    metric = METRICS["overdue_return"]
    cohort = clinic.cohort()
    got = metric.compute(cohort, [AUG])[AUG]
    assert (got["overdue"].numerator, got["overdue"].denominator) == (4, None)
    assert (got["called"].numerator, got["called"].denominator) == (3, 4)
    assert (got["returned"].numerator, got["returned"].denominator) == (1, 3)
    assert metric.patients
    assert metric.patients(cohort, AUG, "overdue") == sorted(p[i].pk for i in (1, 2, 3, 10))
    assert metric.patients(cohort, AUG, "called") == sorted(p[i].pk for i in (1, 2, 10))
    assert metric.patients(cohort, AUG, "returned") == [p[1].pk]


def test_a_visit_16_days_after_the_call_is_not_a_return_but_15_is(clinic: Clinic) -> None:
    late = clinic.patient(date(2026, 1, 5))
    clinic.appointment(late, booked=date(2026, 6, 1), on=date(2026, 7, 1), status="no_show")
    clinic.call(late, date(2026, 8, 1), "remind_later", remind_on=date(2026, 8, 8))
    clinic.bp(late, date(2026, 8, 17), 120, 70)  # 16 days after the call
    on_time = clinic.patient(date(2026, 1, 5))
    clinic.appointment(on_time, booked=date(2026, 6, 1), on=date(2026, 7, 1), status="no_show")
    clinic.call(on_time, date(2026, 8, 1), "remind_later", remind_on=date(2026, 8, 8))
    clinic.prescription(on_time, date(2026, 8, 16))  # 15 days after the call
    all_metrics()
    metric = METRICS["overdue_return"]
    got = metric.compute(clinic.cohort(), [AUG, month(2026, 7)])
    assert (got[AUG]["returned"].numerator, got[AUG]["returned"].denominator) == (1, 2)
    assert metric.patients(clinic.cohort(), AUG, "returned") == [on_time.pk]
    # At the start of July the appointments (1 July) were not yet due.
    assert got[month(2026, 7)]["overdue"].numerator == 0
    assert got[month(2026, 7)]["called"].value is None


def test_department_cohort_counts_only_its_patients(clinic: Clinic) -> None:
    w = clinic.world
    endo = clinic.patient(date(2026, 1, 5), department=w.endo)
    clinic.appointment(endo, booked=date(2026, 6, 1), on=date(2026, 7, 1), status="no_show")
    cardio = clinic.patient(date(2026, 1, 5))
    clinic.appointment(cardio, booked=date(2026, 6, 1), on=date(2026, 7, 1), status="no_show")
    all_metrics()
    metric = METRICS["overdue_return"]
    cohort = clinic.cohort(department_ids=(w.endo.pk,))
    assert metric.compute(cohort, [AUG])[AUG]["overdue"].numerator == 1
    assert metric.patients(cohort, AUG, "overdue") == [endo.pk]

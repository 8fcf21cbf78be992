"""Outcome metrics on hand-built visits with hand-computed figures: 30-day readmission and
revisits after discharge (with emergency returns within 7 days)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from careloop.analytics.registry import METRICS, all_metrics
from careloop.appointments import models as apm
from careloop.patients import models as pm
from tests.analytics.helpers_ops import at, cohort, make_patients

pytestmark = pytest.mark.django_db

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)
TODAY = date(2026, 3, 15)


@pytest.fixture(autouse=True)
def _registered() -> None:
    all_metrics()


def visit(
    world: Any,
    patient: Any,
    kind: str,
    admitted: date,
    discharged: date | None = None,
    dept: Any = None,
    **fields: Any,
) -> pm.Encounter:
    return pm.Encounter.objects.create(
        organisation=world.org,
        patient=patient,
        kind=kind,
        department=dept or world.cardio,
        admitted_on=admitted,
        discharged_on=discharged,
        **fields,
    )


def stay(world: Any, patient: Any, admitted: date, discharged: date, **kw: Any) -> pm.Encounter:
    return visit(world, patient, "inpatient", admitted, discharged, **kw)


def d(month: int, day: int) -> date:
    return date(2026, month, day)


def test_readmission_within_30_days(world: Any) -> None:
    p = make_patients(world, 6)
    dead = make_patients(world, 1, deceased_on=d(3, 1))[0]
    # p0: discharged 5 Feb, back 20 Feb (15 days); the second stay is itself a discharge.
    stay(world, p[0], d(1, 20), d(2, 5))
    stay(world, p[0], d(2, 20), d(2, 25))
    # p1: back after 31 days: not a 30-day readmission.
    stay(world, p[1], d(2, 1), d(2, 10))
    stay(world, p[1], d(3, 13), d(3, 14))
    # p2: admitted again on the discharge day (a transfer), to endocrinology.
    stay(world, p[2], d(2, 1), d(2, 10))
    stay(world, p[2], d(2, 10), d(2, 15), dept=world.endo)
    # p3: back on day 30 exactly: readmitted.
    stay(world, p[3], d(2, 1), d(2, 12))
    stay(world, p[3], d(3, 14), d(3, 15))
    # p4: the readmission was recorded in error and deleted.
    stay(world, p[4], d(2, 1), d(2, 12))
    stay(world, p[4], d(2, 20), d(2, 22), deleted_at=at(2026, 2, 23))
    # p5: discharged 31 January, back 1 February: January's figure.
    stay(world, p[5], d(1, 25), d(1, 31))
    stay(world, p[5], d(2, 1), d(3, 20))  # not yet discharged by the as-of day of February
    # A dead patient leaves every month.
    stay(world, dead, d(2, 1), d(2, 3))
    stay(world, dead, d(2, 8), d(2, 9))

    metric = METRICS["readmission_30d"]
    result = metric.compute(cohort(world, TODAY), [JAN, FEB])
    # February discharges: p0 ×2, p1, p2 ×2, p3, p4 = 7; readmitted: p0 (5 Feb), p3.
    assert (result[FEB]["readmitted"].numerator, result[FEB]["readmitted"].denominator) == (2, 7)
    assert (result[JAN]["readmitted"].numerator, result[JAN]["readmitted"].denominator) == (1, 1)
    cardio = cohort(world, TODAY, department_ids=(world.cardio.pk,))
    feb = metric.compute(cardio, [FEB])[FEB]
    assert (feb["readmitted"].numerator, feb["readmitted"].denominator) == (2, 6)
    assert metric.patients is not None
    assert metric.patients(cardio, FEB, "readmitted") == [p[0].pk, p[3].pk]
    rows = {
        k: parts["readmitted"]
        for k, _l, parts in metric.breakdowns["department"](cohort(world, TODAY), FEB)
    }
    assert (rows[str(world.endo.pk)].numerator, rows[str(world.endo.pk)].denominator) == (0, 1)


def appointment(world: Any, patient: Any, day: date, status: str) -> None:
    start = at(day.year, day.month, day.day, 9)
    slot = apm.Slot.objects.create(
        organisation=world.org,
        department=world.cardio,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        local_date=day,
        capacity=5,
    )
    apm.Appointment.objects.create(
        organisation=world.org,
        patient=patient,
        slot=slot,
        department=world.cardio,
        status=status,
        starts_at=start,
        local_date=day,
    )


def test_revisit_after_discharge_and_emergency_returns(world: Any) -> None:
    q = make_patients(world, 5)
    for patient in q:
        stay(world, patient, d(1, 25), d(2, 2))
    visit(world, q[0], "outpatient", d(2, 20))  # 18 days after: revisited
    appointment(world, q[1], d(3, 1), "completed")  # 27 days after, attended: revisited
    visit(world, q[2], "follow_up", d(3, 5))  # 31 days after: too late
    visit(world, q[2], "emergency", d(2, 6))  # 4 days after: an emergency return
    appointment(world, q[3], d(2, 10), "no_show")  # did not come: no revisit
    visit(world, q[3], "emergency", d(2, 10))  # 8 days after: outside the 7 days
    stay(world, q[4], d(2, 15), d(2, 20))  # discharged twice in February, counted once
    visit(world, q[4], "outpatient", d(2, 25))

    metric = METRICS["revisit_rate"]
    feb = metric.compute(cohort(world, TODAY), [FEB])[FEB]
    assert (feb["revisited"].numerator, feb["revisited"].denominator) == (3, 5)
    assert (feb["emergency_7d"].numerator, feb["emergency_7d"].denominator) == (1, 5)
    assert feb["not_revisited"].numerator == 2
    assert metric.patients is not None
    c = cohort(world, TODAY)
    assert metric.patients(c, FEB, "revisited") == [q[0].pk, q[1].pk, q[4].pk]
    assert metric.patients(c, FEB, "not_revisited") == [q[2].pk, q[3].pk]
    assert metric.patients(c, FEB, "emergency_7d") == [q[2].pk]


def test_outcome_metrics_are_empty_without_discharges(world: Any) -> None:
    result = METRICS["revisit_rate"].compute(cohort(world, TODAY), [JAN])
    assert result[JAN]["revisited"].value is None
    assert (
        METRICS["readmission_30d"]
        .compute(cohort(world, TODAY), [JAN])[JAN]["readmitted"]
        .denominator
        == 0
    )

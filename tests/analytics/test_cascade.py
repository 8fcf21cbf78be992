"""The hypertension and diabetes control cascades, on hand-computed cases (metrics.md)."""

from __future__ import annotations

from datetime import date

import pytest

from careloop.analytics.registry import METRICS, all_metrics

from .conftest import Clinic, month

pytestmark = pytest.mark.django_db

SEP = month(2026, 9)  # the current month (TODAY is 2026-09-15)
AUG = month(2026, 8)


def figures(clinic: Clinic, key: str, m: date = SEP, **cohort: object) -> dict[str, tuple]:
    all_metrics()
    got = METRICS[key].compute(clinic.cohort(**cohort), [m])[m]
    return {part: (v.numerator, v.denominator) for part, v in got.items()}


def test_registered_two_months_ago_is_newly_registered_not_in_the_denominator(
    clinic: Clinic,
) -> None:
    old = clinic.patient(date(2026, 1, 10))
    clinic.bp(old, date(2026, 8, 3), 130, 80)
    new = clinic.patient(date(2026, 7, 10))
    clinic.bp(new, date(2026, 9, 1), 130, 80)
    clinic.refresh()
    f = figures(clinic, "htn_cascade")
    assert f["registered"] == (2, None)
    assert f["under_care"] == (2, 2)
    assert f["newly_registered"] == (1, None)
    assert f["denominator"] == (1, None)
    assert f["controlled"] == (1, 1)
    assert METRICS["htn_cascade"].patients(clinic.cohort(), SEP, "controlled") == [old.pk]
    assert METRICS["htn_cascade"].patients(clinic.cohort(), SEP, "newly_registered") == [new.pk]


def test_several_readings_on_the_latest_day_lowest_systolic_and_lowest_diastolic(
    clinic: Clinic,
) -> None:
    p = clinic.patient(date(2026, 1, 10))
    clinic.bp(p, date(2026, 7, 1), 170, 100)  # an earlier day: not the latest
    clinic.bp(p, date(2026, 8, 20), 150, 85, hour=8)
    clinic.bp(p, date(2026, 8, 20), 138, 92, hour=17)
    clinic.refresh()
    f = figures(clinic, "htn_cascade")
    assert f["controlled"] == (1, 1)  # 138/85
    assert f["uncontrolled"] == (0, 1)


def test_uncontrolled_when_either_lowest_value_is_at_or_above_the_target(clinic: Clinic) -> None:
    a = clinic.patient(date(2026, 1, 10))
    clinic.bp(a, date(2026, 8, 20), 140, 70)  # 140 is not below 140
    b = clinic.patient(date(2026, 1, 10))
    clinic.bp(b, date(2026, 8, 20), 120, 90)
    clinic.refresh()
    f = figures(clinic, "htn_cascade")
    assert f["uncontrolled"] == (2, 2)
    assert METRICS["htn_cascade"].patients(clinic.cohort(), SEP, "uncontrolled") == sorted(
        [a.pk, b.pk]
    )


def test_dead_patient_disappears_from_past_months_too(clinic: Clinic) -> None:
    alive = clinic.patient(date(2026, 1, 10))
    clinic.bp(alive, date(2026, 6, 20), 130, 80)
    dead = clinic.patient(date(2026, 1, 10), deceased_on=date(2026, 9, 1))
    clinic.bp(dead, date(2026, 6, 20), 150, 95)
    clinic.refresh()
    july = month(2026, 7)
    f = figures(clinic, "htn_cascade", july)
    assert f["registered"] == (1, None)
    assert f["denominator"] == (1, None)
    assert f["controlled"] == (1, 1)
    assert f["uncontrolled"] == (0, 1)
    assert dead.pk not in METRICS["htn_cascade"].patients(clinic.cohort(), july, "registered")


def test_lost_to_follow_up_and_the_variant_that_keeps_them(clinic: Clinic) -> None:
    ltfu = clinic.patient(date(2025, 1, 10))
    # The past 12 months of September 2026 are October 2025 to September 2026.
    clinic.bp(ltfu, date(2025, 9, 30), 150, 95)
    recent = clinic.patient(date(2025, 1, 10))
    clinic.bp(recent, date(2025, 10, 1), 150, 95)
    clinic.refresh()
    f = figures(clinic, "htn_cascade")
    assert f["ltfu"] == (1, 2)
    assert f["under_care"] == (1, 2)
    assert f["denominator"] == (1, None)
    assert f["missed_visit"] == (1, 1)
    with_ltfu = figures(clinic, "htn_cascade_ltfu")
    assert with_ltfu["denominator"] == (2, None)
    assert with_ltfu["missed_visit"] == (2, 2)
    assert METRICS["htn_cascade"].patients(clinic.cohort(), SEP, "ltfu") == [ltfu.pk]
    # For August 2026 the visit of 2025-09-30 is within the past 12 months: both under care.
    assert figures(clinic, "htn_cascade", AUG)["ltfu"] == (0, 2)


def test_missed_visit_versus_visit_without_bp(clinic: Clinic) -> None:
    missed = clinic.patient(date(2026, 1, 10))
    clinic.dispense(missed, date(2026, 6, 30))  # July–September: no visit
    no_bp = clinic.patient(date(2026, 1, 10))
    clinic.dispense(no_bp, date(2026, 7, 1))
    old_bp = clinic.patient(date(2026, 1, 10))
    clinic.bp(old_bp, date(2026, 6, 30), 120, 70)  # outside the last 3 months
    clinic.appointment(old_bp, booked=date(2026, 9, 2), on=date(2026, 9, 30))
    self_reported = clinic.patient(date(2026, 1, 10))
    clinic.bp(self_reported, date(2026, 9, 5), 120, 70, source="patient")
    contact = clinic.patient(date(2026, 1, 10))
    clinic.task(contact, date(2026, 8, 5), outcome="reached")
    no_answer = clinic.patient(date(2026, 1, 10))
    clinic.task(no_answer, date(2026, 8, 5), outcome="no_answer")
    clinic.refresh()
    cascade = METRICS["htn_cascade"]
    assert cascade.patients(clinic.cohort(), SEP, "missed_visit") == sorted(
        [missed.pk, self_reported.pk, no_answer.pk]
    )
    assert cascade.patients(clinic.cohort(), SEP, "visit_no_bp") == sorted(
        [no_bp.pk, old_bp.pk, contact.pk]
    )
    f = figures(clinic, "htn_cascade")
    assert f["missed_visit"] == (3, 6)
    assert f["visit_no_bp"] == (3, 6)


def test_stricter_variant_below_130_80(clinic: Clinic) -> None:
    a = clinic.patient(date(2026, 1, 10))
    clinic.bp(a, date(2026, 8, 20), 135, 85)
    b = clinic.patient(date(2026, 1, 10))
    clinic.bp(b, date(2026, 8, 20), 125, 75)
    clinic.refresh()
    assert figures(clinic, "htn_cascade")["controlled"] == (2, 2)
    strict = figures(clinic, "htn_cascade_130")
    assert strict["controlled"] == (1, 2)
    assert strict["uncontrolled"] == (1, 2)
    assert METRICS["htn_cascade_130"].patients(clinic.cohort(), SEP, "uncontrolled") == [a.pk]


def test_only_patients_with_the_condition_and_breakdown_by_department(clinic: Clinic) -> None:
    w = clinic.world
    htn = clinic.patient(date(2026, 1, 10), department=w.endo)
    clinic.bp(htn, date(2026, 8, 20), 120, 70)
    clinic.patient(date(2026, 1, 10), conditions=("E11",))
    resolved = clinic.patient(date(2026, 1, 10), conditions=())
    from careloop.patients.models import Condition

    Condition.objects.create(
        organisation_id=clinic.org_id, patient=resolved, icd10_code="I10", status="resolved"
    )
    clinic.refresh()
    assert figures(clinic, "htn_cascade")["registered"] == (1, None)
    rows = METRICS["htn_cascade"].breakdowns["department"](clinic.cohort(), SEP)
    assert [(key, values["controlled"].numerator) for key, _label, values in rows] == [
        (str(w.endo.pk), 1)
    ]
    cardio_only = figures(clinic, "htn_cascade", department_ids=(w.cardio.pk,))
    assert cardio_only["registered"] == (0, None)


def test_diabetes_bands_from_mmol_per_litre_and_percent(clinic: Clinic) -> None:
    def dm(**kw: object):  # noqa: ANN202
        return clinic.patient(date(2026, 1, 10), conditions=("E11",), **kw)

    fasting_ok = dm()
    clinic.glucose(fasting_ok, date(2026, 8, 1), 6.9, "fasting")  # 124.2 mg/dL
    fasting_mid = dm()
    clinic.glucose(fasting_mid, date(2026, 8, 1), 7.5, "fasting")  # 135 mg/dL
    fasting_high = dm()
    clinic.glucose(fasting_high, date(2026, 8, 1), 11.2, "fasting")  # 201.6 mg/dL
    random_mid = dm()
    clinic.glucose(random_mid, date(2026, 8, 1), 12.0, "random")  # 216 mg/dL
    random_high = dm()
    clinic.glucose(random_high, date(2026, 8, 1), 17.0, "postprandial")  # 306 mg/dL
    a1c_ok = dm()
    clinic.hba1c(a1c_ok, date(2026, 7, 1), 9.5)
    clinic.hba1c(a1c_ok, date(2026, 8, 1), 6.9)  # the latest counts
    a1c_high = dm()
    clinic.hba1c(a1c_high, date(2026, 8, 1), 9.0)
    no_glucose = dm()
    clinic.bp(no_glucose, date(2026, 8, 1), 120, 70)
    clinic.refresh()
    f = figures(clinic, "dm_cascade")
    assert f["denominator"] == (8, None)
    assert f["controlled"] == (2, 8)
    assert f["uncontrolled"] == (5, 8)
    assert f["uncontrolled_moderate"] == (2, 8)
    assert f["uncontrolled_severe"] == (3, 8)
    assert f["visit_no_glucose"] == (1, 8)
    drill = METRICS["dm_cascade"].patients
    assert drill(clinic.cohort(), SEP, "controlled") == sorted([fasting_ok.pk, a1c_ok.pk])
    assert drill(clinic.cohort(), SEP, "uncontrolled_severe") == sorted(
        [fasting_high.pk, random_high.pk, a1c_high.pk]
    )
    assert drill(clinic.cohort(), SEP, "uncontrolled_moderate") == sorted(
        [fasting_mid.pk, random_mid.pk]
    )


def test_every_part_has_a_value_in_months_without_rows(clinic: Clinic) -> None:
    clinic.refresh()
    f = figures(clinic, "dm_cascade_ltfu")
    assert f["denominator"] == (0, None)
    all_metrics()
    assert (
        METRICS["dm_cascade_ltfu"].compute(clinic.cohort(), [SEP])[SEP]["controlled"].value is None
    )

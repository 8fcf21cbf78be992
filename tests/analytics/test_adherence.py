"""Dose adherence (patient-confirmed) and its divergence from PDC (metrics.md, "Medication
adherence"), on hand-computed cases. The reference month is August 2026, TODAY 2026-09-15."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.analytics.registry import all_metrics
from careloop.patients import models as pm
from careloop.reminders import models as rm

ZONE = ZoneInfo("Asia/Shanghai")
AUGUST = date(2026, 8, 1)


def dose(
    clinic: Any, p: Any, day: date, answer: str = "", *, hour: int = 8, minute: int = 0,
    status: str = "", kind: str = "medication",
) -> rm.Occurrence:  # fmt: skip
    """A dose reminder due on `day` (local), answered "taken", "late", "skipped" or not."""
    due = datetime.combine(day, time(hour, minute), ZONE).astimezone(UTC)
    occ = rm.Occurrence.objects.create(
        organisation_id=clinic.org_id,
        patient=p,
        kind=kind,
        source_key=f"test:{p.pk}:{due.isoformat()}:{kind}:{rm.Occurrence.objects.count()}",
        local_due=f"{day.isoformat()}T{hour:02d}:{minute:02d}",
        time_zone="Asia/Shanghai",
        due_at=due,
        status=status or ("acknowledged" if answer else "delivered"),
    )
    if answer:
        rm.IntakeEvent.objects.create(
            organisation_id=clinic.org_id,
            patient=p,
            occurrence=occ,
            status=answer,
            reason="forgot" if answer == "skipped" else "",
            scheduled_at=due,
            recorded_at=due + timedelta(hours=3 if answer == "late" else 0, minutes=5),
            source="portal",
        )
    return occ


def doses(clinic: Any, p: Any, answers: list[str], start: date = AUGUST) -> None:
    for i, answer in enumerate(answers):
        dose(clinic, p, start + timedelta(days=i), answer)


def fill(clinic: Any, p: Any, day: date, supply: int) -> None:
    pm.Dispense.objects.create(
        organisation_id=clinic.org_id,
        patient=p,
        name="阿托伐他汀钙片",
        code="C10AA05",
        days_supply=supply,
        when_handed_over=day,
    )


@pytest.fixture
def people(clinic: Any) -> dict[str, Any]:
    reg = date(2024, 1, 1)
    p = {name: clinic.patient(reg) for name in ("p1", "p2", "p3", "p5", "p6")}
    p["dead"] = clinic.patient(reg, deceased_on=date(2026, 9, 10))
    # p1: 10 doses in August: 8 taken, 1 taken late, 1 skipped → 9/10 = 90 %, adherent.
    doses(clinic, p["p1"], ["taken"] * 8 + ["late", "skipped"])
    # … and one due at 00:30 on Sep 1 in Shanghai (Aug 31, 16:30 UTC): September's, unanswered.
    dose(clinic, p["p1"], date(2026, 9, 1), hour=0, minute=30)
    # p2: 10 doses: 7 taken, 1 skipped, 2 never answered → 7/10 = 70 %, not adherent.
    doses(clinic, p["p2"], ["taken"] * 7 + ["skipped", "", ""])
    # … a withdrawn reminder and a reminder that is not a dose do not count.
    dose(clinic, p["p2"], date(2026, 8, 20), status="cancelled")
    dose(clinic, p["p2"], date(2026, 8, 21), kind="measurement")
    # p3: 5 doses, 4 taken → exactly 80 %: adherent.
    doses(clinic, p["p3"], ["taken"] * 4 + [""])
    # p5: 3 doses in July, all taken: not in August's figure.
    doses(clinic, p["p5"], ["taken"] * 3, start=date(2026, 7, 1))
    # The dead patient confirmed everything: left out.
    doses(clinic, p["dead"], ["taken"] * 5)
    # PDC over Sep 1, 2025 – Aug 31, 2026 (statin). p1: Jun 1 (30 d) and Aug 15 (30 d): 30 + 17
    # of the 92 days from Jun 1 → 0.5109, not adherent. p2, p3, p6, dead: Jun 1 (60 d) and
    # Jul 31 (60 d): all 92 days → 1.0, adherent.
    fill(clinic, p["p1"], date(2026, 6, 1), 30)
    fill(clinic, p["p1"], date(2026, 8, 15), 30)
    for name in ("p2", "p3", "p6", "dead"):
        fill(clinic, p[name], date(2026, 6, 1), 60)
        fill(clinic, p[name], date(2026, 7, 31), 60)
    return p


@pytest.mark.django_db
def test_dose_adherence_counts_confirmed_doses_of_the_month(
    clinic: Any, people: dict[str, Any]
) -> None:
    metric = all_metrics()["dose_adherence"]
    cohort = clinic.cohort()
    v = metric.compute(cohort, [AUGUST])[AUGUST]
    # Scheduled 10 + 10 + 5 = 25; confirmed 9 + 7 + 4 = 20 (80 %); adherent p1 and p3 of 3.
    assert v["scheduled"].numerator == 25
    assert (v["confirmed"].numerator, v["confirmed"].denominator) == (20, 25)
    assert v["patients"].numerator == 3
    assert (v["adherent"].numerator, v["adherent"].denominator) == (2, 3)
    assert (v["non_adherent"].numerator, v["non_adherent"].denominator) == (1, 3)
    assert metric.patients is not None
    ids = {name: p.pk for name, p in people.items()}
    assert metric.patients(cohort, AUGUST, "adherent") == sorted([ids["p1"], ids["p3"]])
    assert metric.patients(cohort, AUGUST, "non_adherent") == [ids["p2"]]
    assert metric.patients(cohort, AUGUST, "scheduled") == sorted([ids["p1"], ids["p2"], ids["p3"]])
    # July: only p5's three doses, all taken.
    july = date(2026, 7, 1)
    in_july = metric.compute(cohort, [july])[july]
    assert (in_july["confirmed"].numerator, in_july["adherent"].numerator) == (3, 1)
    # September so far (as of TODAY, Sep 15): p1's unanswered 00:30 dose.
    september = date(2026, 9, 1)
    sept = metric.compute(cohort, [september])[september]
    assert (sept["scheduled"].numerator, sept["non_adherent"].numerator) == (1, 1)
    # By department: everyone is in cardiology.
    rows = metric.breakdowns["department"](cohort, AUGUST)
    by_dept = {key: v["adherent"].numerator for key, _label, v in rows}
    assert by_dept == {str(clinic.world.cardio.pk): 2, str(clinic.world.endo.pk): 0}


@pytest.mark.django_db
def test_divergence_flags_pdc_and_confirmation_that_disagree(
    clinic: Any, people: dict[str, Any]
) -> None:
    metric = all_metrics()["adherence_divergence"]
    cohort = clinic.cohort()
    v = metric.compute(cohort, [AUGUST])[AUGUST]
    ids = {name: p.pk for name, p in people.items()}
    # Both measures over Sep 1, 2025 – Aug 31, 2026: p1, p2, p3 (p5 has no fills, p6 no doses,
    # the dead patient is out).
    assert v["compared"].numerator == 3
    # p2: PDC 1.0 (adherent) but 70 % confirmed. p1: PDC 0.5109 but 90 % confirmed.
    assert (v["high_pdc_low_confirmation"].numerator, v["high_pdc_low_confirmation"].value) == (
        1,
        pytest.approx(1 / 3),
    )
    assert v["low_pdc_high_confirmation"].numerator == 1
    assert metric.patients is not None
    assert metric.patients(cohort, AUGUST, "high_pdc_low_confirmation") == [ids["p2"]]
    assert metric.patients(cohort, AUGUST, "low_pdc_high_confirmation") == [ids["p1"]]
    assert metric.patients(cohort, AUGUST, "compared") == sorted([ids["p1"], ids["p2"], ids["p3"]])
    # The PDC side agrees: p2, p3, p6 adherent of 4 eligible; p1 not.
    pdc_values = all_metrics()["pdc"].compute(cohort, [AUGUST])[AUGUST]
    assert (pdc_values["adherent"].numerator, pdc_values["eligible"].numerator) == (3, 4)


@pytest.mark.django_db
def test_an_empty_cohort_has_no_figures(clinic: Any) -> None:
    cohort = clinic.cohort()
    for key in ("pdc", "dose_adherence", "adherence_divergence"):
        values = all_metrics()[key].compute(cohort, [AUGUST])[AUGUST]
        metric = all_metrics()[key]
        assert values[metric.headline].value is None  # 0 ÷ 0: no figure, not 0 %
        assert str(metric.definition) and str(metric.title)

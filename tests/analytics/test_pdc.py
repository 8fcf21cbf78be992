"""PDC (metrics.md, "Medication adherence"), on PQA-style examples computed by hand.

The measurement period of most examples is 2025-01-01 … 2025-03-31: 90 days.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import translation

from careloop.analytics import pdc
from careloop.analytics.registry import METRICS, all_metrics
from careloop.patients import models as pm

FIRST, LAST = date(2025, 1, 1), date(2025, 3, 31)
LISINOPRIL = ("", "C09AA03", "赖诺普利片")
LOSARTAN = ("", "C09CA01", "氯沙坦钾片")


def d(month: int, day: int, year: int = 2025) -> date:
    return date(year, month, day)


def run(rows: list[tuple[Any, ...]], first: date = FIRST, last: date = LAST) -> list[dict]:
    """rows: (patient, date, days supply, (drug class, code, name))."""
    fills = pdc.fills_from_rows([(p, day, s, *drug) for p, day, s, drug in rows])
    return pdc.compute(fills, first, last).rows()


def one(rows: list[tuple[Any, ...]], **kw: Any) -> dict:
    found = run(rows, **kw)
    assert len(found) == 1, found
    return found[0]


def test_same_drug_early_refill_is_shifted_forward() -> None:
    # Jan 1 (30 d) covers Jan 1–30. Refilled early on Jan 16: its supply starts Jan 31 and
    # covers Jan 31–Mar 1. Refilled on Feb 15: starts Mar 2, covers Mar 2–31. 90 of 90 days.
    # Without the shift the union would be Jan 1–Mar 16: 75 days (0.8333).
    r = one(
        [
            (1, d(1, 1), 30, LISINOPRIL),
            (1, d(1, 16), 30, LISINOPRIL),
            (1, d(2, 15), 30, LISINOPRIL),
        ]
    )
    assert (r["drug_class"], r["index_date"], r["fills"]) == ("rasa", d(1, 1), 3)
    assert (r["covered"], r["days"], r["pdc"]) == (90, 90, 1.0)
    assert r["eligible"] and r["adherent"]


def test_same_drug_by_name_when_there_is_no_code() -> None:
    # No code: the same name is the same drug, so the Jan 11 refill is shifted to Jan 31.
    drug = ("rasa", "", "缬沙坦胶囊")
    r = one([(1, d(1, 1), 30, drug), (1, d(1, 11), 30, drug)])
    assert r["covered"] == 60  # Jan 1–Mar 1
    assert r["pdc"] == 0.6667  # 60 / 90 = 0.66666… → 0.6667


def test_two_drugs_of_the_class_on_the_same_day_are_not_shifted() -> None:
    # Lisinopril and losartan both on Jan 1 (30 d each): the same days, Jan 1–30, covered once.
    # Losartan again on Feb 10: Feb 10–Mar 11. 30 + 30 = 60 days → 60/90 = 0.6667.
    # (Shifted as if one drug, Jan 1 would have covered through Mar 1, then Mar 2–31: 90.)
    r = one(
        [
            (1, d(1, 1), 30, LISINOPRIL),
            (1, d(1, 1), 30, LOSARTAN),
            (1, d(2, 10), 30, LOSARTAN),
        ]
    )
    assert (r["covered"], r["days"], r["pdc"]) == (60, 90, 0.6667)
    assert r["eligible"] and not r["adherent"]


def test_different_drugs_overlapping_count_each_day_once() -> None:
    # Lisinopril Jan 1 (60 d: Jan 1–Mar 1), switched to losartan on Feb 1 (30 d: Feb 1–Mar 2).
    # Union Jan 1–Mar 2 = 61 days; 61/90 = 0.67777… → 0.6778.
    r = one([(1, d(1, 1), 60, LISINOPRIL), (1, d(2, 1), 30, LOSARTAN)])
    assert (r["covered"], r["pdc"]) == (61, 0.6778)


def test_supply_past_the_period_end_is_truncated() -> None:
    # Index Mar 1: 31 days to Mar 31. Mar 1 (30 d): Mar 1–30. Mar 20 (90 d) shifted to Mar 31,
    # truncated to that one day. Covered 31 of 31.
    r = one([(1, d(3, 1), 30, LISINOPRIL), (1, d(3, 20), 90, LISINOPRIL)])
    assert (r["index_date"], r["covered"], r["days"], r["pdc"]) == (d(3, 1), 31, 31, 1.0)


def test_index_date_is_the_first_fill_in_the_period() -> None:
    # The Dec 20, 2024 fill is before the period and does not count (nor its supply).
    # Index Feb 1: Feb 1–Mar 31 = 59 days. Feb 1 (28 d): Feb 1–28. Mar 10 (30 d): Mar 10–31,
    # truncated: 22 days. 50/59 = 0.84745… → 0.8475, adherent.
    r = one(
        [
            (1, d(12, 20, 2024), 90, LISINOPRIL),
            (1, d(2, 1), 28, LISINOPRIL),
            (1, d(3, 10), 30, LISINOPRIL),
        ]
    )
    assert (r["index_date"], r["fills"], r["covered"], r["days"]) == (d(2, 1), 2, 50, 59)
    assert r["pdc"] == 0.8475 and r["adherent"]


def test_fewer_than_two_fills_on_different_dates_is_not_eligible() -> None:
    rows = run(
        [
            (1, d(1, 5), 90, LISINOPRIL),  # one fill
            (2, d(1, 5), 30, LISINOPRIL),  # two fills, the same day
            (2, d(1, 5), 30, LISINOPRIL),
            (3, d(1, 5), 30, LISINOPRIL),  # two drugs of the class, the same day
            (3, d(1, 5), 30, LOSARTAN),
        ]
    )
    by_patient = {r["patient_id"]: r for r in rows}
    # Patient 1 is fully covered but has one fill: measured, not eligible, not adherent.
    assert by_patient[1]["pdc"] == 1.0
    assert not any(r["eligible"] or r["adherent"] for r in rows)
    # Patient 2's same-day refill is still shifted: Jan 5–Mar 5 = 60 of 86 days.
    assert by_patient[2]["covered"] == 60


def test_adherent_from_exactly_080_and_not_below() -> None:
    # 72/90 = 0.8000 exactly → adherent; 71/90 = 0.78888… → 0.7889 → not adherent.
    rows = run(
        [
            (1, d(1, 1), 36, LISINOPRIL),
            (1, d(2, 6), 36, LISINOPRIL),  # Feb 6 – Mar 13: 36 + 36 = 72
            (2, d(1, 1), 36, LISINOPRIL),
            (2, d(2, 6), 35, LISINOPRIL),  # 36 + 35 = 71
        ]
    )
    by_patient = {r["patient_id"]: r for r in rows}
    assert (by_patient[1]["pdc"], by_patient[1]["adherent"]) == (0.8, True)
    assert (by_patient[2]["pdc"], by_patient[2]["adherent"]) == (0.7889, False)


def test_rounded_to_four_decimals_before_comparing() -> None:
    # Over 20,000 days, 15,999 covered is 0.79995: rounded half up to 0.8000 → adherent;
    # 15,998 is 0.7999 → not adherent.
    first = date(2000, 1, 1)
    last = first + timedelta(days=19_999)
    drug = ("statins", "", "atorvastatin")
    rows = run(
        [
            (1, first, 15_000, drug),
            (1, first + timedelta(days=1), 999, drug),
            (2, first, 15_000, drug),
            (2, first + timedelta(days=1), 998, drug),
        ],
        first=first,
        last=last,
    )
    by_patient = {r["patient_id"]: r for r in rows}
    assert (by_patient[1]["covered"], by_patient[1]["days"]) == (15_999, 20_000)
    assert (by_patient[1]["pdc"], by_patient[1]["adherent"]) == (0.8, True)
    assert (by_patient[2]["pdc"], by_patient[2]["adherent"]) == (0.7999, False)
    assert pdc.rounded(2, 3) == 6667 and pdc.rounded(1, 3) == 3333 and pdc.rounded(1, 8) == 1250


def test_antiretrovirals_need_090() -> None:
    # 81/90 = 0.9 adherent; 80/90 = 0.8889: enough for other classes, not antiretrovirals.
    dtg = ("", "J05AJ03", "多替拉韦钠片")
    statin = ("", "C10AA05", "阿托伐他汀钙片")
    rows = run(
        [
            (1, d(1, 1), 41, dtg),
            (1, d(2, 15), 40, dtg),  # Feb 15–Mar 26: 41 + 40 = 81
            (2, d(1, 1), 40, dtg),
            (2, d(2, 15), 40, dtg),  # 80
            (3, d(1, 1), 40, statin),
            (3, d(2, 15), 40, statin),  # 80 → 0.8889, a statin: adherent
        ]
    )
    by_patient = {r["patient_id"]: r for r in rows}
    assert by_patient[1]["drug_class"] == "antiretrovirals" and by_patient[1]["adherent"]
    assert by_patient[2]["pdc"] == 0.8889 and not by_patient[2]["adherent"]
    assert by_patient[3]["pdc"] == 0.8889 and by_patient[3]["adherent"]


def test_classes_are_measured_apart_and_combinations_count_for_each() -> None:
    # Valsartan/amlodipine (C09DB01) is a RAS antagonist and a calcium channel blocker.
    combo = ("", "C09DB01", "缬沙坦氨氯地平片")
    rows = run(
        [
            (1, d(1, 1), 45, combo),
            (1, d(2, 15), 45, combo),
            (1, d(1, 1), 30, ("", "A10BA02", "盐酸二甲双胍片")),
            (1, d(2, 1), 30, ("", "A10BA02", "盐酸二甲双胍片")),
        ]
    )
    got = {r["drug_class"]: (r["covered"], r["pdc"], r["adherent"]) for r in rows}
    assert got == {
        "rasa": (90, 1.0, True),
        "ccb": (90, 1.0, True),
        "diabetes": (60, 0.6667, False),  # Jan 1–Mar 2 of 90 days
    }


@pytest.mark.parametrize(
    ("drug_class", "code", "name", "expected"),
    [
        ("", "C09CA03", "", ("rasa",)),
        ("", "", "厄贝沙坦片", ("rasa",)),
        ("", "", "Enalapril maleate tablets", ("rasa",)),
        ("", "C10AA07", "", ("statins",)),
        ("", "", "瑞舒伐他汀钙片", ("statins",)),
        ("", "", "Nystatin suspension", ()),  # an antifungal, not a statin
        ("", "A10BA02", "", ("diabetes",)),
        ("", "", "阿卡波糖片", ("diabetes",)),
        ("", "", "Sitagliptin", ("diabetes",)),
        ("", "A10AE04", "甘精胰岛素注射液", ()),  # insulin is not measured
        ("", "", "苯磺酸氨氯地平片", ("ccb",)),
        ("", "C10BX03", "阿托伐他汀氨氯地平片", ("ccb", "statins")),
        ("", "J05AE30", "奈玛特韦/利托那韦", ()),  # a COVID-19 course, not HIV therapy
        ("", "", "阿司匹林肠溶片", ()),
        ("RAS antagonists", "", "whatever", ("rasa",)),
        ("他汀类", "", "", ("statins",)),
        ("  Anticoagulants ", "", "华法林", ("anticoagulants",)),  # a class of its own
    ],
)
def test_classify(drug_class: str, code: str, name: str, expected: tuple[str, ...]) -> None:
    assert tuple(sorted(pdc.classify(drug_class, code, name))) == tuple(sorted(expected))


def test_rolling_period_is_the_12_months_ending_on_the_as_of_day() -> None:
    assert pdc.rolling_period(date(2026, 8, 31)) == (date(2025, 9, 1), date(2026, 8, 31))
    assert pdc.rolling_period(date(2026, 9, 15)) == (date(2025, 9, 16), date(2026, 9, 15))
    assert pdc.rolling_period(date(2028, 2, 29)) == (date(2027, 3, 1), date(2028, 2, 29))


# --- from the database ----------------------------------------------------------------------


def fill(clinic: Any, p: Any, day: date, supply: int = 30, **kw: Any) -> pm.Dispense:
    values = {"name": "阿托伐他汀钙片", "code": "C10AA05", "drug_class": "", "status": "completed"}
    values.update(kw)
    return pm.Dispense.objects.create(
        organisation_id=clinic.org_id, patient=p, days_supply=supply, when_handed_over=day,
        **values,
    )  # fmt: skip


@pytest.mark.django_db
def test_only_completed_undeleted_fills_of_the_cohort_count(clinic: Any) -> None:
    today = date(2026, 9, 15)
    a = clinic.patient(date(2024, 1, 1))
    b = clinic.patient(date(2024, 1, 1))
    dead = clinic.patient(date(2024, 1, 1), deceased_on=date(2026, 9, 1))
    endo = clinic.patient(date(2024, 1, 1), department=clinic.world.endo)
    # a: Jun 1, Jul 1, Aug 1 (30 d each): Jun 1–30, Jul 1–30, Aug 1–30 covered: 90 of the 92
    # days to Aug 31 → 0.97826… → 0.9783.
    for day in (date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)):
        fill(clinic, a, day)
    # … and fills that must not count: cancelled, entered in error, deleted, after the period.
    fill(clinic, a, date(2026, 8, 20), status="cancelled")
    fill(clinic, a, date(2026, 8, 21), status="entered-in-error")
    deleted = fill(clinic, a, date(2026, 8, 22))
    pm.Dispense.objects.filter(pk=deleted.pk).update(deleted_at="2026-08-23T00:00:00Z")
    fill(clinic, a, date(2026, 9, 2), supply=90)
    # b: Jun 1 and Aug 1, 30 d each: 60 of 92 days → 0.6522, not adherent.
    fill(clinic, b, date(2026, 6, 1))
    fill(clinic, b, date(2026, 8, 1))
    # The dead patient's and the endocrinology patient's fills.
    for p in (dead, endo):
        fill(clinic, p, date(2026, 6, 1), supply=60)
        fill(clinic, p, date(2026, 7, 31), supply=60)

    first, last = pdc.rolling_period(date(2026, 8, 31))
    result = pdc.pdc(clinic.org_id, first, last)
    got = {r["patient_id"]: (r["fills"], r["covered"], r["days"], r["pdc"]) for r in result.rows()}
    assert got[a.pk] == (3, 90, 92, 0.9783)
    assert got[b.pk] == (2, 60, 92, 0.6522)

    metric = all_metrics()["pdc"]
    august = date(2026, 8, 1)
    cohort = clinic.cohort(today=today)
    values = metric.compute(cohort, [august])[august]
    # Eligible: a, b, endo (the dead patient is left out); adherent: a and endo.
    assert values["eligible"].numerator == 3
    assert (values["adherent"].numerator, values["adherent"].denominator) == (2, 3)
    assert (values["class_statins"].numerator, values["class_statins"].denominator) == (2, 3)
    assert values["class_rasa"].denominator == 0
    assert metric.patients is not None
    assert metric.patients(cohort, august, "adherent") == sorted([a.pk, endo.pk])
    assert metric.patients(cohort, august, "non_adherent") == [b.pk]
    assert metric.patients(cohort, august, "non_adherent:statins") == [b.pk]
    assert metric.patients(cohort, august, "eligible:rasa") == []

    classes = metric.breakdowns["drug_class"](cohort, august)
    assert [(k, v["eligible"].numerator, v["adherent"].numerator) for k, _l, v in classes] == [
        ("statins", 3, 2)
    ]
    with translation.override("zh-hans"):
        departments = {
            str(label): (v["eligible"].numerator, v["adherent"].numerator)
            for _k, label, v in metric.breakdowns["department"](cohort, august)
        }
    assert departments == {"心内科": (2, 1), "内分泌科": (1, 1)}

    # A department head's cohort counts only the department.
    cardio = clinic.cohort(today=today, department_ids=(clinic.world.cardio.pk,))
    assert metric.compute(cardio, [august])[august]["eligible"].numerator == 2
    # July: the period ends Jul 31. a has 2 fills (60 of 61 days covered), b only one, endo 2
    # (Jun 1–Jul 30, then Jul 31: 61 of 61).
    july = date(2026, 7, 1)
    in_july = metric.compute(cohort, [july])[july]
    assert (in_july["eligible"].numerator, in_july["adherent"].numerator) == (2, 2)
    assert METRICS["pdc"].headline == "adherent" and METRICS["pdc"].target == 0.8

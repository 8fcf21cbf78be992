"""Medication adherence (metrics.md): PDC per drug class, patient-confirmed dose adherence, and
where the two disagree. Never mixed: shown side by side, the divergence flagged.

- "pdc": PDC, rolling 12 months (careloop.analytics.pdc): per reference month, the 12 months
  ending on its as-of day. A patient is eligible when eligible in at least one class and
  adherent when adherent in every class they are eligible in; per class in the breakdown.
- "dose_adherence": doses confirmed taken (intake "taken" or "taken late") ÷ dose reminders
  the plan scheduled (medication occurrences not withdrawn), due in the reference month up to
  its as-of day; a patient with scheduled doses is non-adherent below 80 %.
- "adherence_divergence": patients with both measures over the same rolling 12 months whose
  PDC says adherent but who confirmed < 80 % of doses, or the reverse.

Dead patients are left out of every month (metrics.md, "Dead"). Everything is computed for the
whole cohort at once: one aggregate read of the fills (numpy) and one grouped query per month
for the doses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from django.db import connection
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from careloop.analytics import pdc as pdc_module
from careloop.analytics.registry import (
    Breakdown,
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    Value,
    as_of,
    local_bounds,
    month_of,
    register,
)
from careloop.kit.clock import utc_now

GOOD, BAD, WARNING, NEUTRAL, OTHER, INFO = (
    "#009E73", "#D55E00", "#E69F00", "#56B4E9", "#999999", "#0072B2",
)  # fmt: skip
CLASS_COLOURS = (INFO, GOOD, WARNING, NEUTRAL, "#CC79A7", "#F0E442", OTHER)
DOSE_TARGET = (4, 5)  # confirmed ÷ scheduled ≥ 4/5 (80 %) is adherent
IntArray = pdc_module.IntArray


def alive(cohort: Cohort) -> tuple[str, tuple[Any, ...]]:
    """The cohort's patients never marked dead, as `SELECT id …` SQL."""
    sql, params = (
        cohort.patients().filter(deceased_on__isnull=True).values_list("pk").query.sql_with_params()
    )
    return sql, tuple(params)


def _as_of(cohort: Cohort, month: date) -> date:
    return as_of(month_of(month), cohort.local_today())


# --- PDC ------------------------------------------------------------------------------------


def pdc_results(cohort: Cohort, months: Months) -> dict[date, pdc_module.Result]:
    """The PDC of every patient and class for each month (one read of the fills)."""
    if not months:
        return {}
    periods = {m: pdc_module.rolling_period(_as_of(cohort, m)) for m in months}
    first = min(p[0] for p in periods.values())
    last = max(p[1] for p in periods.values())
    fills = pdc_module.read_fills(cohort.organisation_id, first, last, alive(cohort))
    return {m: pdc_module.compute(fills, *periods[m]) for m in months}


def _pdc_parts(result: pdc_module.Result) -> dict[str, Value]:
    eligible, adherent = result.patient_status()
    parts = {
        "eligible": Value(len(eligible)),
        "adherent": Value(len(adherent), len(eligible)),
        "non_adherent": Value(len(eligible) - len(adherent), len(eligible)),
    }
    for key in pdc_module.CLASSES:
        mask = result.class_mask(key)
        parts[f"class_{key}"] = Value(
            int(np.count_nonzero(mask & result.adherent)),
            int(np.count_nonzero(mask & result.eligible)),
        )
    return parts


def pdc_compute(cohort: Cohort, months: Months) -> Computed:
    return {m: _pdc_parts(r) for m, r in pdc_results(cohort, months).items()}


def _pdc_ids(result: pdc_module.Result, part: str) -> IntArray:
    """Patients behind a part; "<part>:<class>" narrows to one class (the class breakdown)."""
    base, _sep, klass = part.partition(":")
    if base.startswith("class_"):
        base, klass = "adherent", base.removeprefix("class_")
    if klass:
        mask = result.class_mask(klass)
        chosen = {
            "eligible": mask & result.eligible,
            "adherent": mask & result.adherent,
            "non_adherent": mask & result.eligible & ~result.adherent,
        }.get(base)
        return result.patients_where(chosen) if chosen is not None else np.zeros(0, np.int64)
    eligible, adherent = result.patient_status()
    if base == "eligible":
        return eligible
    if base == "adherent":
        return adherent
    if base == "non_adherent":
        return np.setdiff1d(eligible, adherent, assume_unique=True)
    return np.zeros(0, dtype=np.int64)


def pdc_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    result = pdc_results(cohort, [month_of(month)])[month_of(month)]
    return [int(pk) for pk in _pdc_ids(result, part)]


def pdc_by_class(cohort: Cohort, month: date) -> Breakdown:
    result = pdc_results(cohort, [month_of(month)])[month_of(month)]
    rows: Breakdown = []
    known = list(pdc_module.CLASSES)
    ordered = sorted(
        result.classes, key=lambda k: (k not in known, known.index(k) if k in known else 0, k)
    )
    for key in ordered:
        mask = result.class_mask(key)
        eligible = int(np.count_nonzero(mask & result.eligible))
        adherent = int(np.count_nonzero(mask & result.adherent))
        rows.append(
            (
                key,
                pdc_module.class_label(key),
                {
                    "eligible": Value(eligible),
                    "adherent": Value(adherent, eligible),
                    "non_adherent": Value(eligible - adherent, eligible),
                },
            )
        )
    return rows


# --- departments ----------------------------------------------------------------------------


def _department_label(name: str, name_en: str) -> str:
    return name_en if name_en and (get_language() or "").startswith("en") else name


def departments_of(cohort: Cohort) -> list[tuple[int, str, IntArray]]:
    """(department, label, its patients) for each department the cohort covers."""
    from careloop.accounts.models import Department
    from careloop.patients.models import PatientDepartment

    depts = Department.objects.filter(organisation_id=cohort.organisation_id)
    if cohort.department_ids is not None:
        depts = depts.filter(pk__in=cohort.department_ids)
    chosen = list(depts.order_by("name", "pk").values_list("pk", "code", "name", "name_en"))
    links = np.array(
        list(
            PatientDepartment.objects.filter(department_id__in=[d[0] for d in chosen]).values_list(
                "department_id", "patient_id"
            )
        ),
        dtype=np.int64,
    ).reshape(-1, 2)
    return [
        (pk, _department_label(name, name_en), np.unique(links[links[:, 0] == pk, 1]))
        for pk, _code, name, name_en in chosen
    ]


def _by_department(cohort: Cohort, parts_for: Any, month: date) -> Breakdown:
    return [(str(pk), label, parts_for(members)) for pk, label, members in departments_of(cohort)]


def pdc_by_department(cohort: Cohort, month: date) -> Breakdown:
    result = pdc_results(cohort, [month_of(month)])[month_of(month)]
    eligible, adherent = result.patient_status()

    def parts(members: IntArray) -> dict[str, Value]:
        e = int(np.count_nonzero(np.isin(eligible, members)))
        a = int(np.count_nonzero(np.isin(adherent, members)))
        return {
            "eligible": Value(e),
            "adherent": Value(a, e),
            "non_adherent": Value(e - a, e),
        }

    return _by_department(cohort, parts, month)


# --- dose adherence -------------------------------------------------------------------------


@dataclass
class Doses:
    """Per patient with scheduled doses in a period: doses scheduled and confirmed taken."""

    patient: IntArray
    scheduled: IntArray
    confirmed: IntArray

    @property
    def adherent(self) -> Any:
        return self.confirmed * DOSE_TARGET[1] >= self.scheduled * DOSE_TARGET[0]


def doses(cohort: Cohort, first: date, last: date) -> Doses:
    """Dose reminders of the plan due from `first` to `last` (local days, and not after now)
    and how many of them the patient confirmed taken (on time or late)."""
    from careloop.reminders import models as rm

    start, end = local_bounds(first, last, cohort.tz)
    end = min(end, utc_now())
    occ = connection.ops.quote_name(rm.Occurrence._meta.db_table)
    intake = connection.ops.quote_name(rm.IntakeEvent._meta.db_table)
    patients_sql, patients_params = alive(cohort)
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"SELECT o.patient_id, COUNT(*), "  # noqa: S608
        f"SUM(CASE WHEN i.status IN ('taken', 'late') THEN 1 ELSE 0 END) "
        f"FROM {occ} o LEFT JOIN {intake} i ON i.occurrence_id = o.id "
        f"WHERE o.organisation_id = %s AND o.kind = 'medication' "
        f"AND o.status NOT IN ('cancelled', 'skipped') AND o.due_at >= %s AND o.due_at < %s "
        f"AND o.patient_id IN ({patients_sql}) GROUP BY o.patient_id ORDER BY o.patient_id"
    )
    params = (cohort.organisation_id, adapt(start), adapt(end), *patients_params)
    if start >= end:
        rows: list[Any] = []
    else:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
    data = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return Doses(data[:, 0], data[:, 1], data[:, 2])


def _month_doses(cohort: Cohort, month: date) -> Doses:
    return doses(cohort, month_of(month), _as_of(cohort, month))


def _dose_parts(d: Doses, members: IntArray | None = None) -> dict[str, Value]:
    keep = np.isin(d.patient, members) if members is not None else slice(None)
    scheduled, confirmed = d.scheduled[keep], d.confirmed[keep]
    adherent = d.adherent[keep]
    patients = len(scheduled)
    good = int(np.count_nonzero(adherent))
    return {
        "scheduled": Value(int(scheduled.sum())),
        "confirmed": Value(int(confirmed.sum()), int(scheduled.sum())),
        "patients": Value(patients),
        "adherent": Value(good, patients),
        "non_adherent": Value(patients - good, patients),
    }


def dose_compute(cohort: Cohort, months: Months) -> Computed:
    return {m: _dose_parts(_month_doses(cohort, m)) for m in months}


def dose_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    d = _month_doses(cohort, month)
    if part in ("scheduled", "patients"):
        chosen = d.patient
    elif part == "confirmed":
        chosen = d.patient[d.confirmed > 0]
    elif part == "adherent":
        chosen = d.patient[d.adherent]
    elif part == "non_adherent":
        chosen = d.patient[~d.adherent]
    else:
        chosen = d.patient[:0]
    return [int(pk) for pk in chosen]


def dose_by_department(cohort: Cohort, month: date) -> Breakdown:
    d = _month_doses(cohort, month)
    return _by_department(cohort, lambda members: _dose_parts(d, members), month)


# --- divergence -----------------------------------------------------------------------------


def divergence(
    cohort: Cohort, month: date, result: pdc_module.Result | None = None
) -> dict[str, IntArray]:
    """Patients with both measures over the month's rolling 12 months ("compared"), and those
    whose PDC and confirmed doses disagree."""
    month = month_of(month)
    if result is None:
        result = pdc_results(cohort, [month])[month]
    eligible, adherent = result.patient_status()
    d = doses(cohort, result.first, result.last)
    with_doses = d.patient[d.scheduled > 0]
    compared = np.intersect1d(eligible, with_doses)
    low_confirmation = d.patient[~d.adherent]
    high_confirmation = d.patient[d.adherent]
    return {
        "compared": compared,
        "high_pdc_low_confirmation": np.intersect1d(
            np.intersect1d(compared, adherent), low_confirmation
        ),
        "low_pdc_high_confirmation": np.intersect1d(
            np.setdiff1d(compared, adherent), high_confirmation
        ),
    }


def _divergence_parts(
    found: dict[str, IntArray], members: IntArray | None = None
) -> dict[str, Value]:
    def count(ids: IntArray) -> int:
        return int(np.count_nonzero(np.isin(ids, members))) if members is not None else len(ids)

    both = count(found["compared"])
    return {
        "compared": Value(both),
        "high_pdc_low_confirmation": Value(count(found["high_pdc_low_confirmation"]), both),
        "low_pdc_high_confirmation": Value(count(found["low_pdc_high_confirmation"]), both),
    }


def divergence_compute(cohort: Cohort, months: Months) -> Computed:
    results = pdc_results(cohort, months)
    return {m: _divergence_parts(divergence(cohort, m, results[m])) for m in months}


def divergence_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    found = divergence(cohort, month)
    return [int(pk) for pk in found.get(part, np.zeros(0, dtype=np.int64))]


def divergence_by_department(cohort: Cohort, month: date) -> Breakdown:
    found = divergence(cohort, month)
    return _by_department(cohort, lambda members: _divergence_parts(found, members), month)


# --- registration ---------------------------------------------------------------------------

PDC_DEFINITION = _(
    "PDC (Pharmacy Quality Alliance), rolling 12 months: per patient and drug class, days "
    "covered ÷ days from the index date (the first fill in the period) to the end of the "
    "period; the period is the 12 months ending on the month's as-of day. Eligible only with "
    "≥ 2 fills on different dates. Same drug: an early refill's supply starts the day after the "
    "previous supply ends (shift forward). Different drugs of the class: no shift, a day is "
    "covered if any drug is on hand. Supply past the period end is truncated. Rounded to 4 "
    "decimals, then adherent if PDC ≥ 0.80 (0.90 for antiretrovirals). Only dispensings handed "
    "over and not deleted count. Share adherent: patients adherent in every class they are "
    "eligible in ÷ patients eligible in at least one class; per class: patients adherent in "
    "the class ÷ patients eligible in it. Dead patients are excluded."
)
DOSE_DEFINITION = _(
    "Dose adherence (patient-confirmed): doses confirmed taken (on time or late) ÷ doses "
    "scheduled by the plan (medication reminders not withdrawn) due in the month up to its "
    "as-of day; a patient is non-adherent below 80 %. Share adherent: patients with ≥ 80 % "
    "confirmed ÷ patients with scheduled doses. Never mixed with PDC. Dead patients are "
    "excluded."
)
DIVERGENCE_DEFINITION = _(
    "Adherence divergence: patients eligible for PDC with doses scheduled by the plan, both "
    "over the same rolling 12 months ending on the month's as-of day. High PDC, low "
    "confirmation: adherent by PDC in every eligible class but share of doses confirmed < 80%. "
    "Low PDC, high confirmation: non-adherent by PDC in a class but share of doses confirmed "
    "≥ 80%. "
    "Each ÷ the patients with both measures. Dead patients are excluded."
)

PDC = register(
    Metric(
        key="pdc",
        title=_("PDC (proportion of days covered)"),
        definition=PDC_DEFINITION,
        kind="share",
        parts=(
            Part("eligible", _("Eligible patients"), colour=NEUTRAL),
            Part("adherent", _("Adherent (PDC ≥ 0.80)"), colour=GOOD),
            Part("non_adherent", _("Not adherent"), colour=BAD),
            *(
                Part(f"class_{c.key}", c.label, colour=CLASS_COLOURS[i % len(CLASS_COLOURS)])
                for i, c in enumerate(pdc_module.CLASSES.values())
            ),
        ),
        compute=pdc_compute,
        patients=pdc_patients,
        breakdowns={"drug_class": pdc_by_class, "department": pdc_by_department},
        group="adherence",
        headline="adherent",
        target=0.8,
    )
)
DOSE_ADHERENCE = register(
    Metric(
        key="dose_adherence",
        title=_("Dose adherence (patient-confirmed)"),
        definition=DOSE_DEFINITION,
        kind="share",
        parts=(
            Part("scheduled", _("Doses scheduled"), colour=NEUTRAL),
            Part("confirmed", _("Doses confirmed taken"), colour=INFO),
            Part("patients", _("Patients with scheduled doses"), colour=OTHER),
            Part("adherent", _("Adherent (confirmed ≥ 80%)"), colour=GOOD),
            Part("non_adherent", _("Not adherent (confirmed < 80%)"), colour=BAD),
        ),
        compute=dose_compute,
        patients=dose_patients,
        breakdowns={"department": dose_by_department},
        group="adherence",
        headline="adherent",
        target=0.8,
    )
)
DIVERGENCE = register(
    Metric(
        key="adherence_divergence",
        title=_("Adherence divergence (PDC vs confirmed doses)"),
        definition=DIVERGENCE_DEFINITION,
        kind="share",
        parts=(
            Part("compared", _("Patients with both measures"), colour=NEUTRAL),
            Part("high_pdc_low_confirmation", _("High PDC, low confirmation"), colour=WARNING),
            Part("low_pdc_high_confirmation", _("Low PDC, high confirmation"), colour=BAD),
        ),
        compute=divergence_compute,
        patients=divergence_patients,
        breakdowns={"department": divergence_by_department},
        group="adherence",
        headline="high_pdc_low_confirmation",
    )
)

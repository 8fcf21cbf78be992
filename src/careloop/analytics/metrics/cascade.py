"""The HEARTS control cascades of hypertension and diabetes (metrics.md, "Visits and care
status"), read from the monthly per-patient state (analytics.state): one grouped query per
call, whatever the number of months."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Department
from careloop.analytics import models as am
from careloop.analytics.registry import (
    Breakdown,
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    Value,
    register,
)
from careloop.patients import models as pm

GOOD, BAD, WARNING, NEUTRAL, OTHER, INFO = (
    "#009E73",
    "#D55E00",
    "#E69F00",
    "#56B4E9",
    "#999999",
    "#0072B2",
)
UNDER_CARE = Q(care=am.CareStatus.UNDER_CARE)
LTFU = Q(care=am.CareStatus.LTFU)
OLD_ENOUGH = Q(months_registered__gte=3)  # registered before the last 3 months


@dataclass(frozen=True)
class Spec:
    """A part: which state rows it counts, and the part whose count divides it (None: a plain
    count)."""

    where: Q
    over: str | None


def whole_organisation(cohort: Cohort) -> bool:
    """No narrowing: every state row of the organisation is in the cohort."""
    return (
        cohort.department_ids is None
        and cohort.doctor_id is None
        and not (cohort.condition or cohort.age_band or cohort.sex or cohort.plan or cohort.segment)
    )


def rows(cohort: Cohort, months: Months, condition: Q) -> QuerySet[am.PatientMonth]:
    """The cohort's state rows of `months` matching `condition`, dead patients left out (from
    past months too)."""
    # The dead are few: leaving them out by a NOT IN list keeps the query on the state's
    # index alone (no lookup of every row's patient).
    dead = pm.Patient.objects.filter(
        organisation_id=cohort.organisation_id, deceased_on__isnull=False
    ).values("pk")
    qs = am.PatientMonth.objects.filter(
        condition,
        organisation_id=cohort.organisation_id,
        month__in=list(months),
    ).exclude(patient_id__in=dead)
    if not whole_organisation(cohort):
        qs = qs.filter(patient_id__in=cohort.patients().values("pk"))
    return qs


def _aggregates(specs: dict[str, Spec]) -> dict[str, Count]:
    return {f"n_{key}": Count("pk", filter=spec.where) for key, spec in specs.items()}


def _values(specs: dict[str, Spec], counts: Mapping[str, Any]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, spec in specs.items():
        n = counts.get(f"n_{key}") or 0
        if spec.over is None:
            out[key] = Value(n)
        else:
            out[key] = Value(n, counts.get(f"n_{spec.over}") or 0)
    return out


def compute_specs(cohort: Cohort, months: Months, condition: Q, specs: dict[str, Spec]) -> Computed:
    """Every part of every month in one grouped query."""
    found = {
        row["month"]: row
        for row in rows(cohort, months, condition)
        .values("month")
        .annotate(**_aggregates(specs))
        .order_by()
    }
    return {month: _values(specs, found.get(month, {})) for month in months}


def drill_specs(
    cohort: Cohort, month: date, part: str, condition: Q, specs: dict[str, Spec]
) -> list[int]:
    spec = specs.get(part)
    if spec is None:
        return []
    return list(
        rows(cohort, [month], condition)
        .filter(spec.where)
        .order_by("patient_id")
        .values_list("patient_id", flat=True)
    )


def department_breakdown(
    cohort: Cohort, month: date, condition: Q, specs: dict[str, Spec]
) -> Breakdown:
    """The parts per department the patients belong to (a patient of two departments counts in
    both)."""
    grouped = (
        rows(cohort, [month], condition)
        .values(department=F("patient__department_links__department_id"))
        .annotate(**_aggregates(specs))
        .order_by()
    )
    by_dept = {row["department"]: row for row in grouped if row["department"] is not None}
    departments = Department.objects.filter(
        organisation_id=cohort.organisation_id, pk__in=list(by_dept)
    )
    if cohort.department_ids is not None:
        departments = departments.filter(pk__in=cohort.department_ids)
    return [
        (str(d.pk), d.name, _values(specs, by_dept[d.pk]))
        for d in departments.order_by("name", "pk")
    ]


def build(
    key: str,
    title: Any,
    definition: Any,
    condition: Q,
    specs: dict[str, Spec],
    parts: tuple[Part, ...],
    headline: str,
) -> Metric:
    def compute(cohort: Cohort, months: Months) -> Computed:
        return compute_specs(cohort, months, condition, specs)

    def patients(cohort: Cohort, month: date, part: str) -> list[int]:
        return drill_specs(cohort, month, part, condition, specs)

    def by_department(cohort: Cohort, month: date) -> Breakdown:
        return department_breakdown(cohort, month, condition, specs)

    breakdowns: dict[str, Callable[[Cohort, date], Breakdown]] = {"department": by_department}
    return Metric(
        key=key,
        title=title,
        definition=definition,
        kind="share",
        parts=parts,
        compute=compute,
        patients=patients,
        breakdowns=breakdowns,
        group="care",
        headline=headline,
    )


# --- the parts ------------------------------------------------------------------------------

HTN = Q(has_hypertension=True)
DM = Q(has_diabetes=True)
DENOMINATOR = OLD_ENOUGH & UNDER_CARE


def _care_specs() -> dict[str, Spec]:
    return {
        "registered": Spec(Q(), None),
        "under_care": Spec(UNDER_CARE, "registered"),
        "ltfu": Spec(LTFU, "registered"),
        "newly_registered": Spec(Q(months_registered__lt=3), None),
    }


def _htn_specs(denominator: Q, controlled: Q | None = None) -> dict[str, Spec]:
    measured = Q(htn_outcome__in=[am.HtnOutcome.CONTROLLED, am.HtnOutcome.UNCONTROLLED])
    if controlled is None:
        good = Q(htn_outcome=am.HtnOutcome.CONTROLLED)
        bad = Q(htn_outcome=am.HtnOutcome.UNCONTROLLED)
    else:
        good = measured & controlled
        bad = measured & ~controlled
    return {
        "denominator": Spec(denominator, None),
        "missed_visit": Spec(
            denominator & Q(htn_outcome=am.HtnOutcome.MISSED_VISIT), "denominator"
        ),
        "visit_no_bp": Spec(denominator & Q(htn_outcome=am.HtnOutcome.VISIT_NO_BP), "denominator"),
        "controlled": Spec(denominator & good, "denominator"),
        "uncontrolled": Spec(denominator & bad, "denominator"),
    }


def _dm_specs(denominator: Q) -> dict[str, Spec]:
    o = am.DmOutcome
    return {
        "denominator": Spec(denominator, None),
        "missed_visit": Spec(denominator & Q(dm_outcome=o.MISSED_VISIT), "denominator"),
        "visit_no_glucose": Spec(denominator & Q(dm_outcome=o.VISIT_NO_GLUCOSE), "denominator"),
        "controlled": Spec(denominator & Q(dm_outcome=o.CONTROLLED), "denominator"),
        "uncontrolled": Spec(
            denominator & Q(dm_outcome__in=[o.UNCONTROLLED_MODERATE, o.UNCONTROLLED_SEVERE]),
            "denominator",
        ),
        "uncontrolled_moderate": Spec(
            denominator & Q(dm_outcome=o.UNCONTROLLED_MODERATE), "denominator"
        ),
        "uncontrolled_severe": Spec(
            denominator & Q(dm_outcome=o.UNCONTROLLED_SEVERE), "denominator"
        ),
    }


CARE_PARTS = (
    Part("registered", _("Registered (alive)"), colour=OTHER),
    Part("under_care", _("Under care"), colour=INFO),
    Part("ltfu", _("Lost to follow-up"), colour=WARNING),
    Part("newly_registered", _("Newly registered"), colour=NEUTRAL),
)
HTN_PARTS = (
    Part("denominator", _("Control denominator"), colour=OTHER),
    Part("missed_visit", _("Missed visit"), colour=WARNING),
    Part("visit_no_bp", _("Visit but no BP"), colour=NEUTRAL),
    Part("controlled", _("BP controlled"), colour=GOOD),
    Part("uncontrolled", _("BP uncontrolled"), colour=BAD),
)
DM_PARTS = (
    Part("denominator", _("Control denominator"), colour=OTHER),
    Part("missed_visit", _("Missed visit"), colour=WARNING),
    Part("visit_no_glucose", _("Visit but no glucose measure"), colour=NEUTRAL),
    Part("controlled", _("Glucose controlled"), colour=GOOD),
    Part("uncontrolled", _("Glucose uncontrolled"), colour=BAD),
    Part(
        "uncontrolled_moderate",
        _("Uncontrolled: HbA1c 7.0–8.9 %, FBS 126–199, RBS 200–299 mg/dL"),
        colour=WARNING,
    ),
    Part(
        "uncontrolled_severe",
        _("Uncontrolled: HbA1c ≥ 9.0 %, FBS ≥ 200, RBS ≥ 300 mg/dL"),
        colour=BAD,
    ),
)

VISIT = _(
    "A visit is a BP, glucose or HbA1c measurement recorded by staff, a device or the hospital "
    "system, a prescription or refill, an appointment created, or a completed follow-up "
    "contact that reached the patient. Months are calendar months in the organisation's time "
    "zone, as of the end of the month (today for the current month). Dead patients are "
    "excluded from every month."
)
CARE = _(
    "Registered: patients registered by the end of the month. Under care: registered less "
    "than 12 months ago or with a visit in the past 12 months (the month and the 11 before "
    "it) ÷ registered. Lost to follow-up: registered 12 or more months ago and no visit in "
    "the past 12 months ÷ registered. Newly registered: registered in the month or the 2 "
    "before it."
)


def _define(*texts: Any) -> Any:
    """Lazy texts joined by spaces (translated when shown)."""
    return format_lazy(" ".join("{}" for _t in texts), *texts)


HTN_DEFINITION = _define(
    _(
        "Patients with hypertension (ICD-10 I10–I15). Control denominator: patients "
        "registered before the last 3 months (the month and the 2 before it), excluding the "
        "lost to follow-up. Each is counted once, in this order: missed visit (no visit in "
        "the last 3 months), visit but no BP in the last 3 months, BP controlled (the latest "
        "BP in the last 3 months is below 140 systolic and below 90 diastolic; several "
        "readings on that day: the lowest systolic and the lowest diastolic of the day), "
        "else uncontrolled. Each share is that part ÷ the control denominator."
    ),
    CARE,
    VISIT,
)
HTN_LTFU_DEFINITION = _define(
    _(
        "As the hypertension control cascade, with the lost to follow-up kept in the "
        "denominator: patients with hypertension registered before the last 3 months; missed "
        "visit, visit but no BP, controlled (< 140/90) and uncontrolled ÷ that denominator."
    ),
    VISIT,
)
HTN_130_DEFINITION = _define(
    _(
        "As the hypertension control cascade with the stricter target: controlled when the "
        "latest BP in the last 3 months (lowest systolic and lowest diastolic of its day) is "
        "below 130 systolic and below 80 diastolic; controlled and uncontrolled ÷ the control "
        "denominator (registered before the last 3 months, excluding the lost to follow-up)."
    ),
    VISIT,
)
DM_DEFINITION = _define(
    _(
        "Patients with diabetes (ICD-10 E10–E14). Control denominator: patients registered "
        "before the last 3 months (the month and the 2 before it), excluding the lost to "
        "follow-up. Each is counted once, in this order: missed visit (no visit in the last 3 "
        "months), visit but no glucose or HbA1c measure in the last 3 months, controlled (the "
        "latest measure in the last 3 months: HbA1c < 7.0 %, fasting glucose < 126 mg/dL "
        "(7.0 mmol/L), random or post-prandial glucose < 200 mg/dL (11.1 mmol/L)), else "
        "uncontrolled, in two bands: HbA1c 7.0–8.9 % / ≥ 9.0 %, fasting 126–199 / ≥ 200 "
        "mg/dL, random 200–299 / ≥ 300 mg/dL. Each share is that part ÷ the control "
        "denominator."
    ),
    CARE,
    VISIT,
)
DM_LTFU_DEFINITION = _define(
    _(
        "As the diabetes control cascade, with the lost to follow-up kept in the denominator: "
        "patients with diabetes registered before the last 3 months; missed visit, visit but "
        "no glucose measure, controlled and uncontrolled ÷ that denominator."
    ),
    VISIT,
)

HTN_SPECS = {**_care_specs(), **_htn_specs(DENOMINATOR)}
HTN_LTFU_SPECS = _htn_specs(OLD_ENOUGH)
HTN_130_SPECS = _htn_specs(DENOMINATOR, Q(bp_systolic__lt=130, bp_diastolic__lt=80))
DM_SPECS = {**_care_specs(), **_dm_specs(DENOMINATOR)}
DM_LTFU_SPECS = _dm_specs(OLD_ENOUGH)

HTN_CASCADE = register(
    build(
        "htn_cascade",
        _("Hypertension control cascade"),
        HTN_DEFINITION,
        HTN,
        HTN_SPECS,
        CARE_PARTS + HTN_PARTS,
        "controlled",
    )
)
HTN_CASCADE_LTFU = register(
    build(
        "htn_cascade_ltfu",
        _("Hypertension control, lost to follow-up included"),
        HTN_LTFU_DEFINITION,
        HTN,
        HTN_LTFU_SPECS,
        HTN_PARTS,
        "controlled",
    )
)
HTN_CASCADE_130 = register(
    build(
        "htn_cascade_130",
        _("Hypertension control below 130/80"),
        HTN_130_DEFINITION,
        HTN,
        HTN_130_SPECS,
        HTN_PARTS,
        "controlled",
    )
)
DM_CASCADE = register(
    build(
        "dm_cascade",
        _("Diabetes control cascade"),
        DM_DEFINITION,
        DM,
        DM_SPECS,
        CARE_PARTS + DM_PARTS,
        "controlled",
    )
)
DM_CASCADE_LTFU = register(
    build(
        "dm_cascade_ltfu",
        _("Diabetes control, lost to follow-up included"),
        DM_LTFU_DEFINITION,
        DM,
        DM_LTFU_SPECS,
        DM_PARTS,
        "controlled",
    )
)

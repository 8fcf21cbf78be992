"""China's national basic public-health service indicators (国家基本公共卫生服务) for
hypertension and diabetes: 健康管理率, 规范管理率 and 控制率 (metrics.md), from the monthly
per-patient state.

Managed patients: patients with the condition under care as of the month's end (alive,
registered less than 12 months ago or with a visit in the past 12 months). Follow-ups per year:
distinct visit days in the month and the 11 before it; "per the standard" means at least N of
them (settings.ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR, environment variable
CARELOOP_ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR, default 4). The estimated patients in the
area come from analytics.AreaEstimate for the month's year; without one the 健康管理率 is not
available (its denominator is 0)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.analytics import models as am
from careloop.analytics.metrics.cascade import (
    DM,
    HTN,
    UNDER_CARE,
    Spec,
    compute_specs,
    department_breakdown,
    drill_specs,
)
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

DEFAULT_FOLLOWUPS_PER_YEAR = 4

BP_AT_TARGET = Q(bp_systolic__lt=140, bp_diastolic__lt=90)
GLUCOSE_AT_TARGET = (
    Q(glucose_kind="hba1c", glucose_value__lt=7.0)
    | Q(glucose_kind="fasting", glucose_value__lt=126)
    | Q(glucose_kind__in=["random", "postprandial"], glucose_value__lt=200)
)


def followups_per_year() -> int:
    return int(getattr(settings, "ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR", DEFAULT_FOLLOWUPS_PER_YEAR))


def _specs(at_target: Q) -> dict[str, Spec]:
    return {
        "managed": Spec(UNDER_CARE, None),
        "standard": Spec(UNDER_CARE & Q(followups_12m__gte=followups_per_year()), "managed"),
        "controlled": Spec(UNDER_CARE & at_target, "managed"),
    }


def _estimates(organisation_id: int, condition: str, months: Months) -> dict[int, int]:
    return dict(
        am.AreaEstimate.objects.filter(
            organisation_id=organisation_id,
            condition=condition,
            year__in={m.year for m in months},
        ).values_list("year", "estimated_patients")
    )


def _shape(found: dict[str, Value], estimate: int | None) -> dict[str, Value]:
    managed = found["managed"].numerator
    return {
        "managed": Value(managed),
        "estimated": Value(estimate or 0),
        "management_rate": Value(managed, estimate or 0),
        "standard_rate": found["standard"],
        "control_rate": found["controlled"],
    }


DRILL = {
    "managed": "managed",
    "management_rate": "managed",
    "standard_rate": "standard",
    "control_rate": "controlled",
}


def build(key: str, condition: str, flag: Q, at_target: Q, title: Any, definition: Any) -> Metric:
    def compute(cohort: Cohort, months: Months) -> Computed:
        specs = _specs(at_target)
        found = compute_specs(cohort, months, flag, specs)
        estimates = _estimates(cohort.organisation_id, condition, months)
        return {m: _shape(found[m], estimates.get(m.year)) for m in months}

    def patients(cohort: Cohort, month: date, part: str) -> list[int]:
        inner = DRILL.get(part)
        return drill_specs(cohort, month, inner, flag, _specs(at_target)) if inner else []

    def by_department(cohort: Cohort, month: date) -> Breakdown:
        estimate = _estimates(cohort.organisation_id, condition, [month]).get(month.year)
        return [
            (k, label, _shape(values, estimate))
            for k, label, values in department_breakdown(cohort, month, flag, _specs(at_target))
        ]

    return Metric(
        key=key,
        title=title,
        definition=definition,
        kind="share",
        parts=(
            Part("managed", _("Managed patients"), colour="#0072B2"),
            Part("estimated", _("Estimated patients in the area"), drill=False, colour="#999999"),
            Part("management_rate", _("Health management rate (健康管理率)"), colour="#56B4E9"),
            Part("standard_rate", _("Standard management rate (规范管理率)"), colour="#E69F00"),
            Part("control_rate", _("Control rate (控制率)"), colour="#009E73"),
        ),
        compute=compute,
        patients=patients,
        breakdowns={"department": by_department},
        group="care",
        headline="standard_rate",
    )


CHINA_HTN = register(
    build(
        "china_htn",
        "hypertension",
        HTN,
        BP_AT_TARGET,
        _("Hypertension: national public-health indicators"),
        _(
            "Managed patients: patients with hypertension under care at the end of the month "
            "(alive; registered less than 12 months ago or a visit in the past 12 months). "
            "健康管理率 (health management rate): managed patients ÷ the estimated number of "
            "hypertensive patients in the area for the year (not available until an "
            "administrator sets the estimate). 规范管理率 (standard management rate): managed "
            "patients with at least the required number of follow-ups (visit days; 4 unless "
            "configured otherwise) in the month and the 11 before it ÷ managed patients. "
            "控制率 (管理人群血压控制率, control rate): "
            "managed patients whose latest BP by the month's end is below 140/90 (lowest "
            "systolic and lowest diastolic of its day) ÷ managed patients."
        ),
    )
)
CHINA_DM = register(
    build(
        "china_dm",
        "diabetes",
        DM,
        GLUCOSE_AT_TARGET,
        _("Diabetes: national public-health indicators"),
        _(
            "Managed patients: patients with diabetes under care at the end of the month "
            "(alive; registered less than 12 months ago or a visit in the past 12 months). "
            "健康管理率 (health management rate): managed patients ÷ the estimated number of "
            "diabetic patients in the area for the year (not available until an administrator "
            "sets the estimate). 规范管理率 (standard management rate): managed patients with at "
            "least the required number of follow-ups (visit days; 4 unless configured "
            "otherwise) in the month and the 11 before it ÷ managed patients. "
            "控制率 (管理人群血糖控制率, control rate): managed "
            "patients whose latest glucose measure by the month's end is at target (HbA1c "
            "< 7.0 %, fasting < 7.0 mmol/L, random or post-prandial < 11.1 mmol/L) ÷ managed "
            "patients."
        ),
    )
)

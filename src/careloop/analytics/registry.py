"""The contract between metric definitions and the pages, exports and reports that show them.

A metric computes, for a cohort and a list of reference months, one `Value` per part (for
example the parts of the hypertension control cascade), and names the patients behind any part
it can drill into. Pages, exports, the monthly PDF and the benchmark only go through this
registry, so a metric is defined once.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Q, QuerySet

from careloop.kit.clock import utc_now

# --- months ---------------------------------------------------------------------------------


def month_of(day: date) -> date:
    """The first day of the calendar month holding `day`."""
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    """The first day of the month `n` months after (or before, when negative) `month`."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_end(month: date) -> date:
    """The last day of `month`."""
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def last_months(today: date, n: int = 12) -> list[date]:
    """The `n` months ending with the month of `today`, oldest first."""
    current = month_of(today)
    return [add_months(current, i) for i in range(-(n - 1), 1)]


def as_of(month: date, today: date) -> date:
    """The day a month's figures are computed for: its last day, or today for the current month
    (metrics.md: "as of" the end of the reference month; the current month updates daily)."""
    return min(month_end(month), today)


def local_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants [start of `first`, start of the day after `last`) in the zone `tz`."""
    start = datetime.combine(first, time(0), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


# --- cohorts --------------------------------------------------------------------------------

AGE_BANDS: dict[str, tuple[int, int | None]] = {
    "0-44": (0, 44),
    "45-59": (45, 59),
    "60-74": (60, 74),
    "75+": (75, None),
}
CONDITION_PREFIXES: dict[str, tuple[str, ...]] = {
    # ICD-10 I10–I15 hypertensive diseases; E10–E14 diabetes mellitus.
    "hypertension": ("I10", "I11", "I12", "I13", "I15"),
    "diabetes": ("E10", "E11", "E12", "E13", "E14"),
}


def condition_q(condition: str) -> Q:
    """Patients with an undeleted, unresolved condition of the group `condition` (a key of
    CONDITION_PREFIXES)."""
    from careloop.patients import models as pm

    codes = Q()
    for code in CONDITION_PREFIXES[condition]:
        codes |= Q(icd10_code__istartswith=code)
    held = pm.Condition.objects.filter(
        codes, patient=OuterRef("pk"), deleted_at__isnull=True
    ).exclude(status__in=["resolved", "inactive"])
    return Q(Exists(held))


@dataclass(frozen=True)
class Cohort:
    """Which patients a figure counts. Department and doctor narrow the organisation; the
    filters (condition, age band, sex, plan, segment) narrow further. The pages build it from
    the signed-in user's scope, so a department head never counts another department."""

    organisation_id: int
    time_zone: str = "Asia/Shanghai"
    department_ids: tuple[int, ...] | None = None  # None: the whole organisation
    doctor_id: int | None = None  # patients of care teams this doctor belongs to or leads
    condition: str = ""  # "", or a key of CONDITION_PREFIXES
    age_band: str = ""  # "", or a key of AGE_BANDS (age today)
    sex: str = ""  # "", "male", "female", "unknown"
    plan: str = ""  # "", or a plan template code (an enrolment of any status)
    segment: str = ""  # "", or a segment code (segments arrive with issue 8)
    today: date | None = None  # overrides the organisation's today (tests, benchmarks)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def local_today(self) -> date:
        return self.today or utc_now().astimezone(self.tz).date()

    def narrowed(self, **changes: Any) -> Cohort:
        return replace(self, **changes)

    def patients(self) -> QuerySet[Any]:
        """The cohort's patients (the dead included: each metric applies its own rule)."""
        from careloop.accounts import models as am
        from careloop.patients import models as pm

        qs = pm.Patient.objects.filter(
            organisation_id=self.organisation_id, merged_into__isnull=True
        )
        if self.department_ids is not None:
            qs = qs.filter(
                Exists(
                    pm.PatientDepartment.objects.filter(
                        patient=OuterRef("pk"), department_id__in=self.department_ids
                    )
                )
            )
        if self.doctor_id is not None:
            teams = am.CareTeam.objects.filter(
                Q(responsible_doctor_id=self.doctor_id) | Q(members__id=self.doctor_id)
            ).values("pk")
            qs = qs.filter(
                Exists(
                    pm.PatientDepartment.objects.filter(
                        patient=OuterRef("pk"), care_team_id__in=teams
                    )
                )
            )
        if self.condition:
            qs = qs.filter(condition_q(self.condition))
        if self.sex:
            qs = qs.filter(sex=self.sex)
        if self.age_band:
            low, high = AGE_BANDS[self.age_band]
            today = self.local_today()
            # Born on or before today minus `low` years, and after today minus `high + 1` years.
            qs = qs.filter(date_of_birth__lte=_years_before(today, low))
            if high is not None:
                qs = qs.filter(date_of_birth__gt=_years_before(today, high + 1))
        if self.plan:
            from careloop.careplans import models as cm

            qs = qs.filter(
                Exists(
                    cm.Enrolment.objects.filter(patient=OuterRef("pk"), template__code=self.plan)
                )
            )
        if self.segment:
            qs = segment_filter(qs, self)
        return qs

    def patient_sql(self) -> tuple[str, tuple[Any, ...]]:
        """`SELECT id FROM patients_patient WHERE …` for this cohort, with its parameters, to
        use as `patient_id IN (…)` in raw SQL."""
        sql, params = self.patients().values_list("pk").query.sql_with_params()
        return sql, tuple(params)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def segment_filter(qs: QuerySet[Any], cohort: Cohort) -> QuerySet[Any]:
    """Patients of the cohort's segment. Until segments exist, no patient belongs to one."""
    hook = SEGMENT_FILTERS.get("default")
    return hook(qs, cohort.segment) if hook else qs.none()


# Issue 8 registers the segment filter here (segment code → patients).
SEGMENT_FILTERS: dict[str, Callable[[QuerySet[Any], str], QuerySet[Any]]] = {}


# --- values and metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """One figure: numerator ÷ denominator, or a plain amount when `denominator` is None."""

    numerator: float
    denominator: float | None = None

    @property
    def value(self) -> float | None:
        if self.denominator is None:
            return self.numerator
        if not self.denominator:
            return None
        return self.numerator / self.denominator


@dataclass(frozen=True)
class Part:
    """One named part of a metric (e.g. "controlled" of the cascade)."""

    key: str
    label: Any  # lazy text
    drill: bool = True  # the page links the figure to the patients behind it
    colour: str = ""  # a CSS colour for charts; accessible palette chosen by the metric


Months = Sequence[date]
Computed = dict[date, dict[str, Value]]
Breakdown = list[tuple[str, Any, dict[str, Value]]]  # (key, label, part → value)


@dataclass(frozen=True)
class Metric:
    key: str
    title: Any  # lazy text
    definition: Any  # lazy text: numerator, denominator, period (the footnote on screen)
    kind: str  # "share" (a proportion), "count", "hours", "days", "score"
    parts: tuple[Part, ...]
    compute: Callable[[Cohort, Months], Computed]
    # The patient ids behind one part in one month (drill-down), or None when not patient-based.
    patients: Callable[[Cohort, date, str], list[int]] | None = None
    # Named breakdowns for one month, e.g. {"department": …, "staff": …, "channel": …}.
    breakdowns: dict[str, Callable[[Cohort, date], Breakdown]] = field(default_factory=dict)
    group: str = "care"  # the dashboard section: care, adherence, operations, engagement, outcomes
    headline: str = ""  # the part shown as the metric's headline figure
    target: float | None = None  # a goal line on charts (e.g. 0.8), when one is defined


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.key in METRICS:
        raise ValueError(f"metric {metric.key!r} registered twice")
    METRICS[metric.key] = metric
    return metric


def all_metrics() -> dict[str, Metric]:
    """Every metric, its module imported."""
    from careloop.analytics import metrics  # noqa: F401  (registers on import)

    return METRICS

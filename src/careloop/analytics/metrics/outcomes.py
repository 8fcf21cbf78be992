"""Outcomes the seeds quote (metrics.md, "Satisfaction and outcomes"): 30-day readmission and
post-discharge revisits, each defined on its screen.

"Unnecessary revisits" are not computed: whether a visit was unnecessary is a clinical
judgement the record does not hold. The revisit metric shows instead the emergency visits
within 7 days of discharge (an unplanned return), which the record does hold.

Grouped SQL over the months asked for, scoped to the cohort's living patients (see
operations.py for the shared helpers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from careloop.analytics.metrics.operations import (
    BAD,
    GOOD,
    WARNING,
    Grouped,
    Window,
    as_breakdown,
    department_labels,
    month_case,
    none_value,
    per_month,
    scoped,
    span,
    split_counts,
    windows,
)
from careloop.analytics.registry import (
    Breakdown,
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    register,
)
from careloop.analytics.registry import Value as Figure

READMISSION_DAYS = 30
REVISIT_DAYS = 30
EMERGENCY_DAYS = 7


def _encounters() -> Any:
    from careloop.patients import models as pm

    return pm.Encounter.objects.filter(deleted_at__isnull=True)


def _after_discharge(kinds: Sequence[str], days: int) -> Any:
    """Encounters of the patient of the outer discharge, of `kinds`, starting 1 to `days` days
    after its discharge day."""
    return _encounters().filter(
        patient_id=OuterRef("patient_id"),
        kind__in=kinds,
        admitted_on__gt=OuterRef("discharged_on"),
        admitted_on__lte=OuterRef("discharged_on") + timedelta(days=days),
    )


def _discharges(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    """Inpatient stays discharged in the windows, with `m` and `g` (the discharging
    department, or nothing)."""
    from careloop.appointments import models as apm

    readmitted = _after_discharge(["inpatient"], READMISSION_DAYS).exclude(pk=OuterRef("pk"))
    revisit = _after_discharge(["outpatient", "follow_up"], REVISIT_DAYS)
    attended = apm.Appointment.objects.filter(
        patient_id=OuterRef("patient_id"),
        status=apm.Appointment.Status.COMPLETED,
        local_date__gt=OuterRef("discharged_on"),
        local_date__lte=OuterRef("discharged_on") + timedelta(days=REVISIT_DAYS),
    )
    emergency = _after_discharge(["emergency"], EMERGENCY_DAYS)
    return (
        scoped(
            _encounters().filter(organisation_id=cohort.organisation_id, kind="inpatient"),
            cohort,
            department="department_id",
        )
        .filter(span("discharged_on", wins, "date"))
        .annotate(
            m=month_case("discharged_on", wins, "date"),
            g=F("department_id") if group == "department" else none_value(),
            readmitted=Exists(readmitted),
            revisited=Q(Exists(revisit)) | Q(Exists(attended)),
            emergency=Exists(emergency),
        )
    )


# --- readmission ----------------------------------------------------------------------------


def _readmissions(cohort: Cohort, wins: Sequence[Window], group: str) -> Grouped:
    return split_counts(
        _discharges(cohort, wins, group), Q(readmitted=True), ("readmitted", "not_readmitted")
    )


def readmission_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, ("readmitted", "not_readmitted"), _readmissions)


def readmission_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _discharges(cohort, windows(cohort, [month]), "").filter(
        m=0, readmitted=part == "readmitted"
    )
    return sorted(set(qs.values_list("patient_id", flat=True)))


def readmission_by_department(cohort: Cohort, month: date) -> Breakdown:
    found = _readmissions(cohort, windows(cohort, [month]), "department")
    rows = {g: parts for (_m, g), parts in found.items()}
    return as_breakdown(rows, department_labels(rows))


register(
    Metric(
        key="readmission_30d",
        title=_("30-day readmission"),
        definition=_(
            "Inpatient stays discharged in the month after which the same patient was admitted "
            "again as an inpatient 1 to 30 days after the discharge day (in any department) ÷ "
            "inpatient stays discharged in the month. A new admission on the discharge day "
            "itself is taken as a transfer, not a readmission. Month: the calendar month of the "
            "discharge day, up to the as-of day; readmissions count as they happen. Deleted "
            "visits and dead patients are excluded. By department: the discharging department."
        ),
        kind="share",
        parts=(
            Part("readmitted", _("Readmitted within 30 days"), colour=BAD),
            Part("not_readmitted", _("Not readmitted"), colour=GOOD),
        ),
        compute=readmission_compute,
        patients=readmission_patients,
        breakdowns={"department": readmission_by_department},
        group="outcomes",
        headline="readmitted",
    )
)


# --- revisits after discharge ---------------------------------------------------------------

REVISIT_PARTS = ("revisited", "not_revisited", "emergency_7d")


def _revisits(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> dict[tuple[int, Any], dict[str, Figure]]:
    rows = (
        _discharges(cohort, wins, group)
        .order_by()
        .values("m", "g")
        .annotate(
            n=Count("patient_id", distinct=True),
            back=Count("patient_id", distinct=True, filter=Q(revisited=True)),
            er=Count("patient_id", distinct=True, filter=Q(emergency=True)),
        )
    )
    out = {}
    for r in rows:
        if r["m"] is not None:
            n = r["n"]
            out[(r["m"], r["g"])] = {
                "revisited": Figure(r["back"], n),
                "not_revisited": Figure(n - r["back"], n),
                "emergency_7d": Figure(r["er"], n),
            }
    return out


def revisit_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, REVISIT_PARTS, _revisits)


def revisit_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _discharges(cohort, windows(cohort, [month]), "").filter(m=0)
    if part == "emergency_7d":
        return sorted(set(qs.filter(emergency=True).values_list("patient_id", flat=True)))
    revisited = set(qs.filter(revisited=True).values_list("patient_id", flat=True))
    if part == "revisited":
        return sorted(revisited)
    return sorted(set(qs.values_list("patient_id", flat=True)) - revisited)


def revisit_by_department(cohort: Cohort, month: date) -> Breakdown:
    found = _revisits(cohort, windows(cohort, [month]), "department")
    rows = {g: parts for (_m, g), parts in found.items()}
    return as_breakdown(rows, department_labels(rows))


register(
    Metric(
        key="revisit_rate",
        title=_("Revisit after discharge"),
        definition=_(
            "Patients discharged from an inpatient stay in the month who had an outpatient or "
            "follow-up visit (a recorded visit, or an appointment attended) 1 to 30 days after "
            "a discharge day ÷ patients discharged in the month. Emergency within 7 days: "
            "discharged patients with an emergency visit 1 to 7 days after a discharge day ÷ "
            "patients discharged in the month (an unplanned return). Whether a revisit was "
            "unnecessary needs a clinical review the record does not hold, so it is not shown. "
            "Month: the calendar month of the discharge day, up to the as-of day. Deleted visits "
            "and dead patients are excluded. By department: the discharging department."
        ),
        kind="share",
        parts=(
            Part("revisited", _("Revisited within 30 days"), colour=GOOD),
            Part("not_revisited", _("No revisit"), colour=BAD),
            Part("emergency_7d", _("Emergency visit within 7 days"), colour=WARNING),
        ),
        compute=revisit_compute,
        patients=revisit_patients,
        breakdowns={"department": revisit_by_department},
        group="outcomes",
        headline="revisited",
    )
)

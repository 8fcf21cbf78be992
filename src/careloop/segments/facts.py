"""The facts segment rules are evaluated on, for every patient of an organisation at once.

Each fact comes from one aggregate query over the organisation's patients (or the given ones),
never a query per patient. Windows end at ``as_of``: now when ``today`` is the organisation's
today, else the end of ``today`` in the organisation's time zone.

- ``pdc``: the lowest PDC (rolling 12 months, careloop.analytics.pdc) among the drug classes the
  patient is eligible for; None without two fills of any class.
- ``missed_doses_7d``: medication reminders due in the 7 days before ``as_of`` (less a 12-hour
  grace to answer) that were sent but not acknowledged, or answered "skipped".
- ``last_sbp`` / ``last_dbp``: the newest blood pressure reading.
- ``conditions``: ICD-10 categories (e.g. "I10") of the active conditions; ``condition_count``,
  ``has_hypertension``, ``has_diabetes`` from them.
- ``days_since_surgical_discharge``: days since the latest discharge from an inpatient stay in a
  surgical department (its code or name says surgery or orthopaedics).
- ``ack_rate_30d``: acknowledged ÷ sent (an attempt accepted or delivered) of the reminders due
  in the last 30 days; ``reminders_sent_30d`` the denominator.
- ``reads_30d``, ``questionnaires_30d``, ``readings_30d``: education items read through,
  questionnaires completed, readings taken in the last 30 days.
- ``risk_score``: the latest risk score (careloop.risk), None when the patient has none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, Max, OuterRef, Q

from careloop.kit.clock import utc_now

SURGICAL_WORDS = ("surg", "ortho", "外科", "骨科")
MISSED_GRACE = timedelta(hours=12)


def organisation_zone(organisation_id: int) -> ZoneInfo:
    from careloop.accounts.models import Organisation

    name = (
        Organisation.objects.filter(pk=organisation_id).values_list("time_zone", flat=True).first()
    )
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def as_of_moment(organisation_id: int, today: date | None) -> tuple[date, datetime]:
    """The organisation-local day and the moment the facts are taken at."""
    tz = organisation_zone(organisation_id)
    now = utc_now()
    local_today = now.astimezone(tz).date()
    day = today or local_today
    if day >= local_today:
        return day, now
    return day, datetime.combine(day + timedelta(days=1), time(0), tz)


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _patients(organisation_id: int, patient_ids: Iterable[int] | None) -> Any:
    from careloop.patients import models as pm

    qs = pm.Patient.objects.filter(
        organisation_id=organisation_id, merged_into__isnull=True, deceased_on__isnull=True
    )
    if patient_ids is not None:
        qs = qs.filter(pk__in=list(patient_ids))
    return qs


def facts_for(
    organisation_id: int, today: date | None = None, patient_ids: Iterable[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Every fact of every (or each given) living, unmerged patient of the organisation."""
    from careloop.analytics import pdc as pdc_module
    from careloop.analytics.registry import CONDITION_PREFIXES
    from careloop.education import models as em
    from careloop.observations import models as om
    from careloop.patients import models as pm
    from careloop.questionnaires import models as qm
    from careloop.reminders import models as rm

    day, as_of = as_of_moment(organisation_id, today)
    ids = list(patient_ids) if patient_ids is not None else None
    patients = _patients(organisation_id, ids)
    out: dict[int, dict[str, Any]] = {}
    for pid, born, sex in patients.values_list("pk", "date_of_birth", "sex"):
        out[pid] = {
            "age": _age(born, day),
            "sex": sex,
            "pdc": None,
            "missed_doses_7d": 0,
            "last_sbp": None,
            "last_dbp": None,
            "conditions": [],
            "condition_count": 0,
            "has_hypertension": False,
            "has_diabetes": False,
            "days_since_surgical_discharge": None,
            "ack_rate_30d": None,
            "reminders_sent_30d": 0,
            "reads_30d": 0,
            "questionnaires_30d": 0,
            "readings_30d": 0,
            "risk_score": None,
        }
    if not out:
        return out
    scope = Q(organisation_id=organisation_id)
    if ids is not None:
        scope &= Q(patient_id__in=ids)
    month_ago = as_of - timedelta(days=30)

    # Conditions: active, undeleted; ICD-10 categories.
    codes: dict[int, set[str]] = defaultdict(set)
    condition_rows = (
        pm.Condition.objects.filter(scope, deleted_at__isnull=True)
        .exclude(status__in=["resolved", "inactive"])
        .values_list("patient_id", "icd10_code")
    )
    for pid, code in condition_rows:
        if pid in out and code:
            codes[pid].add(code.strip().upper()[:3])
    for pid, found in codes.items():
        facts = out[pid]
        facts["conditions"] = sorted(found)
        facts["condition_count"] = len(found)
        facts["has_hypertension"] = any(
            c.startswith(CONDITION_PREFIXES["hypertension"]) for c in found
        )
        facts["has_diabetes"] = any(c.startswith(CONDITION_PREFIXES["diabetes"]) for c in found)

    # PDC: the lowest eligible class PDC over the rolling 12 months.
    first, last = pdc_module.rolling_period(day)
    patient_sql = patients.values_list("pk").query.sql_with_params()
    result = pdc_module.pdc(organisation_id, first, last, (patient_sql[0], tuple(patient_sql[1])))
    for pid, value, eligible in zip(
        result.patient.tolist(), result.pdc.tolist(), result.eligible.tolist(), strict=True
    ):
        if eligible and pid in out:
            current = out[pid]["pdc"]
            share = round(value / 10000, 4)
            out[pid]["pdc"] = share if current is None else min(current, share)

    # Reminders sent in the last 30 days, and how many were acknowledged.
    sent = rm.Attempt.objects.filter(
        occurrence=OuterRef("pk"), outcome__in=["accepted", "delivered"]
    )
    sent_rows = (
        rm.Occurrence.objects.filter(scope, due_at__gte=month_ago, due_at__lt=as_of)
        .filter(Exists(sent))
        .values("patient_id")
        .annotate(n=Count("id"), acked=Count("id", filter=Q(acknowledged_at__isnull=False)))
    )
    for sent_row in sent_rows:
        target = out.get(sent_row["patient_id"])
        if target is not None and sent_row["n"]:
            target["reminders_sent_30d"] = sent_row["n"]
            target["ack_rate_30d"] = round(sent_row["acked"] / sent_row["n"], 4)

    # Missed doses: sent but unanswered, or answered "skipped".
    missed_rows = (
        rm.Occurrence.objects.filter(
            scope,
            kind="medication",
            due_at__gte=as_of - timedelta(days=7) - MISSED_GRACE,
            due_at__lt=as_of - MISSED_GRACE,
        )
        .exclude(status__in=["scheduled", "cancelled", "skipped"])
        .filter(Q(acknowledged_at__isnull=True) | Q(intake__status="skipped"))
        .values("patient_id")
        .annotate(n=Count("id"))
    )
    for missed_row in missed_rows:
        if missed_row["patient_id"] in out:
            out[missed_row["patient_id"]]["missed_doses_7d"] = missed_row["n"]

    # The newest blood pressure.
    for pid, sbp, dbp in om.Latest.objects.filter(
        scope, kind="bp", last_at__isnull=False, last_at__lt=as_of
    ).values_list("patient_id", "value", "value2"):
        if pid in out:
            out[pid]["last_sbp"] = sbp
            out[pid]["last_dbp"] = dbp

    # Readings, education read through, questionnaires completed: last 30 days.
    counts = (
        (
            "readings_30d",
            om.Observation.objects.filter(
                scope, effective_at__gte=month_ago, effective_at__lt=as_of
            ),
        ),
        (
            "reads_30d",
            em.ContentRead.objects.filter(
                scope, event="read_through", at__gte=month_ago, at__lt=as_of
            ),
        ),
        (
            "questionnaires_30d",
            qm.Response.objects.filter(
                scope, status="completed", completed_at__gte=month_ago, completed_at__lt=as_of
            ),
        ),
    )
    for key, qs in counts:
        for pid, n in (
            qs.values("patient_id").annotate(n=Count("id")).values_list("patient_id", "n")
        ):
            if pid in out:
                out[pid][key] = n

    # Surgical discharges.
    surgical = Q()
    for word in SURGICAL_WORDS:
        surgical |= Q(department__code__icontains=word) | Q(department__name__icontains=word)
        surgical |= Q(department__name_en__icontains=word)
    surgery_rows = (
        pm.Encounter.objects.filter(
            scope,
            surgical,
            deleted_at__isnull=True,
            kind="inpatient",
            discharged_on__isnull=False,
            discharged_on__lte=day,
        )
        .values("patient_id")
        .annotate(last=Max("discharged_on"))
    )
    for surgery_row in surgery_rows:
        if surgery_row["patient_id"] in out:
            days = (day - surgery_row["last"]).days
            out[surgery_row["patient_id"]]["days_since_surgical_discharge"] = days

    for pid, score in risk_scores(organisation_id).items():
        if pid in out:
            out[pid]["risk_score"] = round(float(score), 4)
    return out


def risk_scores(organisation_id: int) -> dict[int, float]:
    """The latest risk score per patient, or nothing when the risk model is not there."""
    try:
        from careloop.risk import selectors as risk_selectors
    except ImportError:
        return {}
    latest = getattr(risk_selectors, "latest_scores", None)
    if latest is None:
        return {}
    return dict(latest(organisation_id) or {})

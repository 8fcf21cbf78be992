"""Reads of segments: a patient's segments and history, the overview and the member lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import translation

from careloop.accounts.actor import Actor
from careloop.kit.pagination import Page, paginate
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.segments import models as sm
from careloop.segments import services, strategies
from careloop.segments.facts import as_of_moment

CHART_DAYS = 90


def _language() -> str:
    return translation.get_language() or "zh-hans"


def for_patient(patient: pm.Patient) -> list[dict[str, Any]]:
    """The segments the patient is in now: code, name, since, strategy (short text)."""
    language = _language()
    rows = (
        sm.Membership.objects.filter(patient_id=patient.pk, left_at__isnull=True)
        .select_related("segment")
        .order_by("segment__priority", "segment__code")
    )
    return [
        {
            "code": m.segment.code,
            "name": m.segment.label(language),
            "since": m.entered_at,
            "strategy": strategies.describe(m.segment.strategy),
        }
        for m in rows
    ]


def history_for(patient: pm.Patient, limit: int = 10) -> list[dict[str, Any]]:
    """The patient's latest stays in segments, newest first: code, name, entered_at, left_at."""
    language = _language()
    rows = (
        sm.Membership.objects.filter(patient_id=patient.pk)
        .select_related("segment")
        .order_by("-entered_at", "-id")[: max(1, min(int(limit), 100))]
    )
    return [
        {
            "code": m.segment.code,
            "name": m.segment.label(language),
            "entered_at": m.entered_at,
            "left_at": m.left_at,
        }
        for m in rows
    ]


@dataclass
class Row:
    segment: sm.Segment
    name: str
    members: int
    strategy: str
    shared: bool


def overview(actor: Actor) -> list[Row]:
    """Every segment the organisation uses (inactive ones too) with its current member count."""
    org = actor.organisation_id or 0
    language = _language()
    counts = dict(
        sm.Membership.objects.filter(organisation_id=org, left_at__isnull=True)
        .values("segment_id")
        .annotate(n=Count("id"))
        .values_list("segment_id", "n")
    )
    return [
        Row(
            segment=s,
            name=s.label(language),
            members=counts.get(s.pk, 0),
            strategy=strategies.describe(s.strategy),
            shared=s.organisation_id is None,
        )
        for s in services.segments_for(org, active_only=False)
    ]


def chart(actor: Actor, rows: list[Row]) -> dict[str, Any]:
    """Members per segment on each of the last 90 organisation-local days (from the daily runs;
    a day without a run shows no value)."""
    org = actor.organisation_id or 0
    today, _now = as_of_moment(org, None)
    first = today - timedelta(days=CHART_DAYS - 1)
    runs = {
        r.day: r.counts or {}
        for r in sm.Run.objects.filter(organisation_id=org, day__gte=first, day__lte=today)
        .exclude(finished_at=None)
        .only("day", "counts")
    }
    days = [first + timedelta(days=i) for i in range(CHART_DAYS)]
    series = []
    for row in rows:
        if not row.segment.active:
            continue
        code = row.segment.code
        series.append(
            {
                "label": row.name,
                "data": [runs[d].get(code) if d in runs else None for d in days],
            }
        )
    return {"labels": [d.isoformat() for d in days], "series": series}


def recent_changes(actor: Actor, segment: sm.Segment, *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest entries and exits of the segment among the patients the actor may see."""
    visible = patient_selectors.visible_patients(actor).values("pk")
    rows = (
        sm.Membership.objects.filter(
            organisation_id=actor.organisation_id or 0, segment=segment, patient_id__in=visible
        )
        .select_related("patient")
        .order_by("-entered_at", "-id")[: limit * 2]
    )
    events: list[dict[str, Any]] = []
    for m in rows:
        events.append({"patient": m.patient, "event": "entered", "at": m.entered_at})
        if m.left_at:
            events.append({"patient": m.patient, "event": "left", "at": m.left_at})
    events.sort(key=lambda e: e["at"], reverse=True)
    return events[:limit]


def members(
    actor: Actor,
    segment: sm.Segment,
    *,
    q: str = "",
    department: int | None = None,
) -> QuerySet[pm.Patient]:
    """Patients in the segment now that the actor may see, by name and record number."""
    qs = patient_selectors.visible_patients(actor).filter(
        Exists(
            sm.Membership.objects.filter(
                patient_id=OuterRef("pk"), segment=segment, left_at__isnull=True
            )
        )
    )
    if department:
        qs = qs.filter(
            Exists(
                pm.PatientDepartment.objects.filter(
                    patient_id=OuterRef("pk"), department_id=department
                )
            )
        )
    q = q.strip()
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(record_number__icontains=q))
    return qs.order_by("name", "pk")


def member_rows(segment: sm.Segment, patients: list[pm.Patient]) -> list[dict[str, Any]]:
    """Table rows for a page of members: since when, departments, facts at entry."""
    ids = [p.pk for p in patients]
    stays = {
        m.patient_id: m
        for m in sm.Membership.objects.filter(
            segment=segment, patient_id__in=ids, left_at__isnull=True
        )
    }
    departments: dict[int, list[str]] = {}
    language = _language()
    for link in pm.PatientDepartment.objects.filter(patient_id__in=ids).select_related(
        "department"
    ):
        departments.setdefault(link.patient_id, []).append(link.department.label(language))
    rows = []
    for p in patients:
        stay = stays.get(p.pk)
        facts = (stay.facts if stay else {}) or {}
        rows.append(
            {
                "patient": p,
                "since": stay.entered_at if stay else None,
                "departments": departments.get(p.pk, []),
                "pdc": facts.get("pdc"),
                "missed": facts.get("missed_doses_7d"),
                "bp": (
                    f"{facts['last_sbp']:.0f}/{facts['last_dbp']:.0f}"
                    if facts.get("last_sbp") is not None and facts.get("last_dbp") is not None
                    else ""
                ),
                "ack_rate": facts.get("ack_rate_30d"),
                "risk_score": facts.get("risk_score"),
            }
        )
    return rows


def page_of_members(
    actor: Actor,
    segment: sm.Segment,
    *,
    q: str = "",
    department: int | None = None,
    page: Any = 1,
    size: Any = 25,
) -> tuple[Page, list[dict[str, Any]]]:
    found = paginate(members(actor, segment, q=q, department=department), page, size)
    return found, member_rows(segment, found.items)


def departments(actor: Actor) -> list[tuple[int, str]]:
    from careloop.accounts.models import Department

    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(pk__in=actor.department_ids)
    language = _language()
    return [(d.pk, d.label(language)) for d in qs.order_by("code")]


def last_run(actor: Actor) -> sm.Run | None:
    return (
        sm.Run.objects.filter(organisation_id=actor.organisation_id or 0)
        .exclude(finished_at=None)
        .order_by("-day")
        .first()
    )


def today_of(actor: Actor) -> date:
    return as_of_moment(actor.organisation_id or 0, None)[0]

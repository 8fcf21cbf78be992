"""Reads of care plans and their reminders for the staff pages, scoped to the acting user.

Scope comes from the patient: an enrolment or reminder of a patient outside the actor's
departments does not exist for the actor (NotFound). Callers audit what they show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from django.db.models import Prefetch, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.accounts.roles import Action
from careloop.careplans import domain, services
from careloop.careplans import models as cm
from careloop.kit.errors import NotFound
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.reminders import models as rm

# Channels that reach the patient outside CareLoop, and so need consent.
EXTERNAL_CHANNELS = ("sms", "wechat", "voice", "push", "email")


def patient(actor: Actor, patient_id: int, *actions: Action) -> pm.Patient:
    """The patient if the role allows every action (403) and the patient is in scope (404)."""
    for action in (Action.PATIENT_VIEW, *actions):
        patient_selectors.require(actor, action, patient_id=patient_id)
    return patient_selectors.get_patient(actor, patient_id, audit_read=False)


def enrolment(actor: Actor, enrolment_id: int, *actions: Action) -> cm.Enrolment:
    """An enrolment of a patient in scope, checked like ``patient``."""
    found = (
        cm.Enrolment.objects.select_related("template", "patient", "department", "enrolled_by")
        .filter(pk=enrolment_id, organisation_id=actor.organisation_id or 0)
        .first()
    )
    if found is None:
        raise NotFound()
    patient(actor, found.patient_id, *actions)
    return found


def enrolments_of(p: pm.Patient) -> list[cm.Enrolment]:
    """A patient's enrolments: active ones first, then the most recently started."""
    rows = cm.Enrolment.objects.filter(patient=p).select_related("template", "department")
    return sorted(rows, key=lambda e: (e.status != cm.Enrolment.Status.ACTIVE, -e.pk))


def active_template_ids(p: pm.Patient) -> set[int]:
    """Plans the patient is enrolled in now (a plan cannot be joined twice at once)."""
    return set(
        cm.Enrolment.objects.filter(patient=p, status=cm.Enrolment.Status.ACTIVE).values_list(
            "template_id", flat=True
        )
    )


def departments_for(actor: Actor, p: pm.Patient) -> list[Department]:
    """The patient's departments the actor works in: an enrolment may be filed under one."""
    ids = set(p.department_links.values_list("department_id", flat=True))
    if not actor.is_org_wide:
        ids &= set(actor.department_ids)
    return list(Department.objects.filter(pk__in=ids).order_by("pk"))


def visible_enrolments(
    actor: Actor, *, template_id: int | None = None, status: str = ""
) -> QuerySet[cm.Enrolment]:
    qs = cm.Enrolment.objects.filter(
        organisation_id=actor.organisation_id or 0,
        patient__in=patient_selectors.visible_patients(actor),
    ).select_related("template", "patient", "department")
    if template_id:
        qs = qs.filter(template_id=template_id)
    if status in cm.Enrolment.Status.values:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def templates(actor: Actor) -> list[cm.PlanTemplate]:
    return list(services.templates_for(actor.organisation_id).prefetch_related("activities"))


def template(actor: Actor, template_id: Any) -> cm.PlanTemplate | None:
    try:
        pk = int(template_id)
    except (TypeError, ValueError):
        return None
    return services.templates_for(actor.organisation_id).filter(pk=pk).first()


def consented_channels(p: pm.Patient, purpose: str = "care_reminders") -> list[str]:
    """External channels on which the patient's latest decision for a purpose is "granted"."""
    latest: dict[str, bool] = {}
    for channel, granted in (
        pm.Consent.objects.filter(patient=p, purpose=purpose, deleted_at__isnull=True)
        .order_by("decided_on", "id")
        .values_list("channel", "granted")
    ):
        latest[channel] = granted
    return [c for c in EXTERNAL_CHANNELS if latest.get(c)]


def last_discharge(p: pm.Patient) -> date | None:
    return (
        pm.Encounter.objects.filter(patient=p, deleted_at__isnull=True, discharged_on__isnull=False)
        .order_by("-discharged_on")
        .values_list("discharged_on", flat=True)
        .first()
    )


def last_visit(p: pm.Patient) -> date | None:
    return (
        pm.Encounter.objects.filter(patient=p, deleted_at__isnull=True)
        .order_by("-admitted_on")
        .values_list("admitted_on", flat=True)
        .first()
    )


# --- the calendar ------------------------------------------------------------------------------

WHEN = ("upcoming", "past", "all")


@dataclass(frozen=True)
class CalendarFilter:
    status: str = ""
    activity: str = ""
    when: str = "upcoming"


def local_day_start(p: pm.Patient, now: datetime) -> datetime:
    """The instant the patient's current local day began."""
    tz = domain.zone(p.time_zone)
    return domain.to_utc(datetime.combine(domain.local_of(now, tz).date(), time(0, 0)), tz)


def occurrences(
    p: pm.Patient,
    flt: CalendarFilter,
    *,
    now: datetime,
    enrolment_id: int | None = None,
) -> QuerySet[rm.Occurrence]:
    """A patient's reminders (of one enrolment, or all), filtered, in calendar order.

    Upcoming: from the start of the patient's local day, earliest first. Past: before it,
    latest first. All: earliest first.
    """
    qs = (
        rm.Occurrence.objects.filter(patient=p, organisation_id=p.organisation_id)
        .select_related("intake")
        .prefetch_related(
            Prefetch("attempts", queryset=rm.Attempt.objects.order_by("started_at", "id"))
        )
    )
    if enrolment_id is not None:
        qs = qs.filter(enrolment_id=enrolment_id)
        if flt.activity:
            qs = qs.filter(activity_code=flt.activity)
    elif flt.activity:
        qs = qs.filter(kind=flt.activity)
    if flt.status in rm.Status.values:
        qs = qs.filter(status=flt.status)
    start = local_day_start(p, now)
    if flt.when == "past":
        return qs.filter(due_at__lt=start).order_by("-due_at", "-id")
    if flt.when == "upcoming":
        qs = qs.filter(due_at__gte=start)
    return qs.order_by("due_at", "id")


def kinds_of(p: pm.Patient) -> list[str]:
    return sorted(
        set(rm.Occurrence.objects.filter(patient=p).values_list("kind", flat=True).distinct())
    )


def pending_count(enrolment_id: int) -> int:
    """Reminders of an enrolment that ending it would cancel."""
    return rm.Occurrence.objects.filter(
        enrolment_id=enrolment_id, status__in=[rm.Status.SCHEDULED, rm.Status.RETRYING]
    ).count()


def preference(p: pm.Patient) -> cm.ReminderPreference:
    return services.preference_for(p)

"""Every read of schedules, slots, appointments, the queue and the overdue list: scoped to the
acting user (organisation, then departments) and audited."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Staff
from careloop.accounts.roles import Action, Role
from careloop.appointments import domain
from careloop.appointments import models as am
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound
from careloop.kit.pagination import MAX_PAGE_SIZE, Page, to_int
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

require = patient_selectors.require

A = am.Appointment
MAX_DAYS = 31
OVERDUE_WINDOW_DAYS = 365


def zone_of(organisation: Any) -> ZoneInfo:
    try:
        return ZoneInfo(organisation.time_zone)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def org_zone(actor: Actor) -> ZoneInfo:
    return zone_of(actor.user.organisation)


def today_for(actor: Actor) -> date:
    """The clinic's calendar day now (the organisation's time zone)."""
    return utc_now().astimezone(org_zone(actor)).date()


# --- departments, schedules, slots ------------------------------------------------------------


def departments(actor: Actor) -> QuerySet[Department]:
    """Departments whose clinics the actor works: their own, or every one for org admins."""
    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    return qs if actor.is_org_wide else qs.filter(pk__in=actor.department_ids)


def department(actor: Actor, department_id: Any = None) -> Department:
    """One of the actor's departments (the first when none is named); NotFound otherwise."""
    qs = departments(actor).order_by("pk")
    if department_id in (None, "", 0):
        found = qs.first()
    else:
        found = qs.filter(pk=to_int(department_id, 0, low=0, high=2**62)).first()
    if found is None:
        raise NotFound()
    return found


def doctors(actor: Actor) -> QuerySet[Staff]:
    """Staff of the organisation who can run a clinic."""
    return Staff.objects.filter(
        organisation_id=actor.organisation_id or 0,
        is_active=True,
        role__in=[Role.DOCTOR, Role.DEPT_HEAD],
    ).order_by("display_name", "username")


def visible_schedules(actor: Actor) -> QuerySet[am.ClinicSchedule]:
    return am.ClinicSchedule.objects.filter(
        organisation_id=actor.organisation_id or 0, department__in=departments(actor)
    )


def list_schedules(actor: Actor) -> list[am.ClinicSchedule]:
    require(actor, Action.SCHEDULE_MANAGE)
    return list(visible_schedules(actor).select_related("department", "doctor")[:500])


def get_schedule(actor: Actor, schedule_id: int) -> am.ClinicSchedule:
    require(actor, Action.SCHEDULE_MANAGE)
    found = visible_schedules(actor).filter(pk=schedule_id).first()
    if found is None:
        raise NotFound()
    return found


def visible_slots(actor: Actor) -> QuerySet[am.Slot]:
    return am.Slot.objects.filter(
        organisation_id=actor.organisation_id or 0, department__in=departments(actor)
    )


def get_slot(actor: Actor, slot_id: Any) -> am.Slot:
    slot_pk = to_int(slot_id, 0, low=0, high=2**62)
    found = visible_slots(actor).filter(pk=slot_pk).select_related("department").first()
    if found is None:
        audit.record_denied(actor, "slot.read", object_id=slot_pk, detail={"reason": "scope"})
        raise NotFound()
    return found


def slots(actor: Actor, department_id: Any, first: date, days: int = 1) -> list[am.Slot]:
    """The slots of one department over ``days`` days from ``first`` (at most a month)."""
    require(actor, Action.APPOINTMENT_BOOK)
    dept = department(actor, department_id)
    days = max(1, min(MAX_DAYS, days))
    rows = list(
        visible_slots(actor)
        .filter(department=dept, local_date__gte=first, local_date__lt=first + timedelta(days))
        .select_related("doctor")
        .order_by("starts_at", "id")
    )
    audit.record(
        actor,
        "slot.list",
        detail={"department": dept.pk, "from": first.isoformat(), "days": days},
    )
    return rows


# --- appointments -----------------------------------------------------------------------------


def visible_appointments(actor: Actor) -> QuerySet[am.Appointment]:
    """Appointments in the clinics of the actor's departments (every one, for org admins)."""
    return A.objects.filter(
        organisation_id=actor.organisation_id or 0, department__in=departments(actor)
    )


def get_appointment(
    actor: Actor, appointment_id: Any, *, action: Action = Action.APPOINTMENT_BOOK
) -> am.Appointment:
    """One appointment the actor may see (404, audited, otherwise)."""
    require(actor, action)
    require(actor, Action.PATIENT_VIEW)
    pk = to_int(appointment_id, 0, low=0, high=2**62)
    found = (
        visible_appointments(actor)
        .filter(pk=pk)
        .select_related("patient", "slot", "department", "doctor", "booked_by")
        .first()
    )
    if found is None:
        audit.record_denied(
            actor,
            "appointment.read",
            object_type="appointments.appointment",
            object_id=pk,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return found


def read_appointment(actor: Actor, appointment_id: Any) -> am.Appointment:
    """get_appointment, audited as a read of the patient's appointment."""
    appt = get_appointment(actor, appointment_id)
    audit.record(actor, "appointment.read", patient_id=appt.patient_id, obj=appt)
    return appt


@dataclass
class DaySlot:
    slot: am.Slot
    appointments: list[am.Appointment] = field(default_factory=list)


def day(actor: Actor, department_id: Any, on: date) -> tuple[Department, list[DaySlot]]:
    """The clinic day of a department: every slot and who is booked in it."""
    require(actor, Action.APPOINTMENT_BOOK)
    require(actor, Action.PATIENT_VIEW)
    dept = department(actor, department_id)
    rows = [
        DaySlot(s)
        for s in visible_slots(actor)
        .filter(department=dept, local_date=on)
        .select_related("doctor")
        .order_by("starts_at", "id")
    ]
    by_slot = {r.slot.pk: r for r in rows}
    appts = (
        visible_appointments(actor)
        .filter(slot_id__in=list(by_slot))
        .exclude(status=A.Status.CANCELLED)
        .select_related("patient")
        .order_by("starts_at", "queue_number", "id")
    )
    for appt in appts:
        by_slot[appt.slot_id].appointments.append(appt)
    audit.record(
        actor,
        "appointment.list",
        detail={
            "department": dept.pk,
            "date": on.isoformat(),
            "results": sum(len(r.appointments) for r in rows),
        },
    )
    return dept, rows


def patient_appointments(actor: Actor, patient_id: int) -> tuple[pm.Patient, list[am.Appointment]]:
    """A patient's appointments (newest first) in the actor's departments."""
    require(actor, Action.APPOINTMENT_BOOK, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    rows = list(
        visible_appointments(actor)
        .filter(patient=patient)
        .select_related("department", "doctor")
        .order_by("-starts_at", "-id")[:200]
    )
    audit.record(
        actor,
        "appointment.list",
        patient_id=patient.pk,
        object_type="appointments.appointment",
        detail={"count": len(rows)},
    )
    return patient, rows


# --- the queue --------------------------------------------------------------------------------


@dataclass
class Queue:
    department: Department
    day: date
    serving: list[am.Appointment]  # called in, not finished
    waiting: list[am.Appointment]  # checked in, not called, by queue number
    expected: list[am.Appointment]  # booked, not checked in yet
    done: list[am.Appointment]  # completed or did not come

    @property
    def position(self) -> dict[int, int]:
        return {a.pk: i + 1 for i, a in enumerate(self.waiting)}


def waiting_ids(department_id: int, on: date) -> list[int]:
    """Checked-in, not yet called appointments of a department's day, front first."""
    return list(
        A.objects.filter(
            department_id=department_id,
            local_date=on,
            status=A.Status.CHECKED_IN,
            called_at__isnull=True,
        )
        .order_by("queue_number", "id")
        .values_list("pk", flat=True)
    )


def queue(actor: Actor, department_id: Any, on: date | None = None) -> Queue:
    require(actor, Action.APPOINTMENT_BOOK)
    require(actor, Action.PATIENT_VIEW)
    dept = department(actor, department_id)
    on = on or today_for(actor)
    rows = list(
        visible_appointments(actor)
        .filter(department=dept, local_date=on)
        .exclude(status=A.Status.CANCELLED)
        .select_related("patient", "doctor")
        .order_by("queue_number", "starts_at", "id")
    )
    q = Queue(dept, on, [], [], [], [])
    for a in rows:
        if a.status == A.Status.CHECKED_IN:
            (q.serving if a.called_at else q.waiting).append(a)
        elif a.status == A.Status.BOOKED:
            q.expected.append(a)
        else:
            q.done.append(a)
    q.expected.sort(key=lambda a: (a.starts_at, a.pk))
    audit.record(
        actor,
        "queue.read",
        detail={"department": dept.pk, "date": on.isoformat(), "results": len(rows)},
    )
    return q


# --- the overdue list (metrics.md, "Overdue and return to care") -----------------------------


@dataclass
class OverdueRow:
    patient: pm.Patient
    source: str  # "appointment", "revisit" or "call"
    scheduled: date
    days_overdue: int
    missed: int
    department_id: int | None
    object_id: int
    high_priority: bool = False
    last_result: am.CallResult | None = None
    object_patient_id: int = 0  # the patient's id, before the patient row is loaded


@dataclass
class OverdueCriteria:
    department: int | None = None
    source: str = ""
    min_days: int = 0
    q: str = ""
    page: Any = 1
    size: Any = 25


SOURCES = ("appointment", "revisit", "call")


# Coded with or without the dot (I25.2 / I252); the domain function decides.
_CARDIOVASCULAR_CODES = Q(icd10_code__istartswith="I25.2")
for _prefix in domain.CARDIOVASCULAR_EVENT_CODES:
    _CARDIOVASCULAR_CODES |= Q(icd10_code__istartswith=_prefix)


def high_priority(patient_ids: Iterable[int], rows: dict[int, OverdueRow]) -> set[int]:
    """Patients whose overdue follow-up is high priority (metrics.md: last BP ≥ 180/110, or a
    prior heart attack or stroke with last BP ≥ 140/90, or last glucose in the highest band,
    unless overdue less than 30 days). System read: the caller has already scoped the rows."""
    from careloop.observations import domain as observation_domain
    from careloop.observations import selectors as observation_selectors

    pids = [
        pid
        for pid in patient_ids
        if pid in rows and rows[pid].days_overdue >= domain.HIGH_PRIORITY_MIN_DAYS
    ]
    found: set[int] = set()
    for start in range(0, len(pids), 1000):
        part = pids[start : start + 1000]
        latest = observation_selectors.latest_for(part, ("bp", "glucose", "hba1c"))
        events = {
            pid
            for pid, code in pm.Condition.objects.filter(
                patient_id__in=part, deleted_at__isnull=True
            )
            .filter(_CARDIOVASCULAR_CODES)
            .values_list("patient_id", "icd10_code")
            if domain.is_cardiovascular_event(code)
        }
        for pid in part:
            bp = latest.get((pid, "bp"))
            sugar: tuple[str, float] | None = None
            # The last blood-sugar measure, whichever kind came last (glucose or HbA1c).
            glucose, hba1c = latest.get((pid, "glucose")), latest.get((pid, "hba1c"))
            if glucose is not None and glucose.value is not None:
                sugar = (glucose.context or "random", observation_domain.mg_dl(glucose.value))
            if (
                hba1c is not None
                and hba1c.value is not None
                and (glucose is None or _later(hba1c.last_at, glucose.last_at))
            ):
                sugar = ("hba1c", hba1c.value)
            if domain.high_priority(
                days_overdue=rows[pid].days_overdue,
                bp=(bp.value, bp.value2) if bp is not None and bp.value is not None else None,
                sugar=sugar,
                prior_event=pid in events,
            ):
                found.add(pid)
    return found


def _later(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and (b is None or a > b)


def overdue(actor: Actor, criteria: OverdueCriteria | None = None) -> Page:
    """One page of the overdue list (see `ranked_overdue`), audited."""
    c = criteria or OverdueCriteria()
    rows = ranked_overdue(actor, c)
    size = to_int(c.size, 25, low=1, high=MAX_PAGE_SIZE)
    pages = max(1, -(-len(rows) // size))
    number = to_int(c.page, 1, low=1, high=pages)
    chosen = with_patients(rows[(number - 1) * size : number * size])
    audit.record(
        actor,
        "overdue.list",
        detail={
            "criteria": sorted(
                k for k in ("department", "source", "min_days", "q") if getattr(c, k)
            ),
            "results": len(rows),
        },
    )
    return Page(items=chosen, number=number, size=size, total=len(rows))


def with_patients(rows: list[OverdueRow]) -> list[OverdueRow]:
    """The rows with their patient loaded (only the rows shown need it)."""
    names = pm.Patient.objects.in_bulk([r.object_patient_id for r in rows])
    for row in rows:
        row.patient = names[row.object_patient_id]
    return rows


def ranked_overdue(actor: Actor, criteria: OverdueCriteria | None = None) -> list[OverdueRow]:
    """Patients with a scheduled follow-up whose date has passed without a visit, high
    priority first, then the longest overdue (not audited: callers audit what they show).

    A follow-up is a missed appointment (did not come, or still booked after its day) or a plan
    reminder of kind revisit or call whose date passed unacknowledged. Only follow-ups of the
    last 365 days count; the patient is alive; nobody has postponed the patient (a call result
    with a "remind on" date in the future) or removed them after the follow-up; and no visit
    (an appointment attended or booked, or a recorded encounter) has happened on or after its
    date. One row per patient: the latest such follow-up, with the number missed.
    """
    require(actor, Action.APPOINTMENT_BOOK)
    require(actor, Action.PATIENT_VIEW)
    c = criteria or OverdueCriteria()
    today = today_for(actor)
    since = today - timedelta(days=OVERDUE_WINDOW_DAYS)
    patients = patient_selectors.visible_patients(actor).filter(deceased_on__isnull=True)
    dept_filter: int | None = None
    if c.department:
        dept_filter = department(actor, c.department).pk
        patients = patients.filter(department_links__department_id=dept_filter)
    if c.q.strip():
        patients = patients.filter(name__icontains=c.q.strip()[:100])

    items: list[tuple[int, str, date, int | None, int]] = []
    if c.source in ("", "appointment"):
        appts = visible_appointments(actor).filter(
            patient__in=patients.values("pk"),
            local_date__gte=since,
            local_date__lt=today,
            status__in=[A.Status.NO_SHOW, A.Status.BOOKED],
        )
        if dept_filter:
            appts = appts.filter(department_id=dept_filter)
        items += [
            (pid, "appointment", d, dept, pk)
            for pid, d, dept, pk in appts.values_list(
                "patient_id", "local_date", "department_id", "pk"
            )
        ]
    if c.source in ("", "revisit", "call"):
        from careloop.reminders import models as rm

        kinds = [c.source] if c.source else ["revisit", "call"]
        occs = rm.Occurrence.objects.filter(
            organisation_id=actor.organisation_id or 0,
            patient__in=patients.values("pk"),
            kind__in=kinds,
            due_at__lt=utc_now(),
            local_due__gte=since.isoformat(),
            local_due__lt=today.isoformat(),
        ).exclude(status__in=[rm.Status.ACKNOWLEDGED, rm.Status.CANCELLED, rm.Status.SKIPPED])
        items += [
            (pid, kind, date.fromisoformat(local[:10]), dept, pk)
            for pid, kind, local, dept, pk in occs.values_list(
                "patient_id", "kind", "local_due", "enrolment__department_id", "pk"
            )
        ]

    pids = {i[0] for i in items}
    visits = _last_visits(actor, pids)
    results = _last_results(pids)
    latest: dict[int, OverdueRow] = {}
    for pid, source, scheduled, dept, pk in items:
        if visits.get(pid) and visits[pid] >= scheduled:
            continue
        result = results.get(pid)
        if result is not None and (
            (result.remind_on and result.remind_on > today)
            or (result.outcome == am.CallResult.Outcome.REMOVED and result.called_on >= scheduled)
        ):
            continue
        row = latest.get(pid)
        if row is None:
            latest[pid] = OverdueRow(
                patient=None,  # type: ignore[arg-type]  # filled in below, for one page only
                source=source,
                scheduled=scheduled,
                days_overdue=domain.days_overdue(scheduled, today),
                missed=1,
                department_id=dept,
                object_id=pk,
                last_result=result,
            )
            continue
        row.missed += 1
        if scheduled > row.scheduled:
            row.source, row.scheduled, row.department_id, row.object_id = (
                source,
                scheduled,
                dept,
                pk,
            )
            row.days_overdue = domain.days_overdue(scheduled, today)

    rows = [r for r in latest.items() if r[1].days_overdue >= max(0, c.min_days)]
    # High priority first, then the longest overdue (metrics.md).
    flagged = high_priority((pid for pid, _ in rows), dict(rows))
    for pid, row in rows:
        row.high_priority = pid in flagged
        row.object_patient_id = pid
    rows.sort(key=lambda kv: (not kv[1].high_priority, -kv[1].days_overdue, kv[0]))
    return [row for _pid, row in rows]


def _last_visits(actor: Actor, patient_ids: set[int]) -> dict[int, date]:
    """The latest day each patient came, or is booked to come (appointments and encounters)."""
    if not patient_ids:
        return {}
    out: dict[int, date] = {}
    attended = A.objects.filter(
        organisation_id=actor.organisation_id or 0,
        patient_id__in=patient_ids,
        status__in=[A.Status.BOOKED, A.Status.CHECKED_IN, A.Status.COMPLETED],
    ).filter(
        Q(status__in=[A.Status.CHECKED_IN, A.Status.COMPLETED])
        | Q(local_date__gte=today_for(actor))
    )
    for pid, d in attended.values_list("patient_id", "local_date"):
        if d > out.get(pid, date.min):
            out[pid] = d
    encounters = pm.Encounter.objects.filter(
        organisation_id=actor.organisation_id or 0,
        patient_id__in=patient_ids,
        deleted_at__isnull=True,
    )
    for pid, d in encounters.values_list("patient_id", "admitted_on"):
        if d and d > out.get(pid, date.min):
            out[pid] = d
    return out


def _last_results(patient_ids: set[int]) -> dict[int, am.CallResult]:
    out: dict[int, am.CallResult] = {}
    for r in am.CallResult.objects.filter(patient_id__in=patient_ids).order_by("created_at", "id"):
        out[r.patient_id] = r
    return out

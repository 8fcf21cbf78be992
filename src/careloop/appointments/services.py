"""Every write of schedules, slots, appointments and the queue: scoped, one transaction each,
audited.

No double booking: a place is taken with a conditional UPDATE (``booked = booked + 1 WHERE
booked < capacity``) that the database evaluates on the current row, so of any number of
concurrent bookings of the last place exactly one succeeds; a CHECK constraint backs it up, and a
partial UNIQUE constraint keeps a patient from holding two active appointments in one slot.

Patients book, move and cancel their own revisits in the portal (``book_for_patient``,
``reschedule_for_patient``, ``cancel_for_patient``): the same rules as the staff functions, with
the patient's own scope and audited as the patient.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils.translation import gettext_lazy as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation, Staff
from careloop.accounts.roles import Action
from careloop.appointments import domain, selectors
from careloop.appointments import models as am
from careloop.appointments.forms import ScheduleForm
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from careloop.kit.pagination import to_int
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.patients import services as patient_services
from careloop.reminders import services as reminder_services

if TYPE_CHECKING:
    from careloop.portal.context import PortalActor

log = logging.getLogger("careloop.appointments")

A = am.Appointment
require = patient_selectors.require


class SlotFull(Conflict):
    code = "slot_full"
    default_message = _("This time is fully booked. Choose another one.")


class SlotUnavailable(Conflict):
    code = "slot_unavailable"
    default_message = _("This time is closed or already over. Choose another one.")


class AlreadyBooked(Conflict):
    code = "already_booked"
    default_message = _("This patient already has an appointment at this time.")


class WrongState(Conflict):
    code = "invalid_state"
    default_message = _("This cannot be done to the appointment in its current state.")


class NotToday(Conflict):
    code = "not_today"
    default_message = _("Patients check in on the day of their appointment.")


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = _("This Idempotency-Key was already used for a different request.")


def horizon_days() -> int:
    return int(getattr(settings, "APPOINTMENT_SLOT_DAYS", 28))


def near_positions() -> int:
    return int(getattr(settings, "QUEUE_NEAR_POSITIONS", 3))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def _version(expected: Any) -> int:
    try:
        return int(expected)
    except (TypeError, ValueError):
        raise ValidationFailed(
            details={"version": [str(_("The version of the record you edited is required."))]}
        ) from None


def _stale(obj: Any) -> StaleVersion:
    return StaleVersion(
        details={
            "current_version": obj.version,
            "changed_by": str(obj.updated_by or ""),
            "changed_at": obj.updated_at.isoformat() if obj.updated_at else None,
        }
    )


def _errors(form: Any) -> dict[str, list[str]]:
    return {name: [str(e) for e in errs] for name, errs in form.errors.items()}


# --- schedules and slots ----------------------------------------------------------------------


def schedule_form(actor: Actor, data: Any = None, **kwargs: Any) -> ScheduleForm:
    language = actor.user.language
    return ScheduleForm(
        data,
        departments=[(d.pk, d.label(language)) for d in selectors.departments(actor)],
        doctors=[(s.pk, str(s)) for s in selectors.doctors(actor)],
        **kwargs,
    )


def save_schedule(
    actor: Actor,
    data: Any,
    *,
    schedule_id: int | None = None,
    expected_version: Any = None,
) -> am.ClinicSchedule:
    """Create or change a clinic schedule, then fit its future slots to it and open new ones."""
    require(actor, Action.SCHEDULE_MANAGE)
    form = schedule_form(actor, data)
    if not form.is_valid():
        raise ValidationFailed(details=_errors(form))
    d = form.cleaned_data
    now = utc_now()
    with transaction.atomic():
        if schedule_id is None:
            schedule = am.ClinicSchedule(organisation=actor.user.organisation, created_at=now)
            action = "schedule.create"
        else:
            current = selectors.get_schedule(actor, schedule_id)
            schedule = am.ClinicSchedule.objects.select_for_update().get(pk=current.pk)
            if schedule.version != _version(expected_version):
                raise _stale(schedule)
            if schedule.department_id != d["department"]:
                raise ValidationFailed(
                    details={
                        "department": [
                            str(_("A schedule stays in its department; create a new one instead."))
                        ]
                    }
                )
            schedule.version += 1
            action = "schedule.update"
        schedule.department_id = d["department"]
        schedule.doctor_id = d["doctor"]
        schedule.name = d["name"]
        schedule.weekdays = sorted(set(d["weekdays"]))
        schedule.sessions = d["sessions"]
        schedule.slot_minutes = d["slot_minutes"]
        schedule.capacity = d["capacity"]
        schedule.valid_from = d["valid_from"]
        schedule.valid_to = d["valid_to"]
        schedule.active = bool(d["active"])
        schedule.updated_at = now
        schedule.updated_by = actor.user
        schedule.save()
        refit = _refit_slots(schedule, now)
        today = now.astimezone(selectors.zone_of(schedule.organisation)).date()
        added = generate_slots(schedule, today + timedelta(days=horizon_days()), now=now)
        audit.record(actor, action, obj=schedule, detail={"slots_added": added, **refit})
    return schedule


def _pattern(schedule: am.ClinicSchedule) -> domain.Pattern:
    return domain.pattern_of(
        schedule.weekdays,
        domain.sessions_from(schedule.sessions),
        schedule.slot_minutes,
        schedule.capacity,
    )


def _refit_slots(schedule: am.ClinicSchedule, now: datetime) -> dict[str, int]:
    """Make future slots follow a changed schedule. A slot that no longer fits is removed when
    nobody was ever booked in it, and closed (kept, with its appointments) otherwise."""
    future = list(am.Slot.objects.filter(schedule=schedule, starts_at__gt=now))
    if not future:
        return {"slots_removed": 0, "slots_closed": 0}
    tz = selectors.zone_of(schedule.organisation)
    first = min(s.local_date for s in future)
    last = max(s.local_date for s in future)
    wanted: set[tuple[datetime, datetime]] = set()
    if schedule.active:
        lo = max(first, schedule.valid_from)
        hi = min(last, schedule.valid_to) if schedule.valid_to else last
        if lo <= hi:
            wanted = {
                (p.starts_at, p.ends_at) for p in domain.plan_slots(_pattern(schedule), lo, hi, tz)
            }
    used = set(A.objects.filter(slot__in=[s.pk for s in future]).values_list("slot_id", flat=True))
    removed = closed = 0
    for slot in future:
        if (slot.starts_at, slot.ends_at) in wanted:
            capacity = max(schedule.capacity, slot.booked)
            if (slot.capacity, slot.doctor_id) != (capacity, schedule.doctor_id):
                am.Slot.objects.filter(pk=slot.pk).update(
                    capacity=Greatest(Value(schedule.capacity), F("booked")),
                    doctor_id=schedule.doctor_id,
                )
        elif slot.pk in used:
            if slot.status != am.Slot.Status.CLOSED:
                am.Slot.objects.filter(pk=slot.pk).update(status=am.Slot.Status.CLOSED)
                closed += 1
        else:
            slot.delete()
            removed += 1
    return {"slots_removed": removed, "slots_closed": closed}


def generate_slots(schedule: am.ClinicSchedule, until: date, *, now: datetime | None = None) -> int:
    """Open the schedule's slots from today (or its first day) up to ``until``; slots already
    open are left alone, so running it again adds nothing."""
    now = now or utc_now()
    if not schedule.active:
        return 0
    tz = selectors.zone_of(schedule.organisation)
    today = now.astimezone(tz).date()
    first = max(schedule.valid_from, today)
    last = min(until, schedule.valid_to) if schedule.valid_to else until
    if last < first:
        return 0
    planned = [p for p in domain.plan_slots(_pattern(schedule), first, last, tz) if p.ends_at > now]
    existing = set(
        am.Slot.objects.filter(
            schedule=schedule, local_date__gte=first, local_date__lte=last
        ).values_list("starts_at", flat=True)
    )
    new = [
        am.Slot(
            organisation_id=schedule.organisation_id,
            department_id=schedule.department_id,
            schedule=schedule,
            doctor_id=schedule.doctor_id,
            starts_at=p.starts_at,
            ends_at=p.ends_at,
            local_date=p.local_date,
            capacity=schedule.capacity,
        )
        for p in planned
        if p.starts_at not in existing
    ]
    am.Slot.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    if schedule.generated_until is None or schedule.generated_until < last:
        am.ClinicSchedule.objects.filter(pk=schedule.pk).update(generated_until=last)
        schedule.generated_until = last
    return len(new)


def top_up_slots(now: datetime | None = None) -> int:
    """Keep every active schedule's slots open for the coming weeks (periodic)."""
    now = now or utc_now()
    made = 0
    for schedule in am.ClinicSchedule.objects.filter(active=True).select_related("organisation"):
        today = now.astimezone(selectors.zone_of(schedule.organisation)).date()
        if schedule.valid_to and schedule.valid_to < today:
            continue
        with transaction.atomic():
            made += generate_slots(schedule, today + timedelta(days=horizon_days()), now=now)
    return made


def set_slot_status(actor: Actor, slot_id: Any, status: str) -> am.Slot:
    """Close a slot to new bookings (the doctor is away) or open it again."""
    require(actor, Action.SCHEDULE_MANAGE)
    if status not in am.Slot.Status.values:
        raise ValidationFailed(details={"status": [str(_("Choose open or closed."))]})
    slot = selectors.get_slot(actor, slot_id)
    with transaction.atomic():
        am.Slot.objects.filter(pk=slot.pk).update(status=status)
        slot.status = status
        audit.record(actor, "slot.update", obj=slot, detail={"status": status})
    return slot


# --- booking ----------------------------------------------------------------------------------


@dataclass
class Booking:
    appointment: am.Appointment
    replayed: bool = False


def _take_place(slot_id: int) -> None:
    """Take one place in a slot, or refuse: the WHERE clause is evaluated on the current row."""
    taken = am.Slot.objects.filter(
        pk=slot_id, status=am.Slot.Status.OPEN, booked__lt=F("capacity")
    ).update(booked=F("booked") + 1)
    if taken:
        return
    status = am.Slot.objects.filter(pk=slot_id).values_list("status", flat=True).first()
    if status != am.Slot.Status.OPEN:
        raise SlotUnavailable()
    raise SlotFull()


def _release_place(slot_id: int) -> None:
    am.Slot.objects.filter(pk=slot_id, booked__gt=0).update(booked=F("booked") - 1)


def _title(appt: am.Appointment) -> tuple[str, str]:
    if appt.kind == A.Kind.REVISIT:
        return "复诊预约", "Revisit appointment"
    return "门诊预约", "Clinic appointment"


def _schedule_reminders(appt: am.Appointment, patient: pm.Patient, now: datetime) -> int:
    """The evening-before and morning-of reminders; keys carry the version, so a reschedule
    makes new ones (the old ones are cancelled by ref)."""
    tz = _zone(patient.time_zone)
    title, title_en = _title(appt)
    local = appt.starts_at.astimezone(tz)
    made = 0
    for label, due in domain.reminder_times(appt.starts_at, tz, now):
        reminder_services.schedule_one(
            organisation_id=appt.organisation_id,
            patient_id=appt.patient_id,
            kind="appointment",
            source_key=f"appointment:{appt.pk}:v{appt.version}:{label}",
            due_at=due,
            time_zone=tz.key,
            payload={
                "title": title,
                "title_en": title_en,
                "appointment_id": appt.pk,
                "appointment_local": f"{local:%Y-%m-%d %H:%M}",
                "department": appt.department.name,
                "department_en": appt.department.name_en,
            },
            ref=appt.ref,
        )
        made += 1
    return made


def _idempotency_key(actor: Actor, key: str) -> str:
    key = (key or "").strip()
    if not key or len(key) > 100 or not key.isprintable():
        raise ValidationFailed(
            details={"Idempotency-Key": [str(_("Use a key of 1 to 100 printable characters."))]}
        )
    return f"idem:{actor.organisation_id}:{actor.user.pk}:{key}"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _replay(source_key: str, digest: str, fetch: Callable[[int], am.Appointment]) -> Booking | None:
    existing = A.objects.filter(source_key=source_key).values_list("pk", "source_digest").first()
    if existing is None:
        return None
    if existing[1] != digest:
        raise IdempotencyKeyReused()
    return Booking(fetch(existing[0]), replayed=True)


# Who changes an appointment: a staff member (audited with their Actor) or the patient in the
# portal (audited as the patient). Booking, moving and cancelling follow the same rules for
# both; only the scope checks and the audit differ.
Recorder = Callable[[str, am.Appointment, dict[str, Any]], None]


def _staff_recorder(actor: Actor) -> Recorder:
    def record(action: str, appt: am.Appointment, detail: dict[str, Any]) -> None:
        audit.record(actor, action, patient_id=appt.patient_id, obj=appt, detail=detail)

    return record


def _patient_recorder(actor: PortalActor) -> Recorder:
    def record(action: str, appt: am.Appointment, detail: dict[str, Any]) -> None:
        actor.audit(
            action, object_type="appointments.appointment", object_id=appt.pk, detail=detail
        )

    return record


def _place(
    patient: pm.Patient,
    slot: am.Slot,
    *,
    kind: str,
    reason: str,
    source_key: str | None,
    digest: str,
    by: Staff | None,
    record: Recorder,
    fetch: Callable[[int], am.Appointment],
) -> Booking:
    """Take a place in the slot and create the appointment with its reminders (one
    transaction). A repeated idempotent request answers with the first booking."""
    now = utc_now()
    if slot.ends_at <= now:
        raise SlotUnavailable()
    try:
        with transaction.atomic():
            if A.objects.filter(patient=patient, slot=slot, status__in=A.ACTIVE).exists():
                raise AlreadyBooked()
            _take_place(slot.pk)
            appt = A.objects.create(
                organisation_id=slot.organisation_id,
                patient=patient,
                slot=slot,
                department_id=slot.department_id,
                doctor_id=slot.doctor_id,
                kind=kind,
                starts_at=slot.starts_at,
                local_date=slot.local_date,
                reason=reason,
                booked_by=by,
                booked_at=now,
                source_key=source_key,
                source_digest=digest,
                updated_at=now,
                updated_by=by,
            )
            appt.department = slot.department
            reminders = _schedule_reminders(appt, patient, now)
            record(
                "appointment.book",
                appt,
                {"slot": slot.pk, "reminders": reminders, "idempotent": bool(source_key)},
            )
    except (IntegrityError, AlreadyBooked):
        # A concurrent request with the same key got there first (its answer is this one's),
        # or the patient was booked into this slot at the same moment by someone else.
        if source_key:
            replay = _replay(source_key, digest, fetch)
            if replay is not None:
                return replay
        raise AlreadyBooked() from None
    return Booking(appt)


def book(
    actor: Actor,
    patient_id: int,
    slot_id: Any,
    *,
    kind: str = A.Kind.REVISIT,
    reason: str = "",
    idempotency_key: str = "",
) -> Booking:
    """Book a patient the actor can see into a slot of one of the actor's departments.

    With an idempotency key, a repeat of the same request answers with the first booking; the
    same key with different input is refused (409).
    """
    require(actor, Action.APPOINTMENT_BOOK, patient_id=patient_id)
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if kind not in A.Kind.values:
        errors["kind"] = [str(_("Choose revisit or consultation."))]
    if len(reason) > 500:
        errors["reason"] = [str(_("At most 500 characters."))]
    if errors:
        raise ValidationFailed(details=errors)
    source_key = _idempotency_key(actor, idempotency_key) if idempotency_key else None
    digest = _digest(int(patient_id), str(slot_id), kind, reason) if source_key else ""

    def fetch(pk: int) -> am.Appointment:
        return selectors.get_appointment(actor, pk)

    if source_key:
        replay = _replay(source_key, digest, fetch)
        if replay is not None:
            return replay
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    if patient.deceased_on:
        raise ValidationFailed(
            details={"patient": [str(_("This patient is recorded as deceased."))]}
        )
    slot = selectors.get_slot(actor, slot_id)
    return _place(
        patient,
        slot,
        kind=kind,
        reason=reason,
        source_key=source_key,
        digest=digest,
        by=actor.user,
        record=_staff_recorder(actor),
        fetch=fetch,
    )


def _locked(current: am.Appointment) -> am.Appointment:
    """The row of an appointment already found in scope, locked until the transaction ends.
    (The scope lookup comes first, outside the transaction, so that a refusal's audit record
    is not rolled back with it.)"""
    appt = A.objects.select_for_update().select_related("department").get(pk=current.pk)
    appt.patient = current.patient
    return appt


def _touch(appt: am.Appointment, actor: Actor | None, now: datetime) -> None:
    _touch_by(appt, actor.user if actor else None, now)


def _touch_by(appt: am.Appointment, by: Staff | None, now: datetime) -> None:
    appt.version += 1
    appt.updated_at = now
    appt.updated_by = by


def _move(
    current: am.Appointment,
    slot: am.Slot,
    expected: int,
    *,
    by: Staff | None,
    record: Recorder,
) -> am.Appointment:
    """Move a booked appointment (found in scope) to another slot (found in scope)."""
    now = utc_now()
    with transaction.atomic():
        appt = _locked(current)
        if appt.version != expected:
            raise _stale(appt)
        if appt.status != A.Status.BOOKED:
            raise WrongState(_("Only a booked appointment can be moved."))
        if slot.pk == appt.slot_id:
            raise ValidationFailed(details={"slot": [str(_("Choose a different time."))]})
        if slot.ends_at <= now:
            raise SlotUnavailable()
        if A.objects.filter(patient_id=appt.patient_id, slot=slot, status__in=A.ACTIVE).exists():
            raise AlreadyBooked()
        old_slot = appt.slot_id
        # Slot rows are updated in id order, so two crossing moves cannot deadlock.
        if slot.pk < old_slot:
            _take_place(slot.pk)
            _release_place(old_slot)
        else:
            _release_place(old_slot)
            _take_place(slot.pk)
        appt.slot = slot
        appt.department = slot.department
        appt.doctor_id = slot.doctor_id
        appt.starts_at = slot.starts_at
        appt.local_date = slot.local_date
        _touch_by(appt, by, now)
        appt.save()
        cancelled = reminder_services.cancel_ref(appt.ref, "rescheduled")
        made = _schedule_reminders(appt, appt.patient, now)
        record(
            "appointment.reschedule",
            appt,
            {
                "from_slot": old_slot,
                "to_slot": slot.pk,
                "reminders_cancelled": cancelled,
                "reminders": made,
            },
        )
    return appt


def reschedule(
    actor: Actor, appointment_id: Any, new_slot_id: Any, expected_version: Any
) -> am.Appointment:
    """Move a booked appointment to another slot: the old place is given back only if the new
    one can be taken (one transaction), and the reminders follow the new time."""
    require(actor, Action.APPOINTMENT_BOOK)
    expected = _version(expected_version)
    slot = selectors.get_slot(actor, new_slot_id)
    current = selectors.get_appointment(actor, appointment_id)
    return _move(current, slot, expected, by=actor.user, record=_staff_recorder(actor))


def _check_cancel_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) > 200:
        raise ValidationFailed(details={"reason": [str(_("At most 200 characters."))]})
    return reason


def _cancel(
    current: am.Appointment,
    reason: str,
    expected_version: Any,
    *,
    by: Staff | None,
    record: Recorder,
) -> am.Appointment:
    """Cancel a booked appointment (found in scope): the place and the reminders go."""
    now = utc_now()
    with transaction.atomic():
        appt = _locked(current)
        if expected_version not in (None, "") and appt.version != _version(expected_version):
            raise _stale(appt)
        if appt.status == A.Status.CANCELLED:
            return appt
        if appt.status != A.Status.BOOKED:
            raise WrongState(_("Only a booked appointment can be cancelled."))
        _release_place(appt.slot_id)
        appt.status = A.Status.CANCELLED
        appt.cancel_reason = reason
        appt.finished_at = now
        _touch_by(appt, by, now)
        appt.save()
        withdrawn = reminder_services.cancel_ref(appt.ref, "appointment_cancelled")
        withdrawn += reminder_services.cancel_ref(appt.queue_ref, "appointment_cancelled")
        record("appointment.cancel", appt, {"reminders_cancelled": withdrawn})
    return appt


def cancel(
    actor: Actor, appointment_id: Any, reason: str = "", expected_version: Any = None
) -> am.Appointment:
    """Cancel a booked appointment: its place is given back and its reminders withdrawn."""
    require(actor, Action.APPOINTMENT_BOOK)
    reason = _check_cancel_reason(reason)
    current = selectors.get_appointment(actor, appointment_id)
    return _cancel(current, reason, expected_version, by=actor.user, record=_staff_recorder(actor))


# --- the patient's own appointments (the portal) ----------------------------------------------
#
# A patient books revisits in the clinics of their own departments, and moves or cancels only
# their own appointments; anything else answers 404. The capacity rules are the staff ones.


def patient_departments(actor: PortalActor) -> list[int]:
    """The departments that look after the signed-in patient."""
    return list(
        pm.PatientDepartment.objects.filter(
            patient_id=actor.patient_id, patient__organisation_id=actor.organisation_id
        ).values_list("department_id", flat=True)
    )


def own_slot(actor: PortalActor, slot_id: Any) -> am.Slot:
    """A slot of one of the patient's departments (404 otherwise, audited)."""
    pk = to_int(slot_id, 0, low=0, high=2**62)
    found = (
        am.Slot.objects.filter(
            pk=pk,
            organisation_id=actor.organisation_id,
            department_id__in=patient_departments(actor),
        )
        .select_related("department", "doctor")
        .first()
    )
    if found is None:
        actor.audit(
            "slot.read",
            outcome="denied",
            object_type="appointments.slot",
            object_id=pk,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return found


def own_appointment(actor: PortalActor, appointment_id: Any) -> am.Appointment:
    """One of the patient's own appointments (404 otherwise, audited)."""
    pk = to_int(appointment_id, 0, low=0, high=2**62)
    found = (
        A.objects.filter(pk=pk, patient_id=actor.patient_id, organisation_id=actor.organisation_id)
        .select_related("patient", "slot", "department", "doctor")
        .first()
    )
    if found is None:
        actor.audit(
            "appointment.read",
            outcome="denied",
            object_type="appointments.appointment",
            object_id=pk,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return found


def book_for_patient(
    actor: PortalActor, slot_id: Any, *, reason: str = "", idempotency_key: str = ""
) -> Booking:
    """The signed-in patient books a revisit in a slot of one of their departments. With an
    idempotency key (the booking form carries one), a repeated submit answers with the first
    booking."""
    reason = (reason or "").strip()
    if len(reason) > 500:
        raise ValidationFailed(details={"reason": [str(_("At most 500 characters."))]})
    source_key = None
    if idempotency_key:
        key = idempotency_key.strip()
        if not key or len(key) > 100 or not key.isprintable():
            raise ValidationFailed(
                details={"Idempotency-Key": [str(_("Use a key of 1 to 100 printable characters."))]}
            )
        source_key = f"idem:{actor.organisation_id}:patient:{actor.patient_id}:{key}"
    kind = A.Kind.REVISIT
    digest = _digest(actor.patient_id, str(slot_id), kind, reason) if source_key else ""

    def fetch(pk: int) -> am.Appointment:
        return own_appointment(actor, pk)

    if source_key:
        replay = _replay(source_key, digest, fetch)
        if replay is not None:
            return replay
    patient = pm.Patient.objects.get(pk=actor.patient_id, organisation_id=actor.organisation_id)
    slot = own_slot(actor, slot_id)
    return _place(
        patient,
        slot,
        kind=kind,
        reason=reason,
        source_key=source_key,
        digest=digest,
        by=None,
        record=_patient_recorder(actor),
        fetch=fetch,
    )


def reschedule_for_patient(
    actor: PortalActor, appointment_id: Any, new_slot_id: Any, expected_version: Any
) -> am.Appointment:
    """The patient moves their own booked appointment to another slot of their departments."""
    expected = _version(expected_version)
    current = own_appointment(actor, appointment_id)
    slot = own_slot(actor, new_slot_id)
    return _move(current, slot, expected, by=None, record=_patient_recorder(actor))


def cancel_for_patient(
    actor: PortalActor, appointment_id: Any, reason: str = "", expected_version: Any = None
) -> am.Appointment:
    """The patient cancels their own booked appointment."""
    reason = _check_cancel_reason(reason)
    current = own_appointment(actor, appointment_id)
    return _cancel(current, reason, expected_version, by=None, record=_patient_recorder(actor))


# --- the queue --------------------------------------------------------------------------------


def _next_number(department_id: int, day: date) -> int:
    """The next queue number of a department's day. The counter row is locked until commit,
    so concurrent check-ins are numbered one after another, never twice the same."""
    counter = (
        am.QueueCounter.objects.select_for_update().filter(department_id=department_id, day=day)
    ).first()
    if counter is None:
        try:
            with transaction.atomic():
                am.QueueCounter.objects.create(department_id=department_id, day=day)
        except IntegrityError:
            pass  # another check-in created it first
        counter = am.QueueCounter.objects.select_for_update().get(
            department_id=department_id, day=day
        )
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _notify_near(department_id: int, day: date, now: datetime) -> int:
    """Once the clinic has started calling patients in, tell each waiting patient within
    QUEUE_NEAR_POSITIONS places of the front that their turn is near (once each)."""
    started = A.objects.filter(
        department_id=department_id, local_date=day, called_at__isnull=False
    ).exists()
    if not started:
        return 0
    near = domain.near_turn(selectors.waiting_ids(department_id, day), near_positions())
    made = 0
    for appt in A.objects.filter(pk__in=near).select_related("patient", "department"):
        tz = _zone(appt.patient.time_zone)
        reminder_services.schedule_one(
            organisation_id=appt.organisation_id,
            patient_id=appt.patient_id,
            kind="queue",
            source_key=f"queue:{appt.pk}:near",
            due_at=now,
            time_zone=tz.key,
            payload={
                "title": "即将就诊",
                "title_en": "Your turn is near",
                "appointment_id": appt.pk,
                "queue_number": appt.queue_number,
                "department": appt.department.name,
                "department_en": appt.department.name_en,
            },
            ref=appt.queue_ref,
        )
        made += 1
    return made


def check_in(actor: Actor, appointment_id: Any) -> am.Appointment:
    """The patient has arrived: hand out the next queue number of the department's day."""
    require(actor, Action.APPOINTMENT_BOOK)
    now = utc_now()
    today = selectors.today_for(actor)
    current = selectors.get_appointment(actor, appointment_id)
    with transaction.atomic():
        appt = _locked(current)
        if appt.status == A.Status.CHECKED_IN:
            return appt
        if appt.status != A.Status.BOOKED:
            raise WrongState(_("Only a booked appointment can be checked in."))
        if appt.local_date != today:
            raise NotToday()
        appt.queue_number = _next_number(appt.department_id, appt.local_date)
        appt.status = A.Status.CHECKED_IN
        appt.checked_in_at = now
        _touch(appt, actor, now)
        appt.save()
        reminder_services.cancel_ref(appt.ref, "checked_in")
        audit.record(
            actor,
            "appointment.check_in",
            patient_id=appt.patient_id,
            obj=appt,
            detail={"queue_number": appt.queue_number},
        )
        _notify_near(appt.department_id, appt.local_date, now)
    return appt


def call_next(actor: Actor, department_id: Any) -> am.Appointment | None:
    """Call the waiting patient with the lowest queue number in; None if nobody is waiting."""
    require(actor, Action.APPOINTMENT_BOOK)
    require(actor, Action.PATIENT_VIEW)
    dept = selectors.department(actor, department_id)
    today = selectors.today_for(actor)
    now = utc_now()
    with transaction.atomic():
        # The day's counter row serialises callers: two presses never call the same patient.
        counter = (
            am.QueueCounter.objects.select_for_update().filter(department=dept, day=today).first()
        )
        if counter is None:
            return None
        nxt = (
            selectors.visible_appointments(actor)
            .select_for_update()
            .filter(
                department=dept,
                local_date=today,
                status=A.Status.CHECKED_IN,
                called_at__isnull=True,
            )
            .order_by("queue_number", "id")
            .first()
        )
        if nxt is None:
            return None
        nxt.called_at = now
        _touch(nxt, actor, now)
        nxt.save()
        audit.record(
            actor,
            "queue.call",
            patient_id=nxt.patient_id,
            obj=nxt,
            detail={"queue_number": nxt.queue_number},
        )
        _notify_near(dept.pk, today, now)
    return nxt


def complete(actor: Actor, appointment_id: Any) -> am.Appointment:
    require(actor, Action.APPOINTMENT_BOOK)
    now = utc_now()
    current = selectors.get_appointment(actor, appointment_id)
    with transaction.atomic():
        appt = _locked(current)
        if appt.status == A.Status.COMPLETED:
            return appt
        if appt.status != A.Status.CHECKED_IN:
            raise WrongState(_("Only a checked-in patient's visit can be completed."))
        appt.status = A.Status.COMPLETED
        appt.called_at = appt.called_at or now
        appt.finished_at = now
        _touch(appt, actor, now)
        appt.save()
        audit.record(actor, "appointment.complete", patient_id=appt.patient_id, obj=appt)
    return appt


def mark_no_show(actor: Actor, appointment_id: Any) -> am.Appointment:
    """The patient did not come (never arrived, or did not answer when called)."""
    require(actor, Action.APPOINTMENT_BOOK)
    now = utc_now()
    today = selectors.today_for(actor)
    current = selectors.get_appointment(actor, appointment_id)
    with transaction.atomic():
        appt = _locked(current)
        if appt.status == A.Status.NO_SHOW:
            return appt
        if appt.status not in A.ACTIVE:
            raise WrongState(_("Only a booked or checked-in appointment can be marked missed."))
        if appt.local_date > today:
            raise WrongState(_("An appointment in the future cannot be missed yet."))
        appt.status = A.Status.NO_SHOW
        appt.finished_at = now
        _touch(appt, actor, now)
        appt.save()
        reminder_services.cancel_ref(appt.ref, "no_show")
        reminder_services.cancel_ref(appt.queue_ref, "no_show")
        audit.record(actor, "appointment.no_show", patient_id=appt.patient_id, obj=appt)
        if appt.local_date == today:
            _notify_near(appt.department_id, today, now)
    return appt


def sweep_no_shows(now: datetime | None = None, *, batch: int = 500) -> int:
    """Mark every appointment still booked after its day (clinic time) as missed (periodic)."""
    now = now or utc_now()
    marked = 0
    for org in Organisation.objects.all():
        today = now.astimezone(selectors.zone_of(org)).date()
        while True:
            with transaction.atomic():
                rows = list(
                    A.objects.select_for_update()
                    .filter(organisation=org, status=A.Status.BOOKED, local_date__lt=today)
                    .order_by("pk")
                    .values_list("pk", "patient_id")[:batch]
                )
                if not rows:
                    break
                A.objects.filter(pk__in=[pk for pk, _ in rows], status=A.Status.BOOKED).update(
                    status=A.Status.NO_SHOW,
                    finished_at=now,
                    updated_at=now,
                    updated_by=None,
                    version=F("version") + 1,
                )
                for pk, patient_id in rows:
                    reminder_services.cancel_ref(f"appointment:{pk}", "no_show")
                    audit.append(
                        action="appointment.no_show",
                        organisation_id=org.pk,
                        patient_id=patient_id,
                        object_type="appointments.appointment",
                        object_id=pk,
                        actor_name="system:no-show-sweep",
                        detail={"via": "sweep"},
                    )
                marked += len(rows)
    if marked:
        log.info("marked %d appointments as missed", marked)
    return marked


def periodic(now: datetime | None = None) -> dict[str, int]:
    """What a worker runs now and then: open the coming weeks' slots, mark no-shows."""
    return {"slots": top_up_slots(now), "no_shows": sweep_no_shows(now)}


# --- overdue follow-up: call results ----------------------------------------------------------

POSTPONE_DAYS = {
    am.CallResult.Outcome.AGREED_TO_VISIT: 30,
    am.CallResult.Outcome.REMIND_LATER: 7,
}


def record_call_result(
    actor: Actor, patient_id: int, outcome: str, *, remove_reason: str = "", note: str = ""
) -> am.CallResult:
    """Record the result of calling an overdue patient (metrics.md): agreed to visit postpones
    them 30 days, remind later 7 days; removed takes them off the list, with a reason."""
    require(actor, Action.APPOINTMENT_BOOK, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    errors: dict[str, list[str]] = {}
    if outcome not in am.CallResult.Outcome.values:
        errors["outcome"] = [str(_("Choose a call result."))]
    elif outcome == am.CallResult.Outcome.REMOVED:
        if remove_reason not in am.CallResult.RemoveReason.values:
            errors["remove_reason"] = [str(_("Choose why the patient leaves the list."))]
    else:
        remove_reason = ""
    if len(note or "") > 500:
        errors["note"] = [str(_("At most 500 characters."))]
    if errors:
        raise ValidationFailed(details=errors)
    today = selectors.today_for(actor)
    days = POSTPONE_DAYS.get(am.CallResult.Outcome(outcome))
    with transaction.atomic():
        result = am.CallResult.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            outcome=outcome,
            remove_reason=remove_reason,
            remind_on=today + timedelta(days=days) if days else None,
            note=(note or "").strip(),
            called_on=today,
            created_at=utc_now(),
            created_by=actor.user,
        )
        audit.record(
            actor,
            "overdue.call_result",
            patient_id=patient.pk,
            obj=result,
            detail={"outcome": outcome, "reason": remove_reason},
        )
        if remove_reason == am.CallResult.RemoveReason.DIED and not patient.deceased_on:
            # "Died" marks the patient dead (metrics.md) through the patient record, which is
            # audited and cancels the patient's pending reminders like any recorded death.
            patient_services.update_patient(
                actor, patient.pk, {"deceased_on": today.isoformat()}, patient.version
            )
    return result

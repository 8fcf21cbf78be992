"""Schedule ↔ appointments.ClinicSchedule, Slot ↔ appointments.Slot, Appointment ↔
appointments.Appointment.

Schedules and slots are not patient data: they are scoped like the staff booking pages, to the
clinics of the actor's departments (every department for organisation admins), and read only —
clinic patterns are set up in the schedule pages. A slot is ``free`` while it is open and has a
place left, ``busy`` when every place is taken and ``busy-unavailable`` when it is closed.

An Appointment is created by booking a place in a slot through appointments.services.book,
with the same capacity rules as the booking page (the place is taken with a conditional
UPDATE; a full slot answers 409). The Appointment's ``identifier`` is the idempotency key: the
same Appointment sent again answers with the first booking. An update changes the status
(cancelled, noshow, fulfilled, arrived) or the slot (a reschedule) through the same services;
a delete cancels the appointment, which stays readable with status ``cancelled``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.appointments import models as am
from careloop.appointments import selectors as appt_selectors
from careloop.appointments import services as appt_services
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import READ_ONLY, Context, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c
from careloop.fhir.search import parse_date, reference_id
from careloop.kit.errors import CareLoopError
from careloop.patients import selectors as patient_selectors

V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
_NONE = Q(pk__in=[])


def _ref_param(target: str, field: str) -> Any:
    def build(raw: str) -> Q:
        ident = reference_id(raw, target)
        return Q(**{field: int(ident)}) if ident.isdigit() and len(ident) < 19 else _NONE

    return build


def _display(staff: Any) -> str:
    return str(staff.display_name or staff.get_username()) if staff is not None else ""


# --- Schedule ---------------------------------------------------------------------------------


def _schedule_active(system: str | None, value: str) -> Q:
    return Q(active=value == "true") if value in ("true", "false") else _NONE


def _service_type(field: str) -> Any:
    def build(system: str | None, value: str) -> Q:
        return Q(**{f"{field}__iexact": value}) if system in (None, "") else _NONE

    return build


@register
class ScheduleMapper(Mapper):
    resource_type = "Schedule"
    model = am.ClinicSchedule
    interactions = READ_ONLY
    read_actions = (Action.APPOINTMENT_BOOK,)
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "active": SearchParam("token", _schedule_active),
        "actor": SearchParam(
            "reference",
            _ref_param("Practitioner", "doctor_id"),
            "Practitioner/<id>: the doctor whose clinic it is",
        ),
        "service-type": SearchParam(
            "token", _service_type("name"), "The clinic's name (serviceType.text)"
        ),
        "date": SearchParam(
            "date",
            lambda r: r.q("valid_from", dates=True),
            "The first day of the planning horizon",
        ),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at"}
    default_sort = ("pk",)

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return appt_selectors.visible_schedules(actor).select_related("department", "doctor")

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        actors: list[dict[str, Any]] = []
        if obj.doctor_id:
            actors.append(
                {"reference": f"Practitioner/{obj.doctor_id}", "display": _display(obj.doctor)}
            )
        actors.append({"display": obj.department.name})
        horizon: dict[str, Any] = {"start": obj.valid_from.isoformat()}
        if obj.valid_to:
            horizon["end"] = obj.valid_to.isoformat()
        sessions = ", ".join(
            f"{s.get('start', '')}-{s.get('end', '')}"
            for s in obj.sessions or []
            if isinstance(s, dict)
        )
        days = ",".join(str(d) for d in obj.weekdays or [])
        return {
            "active": bool(obj.active),
            "serviceType": [{"text": obj.name}],
            "specialty": [{"text": obj.department.name}],
            "actor": actors,
            "planningHorizon": horizon,
            "comment": _(
                "ISO weekdays %(days)s, sessions %(sessions)s, %(minutes)d-minute slots "
                "of %(capacity)d places"
            )
            % {
                "days": days,
                "sessions": sessions,
                "minutes": obj.slot_minutes,
                "capacity": obj.capacity,
            },
        }


# --- Slot -------------------------------------------------------------------------------------

_FREE = Q(status=am.Slot.Status.OPEN, booked__lt=F("capacity"))
_BUSY = Q(status=am.Slot.Status.OPEN, booked__gte=F("capacity"))
_CLOSED = Q(status=am.Slot.Status.CLOSED)


def _slot_status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/slotstatus"):
        return _NONE
    return {"free": _FREE, "busy": _BUSY, "busy-unavailable": _CLOSED}.get(value, _NONE)


def slot_status(obj: am.Slot) -> str:
    if obj.status != am.Slot.Status.OPEN:
        return "busy-unavailable"
    return "free" if obj.booked < obj.capacity else "busy"


@register
class SlotMapper(Mapper):
    resource_type = "Slot"
    model = am.Slot
    interactions = READ_ONLY
    read_actions = (Action.APPOINTMENT_BOOK,)
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "schedule": SearchParam("reference", _ref_param("Schedule", "schedule_id")),
        "start": SearchParam("date", lambda r: r.q("starts_at")),
        "status": SearchParam("token", _slot_status, "free | busy | busy-unavailable"),
        "service-type": SearchParam(
            "token", _service_type("schedule__name"), "The clinic's name (serviceType.text)"
        ),
    }
    sorts = {"_id": "pk", "start": "starts_at"}
    default_sort = ("starts_at", "pk")

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return appt_selectors.visible_slots(actor).select_related("schedule", "department")

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def last_updated(self, obj: Any) -> Any:
        # Slots carry no change time of their own: they change with their schedule.
        return obj.schedule.updated_at if obj.schedule_id else obj.starts_at

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if obj.schedule_id:
            out["serviceType"] = [{"text": obj.schedule.name}]
        out["specialty"] = [{"text": obj.department.name}]
        if obj.schedule_id:
            out["schedule"] = {"reference": f"Schedule/{obj.schedule_id}"}
        out["status"] = slot_status(obj)
        out["start"] = instant(obj.starts_at)
        out["end"] = instant(obj.ends_at)
        out["comment"] = _("%(free)d of %(capacity)d places free") % {
            "free": obj.available,
            "capacity": obj.capacity,
        }
        return out


# --- Appointment ------------------------------------------------------------------------------

A = am.Appointment
_STATUS_OUT = {
    A.Status.BOOKED: "booked",
    A.Status.CHECKED_IN: "arrived",
    A.Status.COMPLETED: "fulfilled",
    A.Status.CANCELLED: "cancelled",
    A.Status.NO_SHOW: "noshow",
}
_STATUS_IN = {v: k for k, v in _STATUS_OUT.items()} | {"checked-in": A.Status.CHECKED_IN}
_TYPE_OUT = {
    A.Kind.REVISIT: ("FOLLOWUP", "A follow up visit from a previous appointment"),
    A.Kind.CONSULTATION: ("ROUTINE", "Routine appointment - default if not valued"),
}
# Service fields → the element a refusal names.
_APPOINTMENT_FIELDS = {
    "patient": "participant",
    "slot": "slot",
    "kind": "appointmentType",
    "reason": "description",
    "Idempotency-Key": "identifier",
    "version": "meta.versionId",
}


def _appointment_status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/appointmentstatus"):
        return _NONE
    found = _STATUS_IN.get(value)
    return Q(status=found) if found else _NONE


def _actor(raw: str) -> Q:
    patient = reference_id(raw, "Patient")
    if "/" in raw and patient:
        return Q(patient_id=c.pk_of(patient))
    doctor = reference_id(raw, "Practitioner")
    if "/" in raw and doctor:
        return Q(doctor_id=c.pk_of(doctor))
    return _NONE


def _participant_patient(ctx: Context, resource: dict[str, Any]) -> int:
    found = resource.get("participant")
    participants = found if isinstance(found, list) else []
    for i, p in enumerate(participants):
        who = p.get("actor") if isinstance(p, dict) else None
        ref = who.get("reference") if isinstance(who, dict) else None
        if isinstance(ref, str) and ctx.references.get(ref, ref).rpartition("/")[0].endswith(
            "Patient"
        ):
            where = f"Appointment.participant[{i}].actor"
            return c.pk_of(ctx.reference_id(who, "Patient", where))
    raise FhirError.of(
        422,
        _("A participant whose actor is the Patient is required."),
        code="required",
        expression="Appointment.participant",
    )


def _slot_of(ctx: Context, resource: dict[str, Any]) -> int:
    found = resource.get("slot")
    slots = found if isinstance(found, list) else []
    if len(slots) != 1:
        raise FhirError.of(
            422,
            _("Exactly one slot is required: CareLoop books one place in one slot."),
            code="required",
            expression="Appointment.slot",
        )
    return c.pk_of(ctx.reference_id(slots[0], "Slot", "Appointment.slot[0]"))


def _kind(resource: dict[str, Any]) -> str:
    codes = {str(x.get("code") or "") for x in c.codings(resource.get("appointmentType"))}
    if not codes or "FOLLOWUP" in codes:
        return A.Kind.REVISIT
    return A.Kind.CONSULTATION


def _identifier_key(resource: dict[str, Any]) -> str:
    found = resource.get("identifier")
    for ident in found if isinstance(found, list) else []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
            key = f"fhir:{ident.get('system') or ''}|{ident['value']}"
            if len(key) > 100 or not key.isprintable():
                key = "fhir:" + hashlib.sha256(key.encode()).hexdigest()
            return key
    return ""


@register
class AppointmentMapper(Mapper):
    resource_type = "Appointment"
    model = am.Appointment
    interactions = READ_ONLY | {"create", "update", "delete"}
    read_actions = (Action.PATIENT_VIEW, Action.APPOINTMENT_BOOK)
    write_actions = (Action.PATIENT_VIEW, Action.APPOINTMENT_BOOK)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "actor": SearchParam(
            "reference", _actor, "Patient/<id> or Practitioner/<id> (the slot's doctor)"
        ),
        "date": SearchParam("date", lambda r: r.q("starts_at")),
        "status": SearchParam("token", _appointment_status),
        "slot": SearchParam("reference", _ref_param("Slot", "slot_id")),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "date": "starts_at"}
    default_sort = ("-starts_at", "-pk")
    include_targets = {"patient": "Patient", "actor": "Patient"}
    elements = {
        "status": ("status",),
        "appointmentType": ("kind",),
        "start": ("starts_at",),
        "end": ("slot_id",),
        "slot": ("slot_id",),
        "created": ("booked_at",),
        "description": ("reason",),
        "cancelationReason": ("cancel_reason",),
        "participant": ("patient_id", "doctor_id"),
    }
    # The time, the slot and when it was booked are always the row's own.
    generated = frozenset({"start", "end", "slot", "created"})
    keeps_extra = True

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return appt_selectors.visible_appointments(actor).select_related("slot", "doctor")

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        code, display = _TYPE_OUT.get(obj.kind, _TYPE_OUT[A.Kind.REVISIT])
        participants: list[dict[str, Any]] = [
            {
                "actor": {"reference": f"Patient/{obj.patient_id}"},
                "required": "required",
                "status": "accepted",
            }
        ]
        if obj.doctor_id:
            participants.append(
                {
                    "actor": {
                        "reference": f"Practitioner/{obj.doctor_id}",
                        "display": _display(obj.doctor),
                    },
                    "required": "required",
                    "status": "accepted",
                }
            )
        out: dict[str, Any] = {
            "status": _STATUS_OUT.get(obj.status, "booked"),
            "appointmentType": {"coding": [{"system": V2_0276, "code": code, "display": display}]},
            "start": instant(obj.starts_at),
            "end": instant(obj.slot.ends_at),
            "slot": [{"reference": f"Slot/{obj.slot_id}"}],
            "created": instant(obj.booked_at),
            "participant": participants,
        }
        if obj.reason:
            out["description"] = obj.reason
        if obj.status == A.Status.CANCELLED and obj.cancel_reason:
            out["cancelationReason"] = {"text": obj.cancel_reason}
        return out

    def _refused(self, exc: CareLoopError) -> FhirError:
        return c.service_error(exc, self.resource_type, _APPOINTMENT_FIELDS)

    def _slot(self, actor: Actor, slot_id: int, where: str) -> am.Slot:
        slot = (
            appt_selectors.visible_slots(actor)
            .select_related("organisation")
            .filter(pk=slot_id)
            .first()
        )
        if slot is None:
            raise FhirError.of(
                422,
                _("This slot is not one of your clinics' slots."),
                code="value",
                expression=where,
            )
        return slot

    def _check_start(self, slot: am.Slot, resource: dict[str, Any]) -> None:
        for element, moment in (("start", slot.starts_at), ("end", slot.ends_at)):
            sent = resource.get(element)
            if sent is None:
                continue
            try:
                stated = parse_date(str(sent), appt_selectors.zone_of(slot.organisation), "")
            except FhirError:
                stated = None
            if stated is None or stated.start != moment:
                raise FhirError.of(
                    422,
                    _("The %(element)s must be the slot's (%(time)s).")
                    % {"element": element, "time": instant(moment)},
                    code="value",
                    expression=f"Appointment.{element}",
                )

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        if resource.get("status") != "booked":
            raise c.not_supported(
                "Appointment.status", _("A new appointment is booked: its status is “booked”.")
            )
        patient_id = _participant_patient(ctx, resource)
        slot_id = _slot_of(ctx, resource)
        actor = ctx.actor
        if not patient_selectors.visible_patients(actor).filter(pk=patient_id).exists():
            raise FhirError.of(
                422,
                _("This patient is not within your scope."),
                code="value",
                expression="Appointment.participant",
            )
        slot = self._slot(actor, slot_id, "Appointment.slot[0]")
        self._check_start(slot, resource)
        description = resource.get("description")
        try:
            booking = appt_services.book(
                actor,
                patient_id,
                slot.pk,
                kind=_kind(resource),
                reason=description if isinstance(description, str) else "",
                idempotency_key=_identifier_key(resource),
            )
        except CareLoopError as exc:
            raise self._refused(exc) from exc
        row = self.visible(actor).get(pk=booking.appointment.pk)
        if not booking.replayed:
            self.keep(row, resource)
        return row, not booking.replayed

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        if _participant_patient(ctx, resource) != obj.patient_id:
            raise c.not_supported(
                "Appointment.participant",
                _("An appointment cannot be moved to another patient."),
            )
        wanted = _STATUS_IN.get(str(resource.get("status") or ""))
        if wanted is None:
            raise c.not_supported(
                "Appointment.status",
                _("The status can be booked, arrived, fulfilled, cancelled or noshow."),
            )
        slot_id = _slot_of(ctx, resource)
        actor = ctx.actor
        target = self._slot(actor, slot_id, "Appointment.slot[0]")
        self._check_start(target, resource)
        try:
            if slot_id != obj.slot_id:
                if wanted != A.Status.BOOKED:
                    raise c.not_supported(
                        "Appointment.slot", _("Only a booked appointment can be moved.")
                    )
                appt_services.reschedule(actor, obj.pk, slot_id, expected)
            elif wanted != obj.status:
                if wanted == A.Status.CANCELLED:
                    found = resource.get("cancelationReason")
                    reason = found.get("text") if isinstance(found, dict) else ""
                    appt_services.cancel(actor, obj.pk, str(reason or ""), expected)
                elif wanted == A.Status.NO_SHOW:
                    appt_services.mark_no_show(actor, obj.pk)
                elif wanted == A.Status.COMPLETED:
                    appt_services.complete(actor, obj.pk)
                elif wanted == A.Status.CHECKED_IN:
                    appt_services.check_in(actor, obj.pk)
                else:
                    raise c.not_supported(
                        "Appointment.status",
                        _("An appointment cannot return to “booked”."),
                    )
        except CareLoopError as exc:
            raise self._refused(exc) from exc
        row = self.visible(actor).get(pk=obj.pk)
        self.keep(row, resource)
        return row

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        try:
            appt_services.cancel(ctx.actor, obj.pk, "", expected)
        except CareLoopError as exc:
            raise self._refused(exc) from exc

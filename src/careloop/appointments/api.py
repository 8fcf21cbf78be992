"""JSON API of appointments: /api/appointments (slots, booking, the day's queue)."""

from datetime import date, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema

from careloop.accounts.actor import Actor
from careloop.appointments import models as am
from careloop.appointments import selectors, services

router = Router(tags=["appointments"])


class SlotOut(Schema):
    id: int
    department: int
    doctor: int | None
    doctor_name: str
    starts_at: datetime
    ends_at: datetime
    local_date: date
    capacity: int
    booked: int
    available: int
    status: str


class AppointmentOut(Schema):
    id: int
    version: int
    patient: int
    patient_name: str
    slot: int
    department: int
    doctor: int | None
    kind: str
    status: str
    starts_at: datetime
    local_date: date
    reason: str
    queue_number: int | None
    checked_in_at: datetime | None
    called_at: datetime | None
    cancel_reason: str
    booked_by: str
    booked_at: datetime


class BookIn(Schema):
    patient_id: int
    slot_id: int
    kind: str = "revisit"
    reason: str = ""


class RescheduleIn(Schema):
    slot_id: int
    version: int | None = None


class CancelIn(Schema):
    reason: str = ""
    version: int | None = None


class DepartmentIn(Schema):
    department: int | None = None


class SlotQuery(Schema):
    department: int | None = None
    day: date | None = None
    days: int = 1


class QueueQuery(Schema):
    department: int | None = None


class QueueOut(Schema):
    department: int
    day: date
    serving: list[AppointmentOut]
    waiting: list[AppointmentOut]
    expected: list[AppointmentOut]
    done: list[AppointmentOut]


class CalledOut(Schema):
    called: AppointmentOut | None


class OverdueQuery(Schema):
    department: int | None = None
    source: str = ""
    min_days: int = 0
    q: str = ""
    page: int = 1
    size: int = 25


class OverdueItem(Schema):
    patient: int
    patient_name: str
    source: str
    scheduled: date
    days_overdue: int
    missed: int
    department: int | None
    high_priority: bool


class OverduePage(Schema):
    total: int
    page: int
    size: int
    items: list[OverdueItem]


def _slot_out(s: am.Slot) -> dict[str, Any]:
    return {
        "id": s.pk,
        "department": s.department_id,
        "doctor": s.doctor_id,
        "doctor_name": str(s.doctor) if s.doctor_id else "",
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "local_date": s.local_date,
        "capacity": s.capacity,
        "booked": s.booked,
        "available": s.available,
        "status": s.status,
    }


def _out(a: am.Appointment) -> dict[str, Any]:
    return {
        "id": a.pk,
        "version": a.version,
        "patient": a.patient_id,
        "patient_name": a.patient.name,
        "slot": a.slot_id,
        "department": a.department_id,
        "doctor": a.doctor_id,
        "kind": a.kind,
        "status": a.status,
        "starts_at": a.starts_at,
        "local_date": a.local_date,
        "reason": a.reason,
        "queue_number": a.queue_number,
        "checked_in_at": a.checked_in_at,
        "called_at": a.called_at,
        "cancel_reason": a.cancel_reason,
        "booked_by": a.booked_by.get_username() if a.booked_by_id and a.booked_by else "",
        "booked_at": a.booked_at,
    }


def _version(request: HttpRequest, body_version: Any) -> Any:
    if body_version is not None:
        return body_version
    header = request.headers.get("If-Match", "")
    return header.replace("W/", "").strip('"') or None


@router.get("/slots", response=list[SlotOut], summary="A department's slots, day by day")
def list_slots(request: HttpRequest, filters: Query[SlotQuery]) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    first = filters.day or selectors.today_for(actor)
    rows = selectors.slots(actor, filters.department, first, filters.days)
    return [_slot_out(s) for s in rows]


@router.post(
    "",
    response={201: AppointmentOut},
    summary="Book a patient into a slot (send an Idempotency-Key to retry safely)",
)
def book(request: HttpRequest, payload: BookIn, response: HttpResponse) -> Any:
    result = services.book(
        Actor.from_api(request),
        payload.patient_id,
        payload.slot_id,
        kind=payload.kind,
        reason=payload.reason,
        idempotency_key=request.headers.get("Idempotency-Key", ""),
    )
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return _out(result.appointment)  # the one response model is 201


@router.get("/queue", response=QueueOut, summary="Today's queue of a department")
def get_queue(request: HttpRequest, filters: Query[QueueQuery]) -> dict[str, Any]:
    q = selectors.queue(Actor.from_api(request), filters.department)
    return {
        "department": q.department.pk,
        "day": q.day,
        "serving": [_out(a) for a in q.serving],
        "waiting": [_out(a) for a in q.waiting],
        "expected": [_out(a) for a in q.expected],
        "done": [_out(a) for a in q.done],
    }


@router.post("/queue/call-next", response=CalledOut, summary="Call the next waiting patient in")
def call_next(request: HttpRequest, payload: DepartmentIn) -> dict[str, Any]:
    called = services.call_next(Actor.from_api(request), payload.department)
    return {"called": _out(called) if called else None}


@router.get("/overdue", response=OverduePage, summary="Patients overdue for follow-up")
def overdue(request: HttpRequest, filters: Query[OverdueQuery]) -> dict[str, Any]:
    criteria = selectors.OverdueCriteria(**filters.dict())
    page = selectors.overdue(Actor.from_api(request), criteria)
    return {
        "total": page.total,
        "page": page.number,
        "size": page.size,
        "items": [
            {
                "patient": r.patient.pk,
                "patient_name": r.patient.name,
                "source": r.source,
                "scheduled": r.scheduled,
                "days_overdue": r.days_overdue,
                "missed": r.missed,
                "department": r.department_id,
                "high_priority": r.high_priority,
            }
            for r in page.items
        ],
    }


@router.get("/{int:appointment_id}", response=AppointmentOut, summary="One appointment")
def get_appointment(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    return _out(selectors.read_appointment(Actor.from_api(request), appointment_id))


@router.post(
    "/{int:appointment_id}/reschedule",
    response=AppointmentOut,
    summary="Move to another slot; send the version you read (or If-Match)",
)
def reschedule(request: HttpRequest, appointment_id: int, payload: RescheduleIn) -> dict[str, Any]:
    appt = services.reschedule(
        Actor.from_api(request),
        appointment_id,
        payload.slot_id,
        _version(request, payload.version),
    )
    return _out(appt)


@router.post("/{int:appointment_id}/cancel", response=AppointmentOut, summary="Cancel")
def cancel(request: HttpRequest, appointment_id: int, payload: CancelIn) -> dict[str, Any]:
    appt = services.cancel(
        Actor.from_api(request),
        appointment_id,
        payload.reason,
        _version(request, payload.version),
    )
    return _out(appt)


@router.post(
    "/{int:appointment_id}/check-in",
    response=AppointmentOut,
    summary="The patient arrived: hand out a queue number",
)
def check_in(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    return _out(services.check_in(Actor.from_api(request), appointment_id))


@router.post("/{int:appointment_id}/no-show", response=AppointmentOut, summary="Did not come")
def no_show(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    return _out(services.mark_no_show(Actor.from_api(request), appointment_id))


@router.post("/{int:appointment_id}/complete", response=AppointmentOut, summary="Visit done")
def complete(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    return _out(services.complete(Actor.from_api(request), appointment_id))

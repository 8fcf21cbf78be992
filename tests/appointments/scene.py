"""The appointment routes in the shared security and audit tests (tests/security/scenario.py).

The scene's department gets a clinic schedule with slots today and in the next days; the
scene's patient is booked today (not yet arrived) and the second patient is checked in and
waiting. Every route gets valid input against those.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from careloop.appointments import models as am
from careloop.appointments import selectors, services
from careloop.appointments.domain import local_instant
from careloop.patients import models as pm


def _ours(route: Any) -> bool:
    return route.name.startswith("appointments:") or route.path.startswith("/api/appointments")


def extend(scene: Any) -> None:
    world = scene.world
    dept = pm.PatientDepartment.objects.get(patient=scene.patient).department
    head = world.actor(f"head.{dept.code}")
    today = selectors.today_for(head)
    schedule = services.save_schedule(
        head,
        {
            "name": "全天门诊",
            "department": dept.pk,
            "doctor": world.staff[f"doctor.{dept.code}"].pk,
            "weekdays": [str(d) for d in range(1, 8)],
            "sessions": "00:00-24:00",
            "slot_minutes": 60,
            "capacity": 4,
            "valid_from": (today - timedelta(days=1)).isoformat(),
            "valid_to": (today + timedelta(days=2)).isoformat(),
            "active": "on",
        },
    )
    # Today's first slot may already be over, so these two are written as a booking made
    # earlier in the day would have left them.
    start = local_instant(today, time(0, 0), selectors.zone_of(world.org))
    slot_today = am.Slot.objects.create(
        organisation=world.org,
        department=dept,
        doctor=schedule.doctor,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        local_date=today,
        capacity=4,
        booked=2,
    )

    def booked(patient: pm.Patient, **extra: Any) -> am.Appointment:
        return am.Appointment.objects.create(
            organisation=world.org,
            patient=patient,
            slot=slot_today,
            department=dept,
            doctor=schedule.doctor,
            starts_at=slot_today.starts_at,
            local_date=today,
            booked_by=world.staff[f"nurse.{dept.code}"],
            **extra,
        )

    scene.extra["appointment"] = booked(scene.patient)
    scene.extra["waiting"] = booked(
        scene.second,
        status=am.Appointment.Status.CHECKED_IN,
        queue_number=1,
        checked_in_at=start,
    )
    am.QueueCounter.objects.create(department=dept, day=today, last_number=1)
    scene.extra["slot"] = am.Slot.objects.filter(
        schedule=schedule, local_date=today + timedelta(days=1)
    ).first()
    scene.extra["schedule"] = schedule
    scene.extra["department"] = dept


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "appointment_id" in route.path:
        completes = route.name.endswith("complete") or route.path.endswith("/complete")
        values["appointment_id"] = scene.extra["waiting" if completes else "appointment"].pk
    if "schedule_id" in route.path:
        values["schedule_id"] = scene.extra["schedule"].pk
    if "slot_id" in route.path:
        values["slot_id"] = scene.extra["slot"].pk
    return values


def _schedule_form(scene: Any) -> dict[str, Any]:
    schedule = scene.extra["schedule"]
    return {
        "name": "周末门诊",
        "department": schedule.department_id,
        "doctor": "",
        "weekdays": ["6", "7"],
        "sessions": "08:00-10:00",
        "slot_minutes": "30",
        "capacity": "2",
        "valid_from": schedule.valid_from.isoformat(),
        "valid_to": schedule.valid_to.isoformat(),
        "active": "on",
        "version": schedule.version,
    }


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not route.name.startswith("appointments:"):
        return None
    appt = scene.extra["appointment"]
    slot = scene.extra["slot"]
    bodies: dict[str, dict[str, Any]] = {
        "appointments:book": {
            "patient": scene.patient.pk,
            "slot": slot.pk,
            "kind": "revisit",
            "reason": "血压复查",
        },
        "appointments:call_next": {"department": scene.extra["department"].pk},
        "appointments:call_result": {"outcome": "remind_later"},
        "appointments:reschedule": {"slot": slot.pk, "version": appt.version},
        "appointments:cancel": {"reason": "患者出差", "version": appt.version},
        "appointments:schedule_create": _schedule_form(scene),
        "appointments:schedule_edit": _schedule_form(scene),
        "appointments:slot_status": {"status": "closed"},
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    if route.transport != "api" or not route.path.startswith("/api/appointments"):
        return None
    appt = scene.extra["appointment"]
    slot = scene.extra["slot"]
    action = route.path.rsplit("/", 1)[-1]
    if route.method == "POST" and route.path == "/api/appointments":
        return {"patient_id": scene.patient.pk, "slot_id": slot.pk, "kind": "revisit"}, {}
    if action == "reschedule":
        return {"slot_id": slot.pk, "version": appt.version}, {}
    if action == "cancel":
        return {"reason": "", "version": appt.version}, {}
    if action == "call-next":
        return {"department": scene.extra["department"].pk}, {}
    return None, {}

"""The portal's Today, appointment, history, plan and care-team routes in the shared security
and audit tests (tests/security/scenario.py).

The scene's patient gets a dose due now, a booked revisit and an open slot of their
department; every portal route gets valid input against those.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.appointments import models as am
from careloop.kit.clock import utc_now
from careloop.patients import models as pm
from careloop.reminders import services as reminder_services

ROUTES = (
    "portal:today",
    "portal:dose",
    "portal:reading",
    "portal:appointments",
    "portal:appointment_book",
    "portal:appointment_reschedule",
    "portal:appointment_cancel",
    "portal:history",
    "portal:plan",
    "portal:team",
)


def _ours(route: Any) -> bool:
    return route.name in ROUTES


def _slot(scene: Any, dept: Any, days: int) -> am.Slot:
    start = utc_now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return am.Slot.objects.create(
        organisation=scene.world.org,
        department=dept,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        local_date=start.date(),
        capacity=3,
    )


def extend(scene: Any) -> None:
    p = scene.patient
    dept = pm.PatientDepartment.objects.filter(patient=p).first().department
    scene.extra["portal_dose"] = reminder_services.schedule_one(
        organisation_id=p.organisation_id,
        patient_id=p.pk,
        kind="medication",
        source_key=f"scene:{p.pk}:portal-dose",
        due_at=utc_now() - timedelta(minutes=5),
        time_zone=p.time_zone,
        payload={
            "title": "按时服药",
            "title_en": "Take your medicine",
            "medication": "氨氯地平",
            "dose": "5 mg",
        },  # fmt: skip
    )
    booked_in = _slot(scene, dept, 3)
    booked_in.booked = 1
    booked_in.save(update_fields=["booked"])
    scene.extra["portal_appointment"] = am.Appointment.objects.create(
        organisation=scene.world.org,
        patient=p,
        slot=booked_in,
        department=dept,
        starts_at=booked_in.starts_at,
        local_date=booked_in.local_date,
    )
    scene.extra["portal_slot"] = _slot(scene, dept, 4)


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "occurrence_id" in route.path:
        values["occurrence_id"] = scene.extra["portal_dose"].pk
    if "appointment_id" in route.path:
        values["appointment_id"] = scene.extra["portal_appointment"].pk
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    slot = scene.extra["portal_slot"].pk
    bodies: dict[str, dict[str, Any]] = {
        "portal:dose": {"answer": "taken"},
        "portal:reading": {"measure": "bp", "bp-systolic": "128", "bp-diastolic": "82"},
        "portal:appointment_book": {"slot": slot, "idempotency_key": "scene-booking"},
        "portal:appointment_reschedule": {"slot": slot, "version": 1},
        "portal:appointment_cancel": {"version": 1, "reason": ""},
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

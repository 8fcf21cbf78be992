"""Care plan, reminder and operations routes in the shared security and audit tests.

The scene's patient gets a reminder waiting to be sent and a dead letter. Plan templates and an
enrolment are made only when a route needs them (loading the plan files costs time, and most
security tests never touch a plan).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

ENROLLED_PLAN = "hypertension"  # the enrolment that /api/enrolments/{id} routes act on
NEW_PLAN = "heart-failure"  # the plan that enrol and preview ask for


def extend(scene: Any) -> None:
    p = scene.patient
    now = utc_now()

    def one(name: str, due: Any) -> rm.Occurrence:
        return reminder_services.schedule_one(
            organisation_id=p.organisation_id,
            patient_id=p.pk,
            kind="call",
            source_key=f"scene:{p.pk}:{name}",
            due_at=due,
            time_zone=p.time_zone,
            payload={"title": "护士电话随访", "title_en": "Nurse follow-up call"},
        )

    scene.extra["reminder"] = one("reminder", now + timedelta(hours=1))
    dead = one("dead", now - timedelta(hours=2))
    rm.Attempt.objects.create(
        occurrence=dead,
        organisation_id=p.organisation_id,
        patient=p,
        dedupe_key=f"scene:{dead.pk}:0:sms",
        channel="sms",
        provider="aliyun_sms",
        address_hint="139****0000",
        outcome=rm.Attempt.Outcome.PERMANENT,
        error_code="isv.MOBILE_NUMBER_ILLEGAL",
        detail="invalid number",
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2),
    )
    rm.Occurrence.objects.filter(pk=dead.pk).update(
        status=rm.Status.DEAD, reason="invalid_address", wake_at=None, tries=1
    )
    scene.extra["dead_letter"] = dead


def _plan(code: str) -> cm.PlanTemplate:
    if not cm.PlanTemplate.objects.filter(code=code, organisation__isnull=True).exists():
        plan_services.load_templates()
    return cm.PlanTemplate.objects.get(code=code, organisation__isnull=True)


def _enrolment(scene: Any) -> cm.Enrolment:
    if "enrolment" not in scene.extra:
        nurse = scene.world.actor("nurse.cardiology")
        dept = scene.patient.department_links.first().department
        if dept.code != "cardiology":
            nurse = scene.world.actor(f"nurse.{dept.code}")
        scene.extra["enrolment"] = plan_services.enrol(
            nurse, scene.patient.pk, _plan(ENROLLED_PLAN).pk
        )
    return scene.extra["enrolment"]


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    path = route.path
    if path.startswith("/api/enrolments/"):
        return {"enrolment_id": _enrolment(scene).pk}
    if path.startswith("/api/operations/dead-letters/") or route.name == "operations:retry":
        return {"occurrence_id": scene.extra["dead_letter"].pk}
    if path.startswith("/api/occurrences/"):
        return {"occurrence_id": scene.extra["reminder"].pk}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if route.name == "operations:retry":
        return {"confirm": "1"}
    if route.name == "operations:dispatch":
        return {"action": "pause", "reason": "provider maintenance"}
    return None


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    name = route.name
    if name == "POST /api/patients/{patient_id}/enrolments/preview":
        return {"template_id": _plan(NEW_PLAN).pk, "days": 7}, {}
    if name == "POST /api/patients/{patient_id}/enrolments":
        return {"template_id": _plan(NEW_PLAN).pk}, {}
    if name == "POST /api/enrolments/{enrolment_id}/end":
        return {"reason": "plan complete", "version": _enrolment(scene).version}, {}
    if name == "PATCH /api/enrolments/{enrolment_id}":
        adjustments = {"diet-education": {"off": True}}
        return {"adjustments": adjustments, "version": _enrolment(scene).version}, {}
    if name == "PUT /api/patients/{patient_id}/reminder-preferences":
        return {"daily_cap": 5, "dose_times": {"bid": ["07:30", "19:30"]}}, {}
    if name == "POST /api/occurrences/{occurrence_id}/acknowledge":
        return {}, {}
    return None

"""The care plan pages, the reminder link page and the task list in the shared security and
audit tests (tests/security/scenario.py).

Nothing is added to every scene: the enrolment, the reminder behind the link and the task are
made the first time a route asks for them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.alerts import models as am
from careloop.alerts import services as task_services
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.reminders import links
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

ENROLLED_PLAN = "hypertension"  # the scene patient's enrolment (end, adjust, calendar)
NEW_PLAN = "heart-failure"  # the plan the enrol page is asked to enrol in


def extend(scene: Any) -> None:
    """Nothing up front; see the module docstring."""


def _plan(code: str) -> cm.PlanTemplate:
    if not cm.PlanTemplate.objects.filter(code=code, organisation__isnull=True).exists():
        plan_services.load_templates()
    return cm.PlanTemplate.objects.get(code=code, organisation__isnull=True)


def _department_code(scene: Any) -> str:
    return str(scene.patient.department_links.first().department.code)


def enrolment(scene: Any) -> cm.Enrolment:
    if "enrolment" not in scene.extra:
        nurse = scene.world.actor(f"nurse.{_department_code(scene)}")
        scene.extra["enrolment"] = plan_services.enrol(
            nurse, scene.patient.pk, _plan(ENROLLED_PLAN).pk
        )
    found: cm.Enrolment = scene.extra["enrolment"]
    found.refresh_from_db()
    return found


def link_reminder(scene: Any) -> rm.Occurrence:
    """A dose reminder due soon: its message link is valid."""
    if "link_reminder" not in scene.extra:
        p = scene.patient
        scene.extra["link_reminder"] = reminder_services.schedule_one(
            organisation_id=p.organisation_id,
            patient_id=p.pk,
            kind="medication",
            source_key=f"scene:{p.pk}:link",
            due_at=utc_now() + timedelta(hours=1),
            time_zone=p.time_zone,
            payload={"title": "按时服药", "title_en": "Take your medicine"},
        )
    found: rm.Occurrence = scene.extra["link_reminder"]
    return found


def task(scene: Any) -> am.Task:
    if "task" not in scene.extra:
        p = scene.patient
        scene.extra["task"] = task_services.open_task(
            organisation_id=p.organisation_id,
            patient_id=p.pk,
            kind=am.Task.Kind.CALL_PATIENT,
            source_key=f"scene:{p.pk}:task",
            due_at=utc_now(),
            reason="no acknowledgement",
            department_id=scene.patient.department_links.first().department_id,
        )
    found: am.Task = scene.extra["task"]
    return found


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if route.transport != "page":
        return {}
    if route.name in ("careplans:enrolment", "careplans:end", "careplans:adjust"):
        return {"enrolment_id": enrolment(scene).pk}
    if route.name == "reminders:link":
        return {"token": links.token_for(link_reminder(scene).source_key)}
    if route.name == "tasks:close":
        return {"task_id": task(scene).pk}
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    name = route.name
    if name == "careplans:enrol":
        return {"template": _plan(NEW_PLAN).pk}
    if name == "careplans:end":
        return {"reason": "plan complete", "version": enrolment(scene).version}
    if name == "careplans:adjust":
        e = enrolment(scene)
        body: dict[str, Any] = {"configured": "1", "version": e.version}
        for code in e.template.activities.exclude(code="diet-education").values_list(
            "code", flat=True
        ):
            body[f"on-{code}"] = "on"
        return body
    if name == "careplans:preferences":
        return {"daily_cap": "5", "dose-bid": "07:30, 19:30"}
    if name == "reminders:link":
        return {"answer": "taken"}
    if name == "tasks:close":
        return {"outcome": "reached", "note": "spoke to the patient"}
    return None


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

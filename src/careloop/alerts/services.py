"""Every write of worklist tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from careloop.accounts.actor import Actor
from careloop.accounts.models import CareTeamMember
from careloop.accounts.roles import Action
from careloop.alerts import models as am
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

OUTCOMES = {
    # Call results (metrics.md, "Call result" taxonomy) and task outcomes.
    "reached": "reached",
    "agreed_to_visit": "agreed_to_visit",
    "remind_later": "remind_later",
    "no_answer": "no_answer",
    "already_visited": "already_visited",
    "unavailable": "unavailable",
    "wrong_number": "wrong_number",
    "changed_facility": "changed_facility",
    "moved": "moved",
    "died": "died",
    "refused": "refused",
    "done": "done",
    "other": "other",
}
REACHED = {"reached", "agreed_to_visit", "remind_later", "already_visited", "refused", "done"}


def _assignee(patient_id: int, department_id: int | None, role: str) -> Any:
    link = (
        pm.PatientDepartment.objects.filter(patient_id=patient_id)
        .filter(**({"department_id": department_id} if department_id else {}))
        .select_related("care_team")
        .first()
    )
    team = link.care_team if link else None
    if team is None:
        return None
    if role == am.Task.Assignee.DOCTOR:
        return team.responsible_doctor
    wanted = (
        CareTeamMember.TeamRole.DOCTOR if role == "family_doctor" else CareTeamMember.TeamRole.NURSE
    )
    member = (
        team.memberships.filter(team_role=wanted, staff__is_active=True)
        .select_related("staff")
        .first()
    )
    return member.staff if member else None


def open_task(
    *,
    organisation_id: int,
    patient_id: int,
    kind: str,
    source_key: str,
    due_at: datetime,
    reason: str = "",
    role: str = am.Task.Assignee.NURSE,
    department_id: int | None = None,
    occurrence_id: int | None = None,
) -> am.Task:
    """Open a task once per source key (a retry or a second worker gets the same task)."""
    existing = am.Task.objects.filter(source_key=source_key).first()
    if existing is not None:
        return existing
    if department_id is None:
        department_id = (
            pm.PatientDepartment.objects.filter(patient_id=patient_id)
            .order_by("id")
            .values_list("department_id", flat=True)
            .first()
        )
    task = am.Task(
        organisation_id=organisation_id,
        patient_id=patient_id,
        department_id=department_id,
        kind=kind,
        assignee_role=role,
        assignee=_assignee(patient_id, department_id, role),
        reason=reason[:200],
        source_key=source_key,
        occurrence_id=occurrence_id,
        due_at=due_at,
    )
    try:
        with transaction.atomic():
            task.save()
    except IntegrityError:
        return am.Task.objects.get(source_key=source_key)
    return task


def visible_tasks(actor: Actor) -> Any:
    qs = am.Task.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(department_id__in=actor.department_ids)
    return qs


def get_task(actor: Actor, task_id: int) -> am.Task:
    patient_selectors.require(actor, Action.TASK_WORK)
    task = visible_tasks(actor).select_related("patient").filter(pk=task_id).first()
    if task is None:
        raise NotFound()
    return task


def close_task(actor: Actor, task_id: int, *, outcome: str, note: str = "") -> am.Task:
    """Close a task with an outcome; a reached patient acknowledges the reminder behind it."""
    task = get_task(actor, task_id)
    if outcome not in OUTCOMES:
        raise ValidationFailed(details={"outcome": ["choose an outcome"]})
    with transaction.atomic():
        locked = am.Task.objects.select_for_update().get(pk=task.pk)
        if locked.status != am.Task.Status.OPEN:
            raise Conflict("This task is already closed.")
        locked.status = am.Task.Status.DONE
        locked.outcome = outcome
        locked.note = (note or "")[:1000]
        locked.closed_at = utc_now()
        locked.closed_by = actor.user
        locked.save()
        audit.record(
            actor,
            "task.close",
            patient_id=locked.patient_id,
            obj=locked,
            detail={"outcome": outcome},
        )
        if locked.occurrence_id and outcome in REACHED:
            from careloop.reminders import services as reminder_services

            reminder_services.acknowledge(
                locked.occurrence_id, source="staff_call", actor_name=actor.user.get_username()
            )
    return locked

"""Every write of worklist tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

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


# --- alerts: what staff do with them ------------------------------------------------------------

DISMISS_REASONS = ("false_reading", "known_condition", "duplicate", "not_relevant", "other")
RESOLVE_OUTCOMES = (
    "contacted_patient",
    "plan_adjusted",
    "medication_changed",
    "visit_booked",
    "referred",
    "advice_given",
    "no_action_needed",
    "other",
)


def visible_alerts(actor: Actor) -> Any:
    """Alerts of the patients the actor's departments look after (all, for an org admin)."""
    qs = am.Alert.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(department_id__in=actor.department_ids)
    return qs


def get_alert(actor: Actor, alert_id: int, *, action: str = "alert.read") -> am.Alert:
    """An alert of the actor's departments; otherwise NotFound, the attempt audited as denied
    under `action` (what the actor was trying to do)."""
    patient_selectors.require(actor, Action.TASK_WORK)
    alert = visible_alerts(actor).select_related("patient", "owner").filter(pk=alert_id).first()
    if alert is None:
        audit.record_denied(
            actor,
            action,
            object_type="alerts.alert",
            object_id=alert_id,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return alert


def _locked(alert_id: int) -> am.Alert:
    return am.Alert.objects.select_for_update().get(pk=alert_id)


def acknowledge_alert(actor: Actor, alert_id: int) -> am.Alert:
    """Take an alert on: it is now being handled, by the actor unless someone owns it."""
    # The scope check comes first, outside the transaction, so that a refusal stays audited.
    get_alert(actor, alert_id, action="alert.acknowledge")
    with transaction.atomic():
        alert = _locked(alert_id)
        if alert.status != am.Alert.Status.OPEN:
            raise Conflict(_("This alert is no longer open."))
        alert.status = am.Alert.Status.ACKNOWLEDGED
        alert.acknowledged_at = utc_now()
        alert.acknowledged_by = actor.user
        if alert.owner_id is None:
            alert.owner = actor.user
        alert.save()
        audit.record(actor, "alert.acknowledge", patient_id=alert.patient_id, obj=alert)
    return alert


def resolve_alert(actor: Actor, alert_id: int, *, outcome: str, note: str = "") -> am.Alert:
    """Close an alert with what was done about it."""
    errors: dict[str, list[str]] = {}
    if outcome not in RESOLVE_OUTCOMES:
        errors["outcome"] = [str(_("Choose what was done."))]
    if outcome == "other" and not (note or "").strip():
        errors["note"] = [str(_("Say what was done."))]
    if len(note or "") > 1000:
        errors["note"] = [str(_("At most 1,000 characters."))]
    if errors:
        raise ValidationFailed(details=errors)
    return _close(actor, alert_id, am.Alert.Status.RESOLVED, outcome, note, "alert.resolve")


def dismiss_alert(actor: Actor, alert_id: int, *, reason: str, note: str = "") -> am.Alert:
    """Close an alert that needs nothing done, with the reason."""
    errors: dict[str, list[str]] = {}
    if reason not in DISMISS_REASONS:
        errors["reason"] = [str(_("Choose why the alert is dismissed."))]
    if reason == "other" and not (note or "").strip():
        errors["note"] = [str(_("Say why."))]
    if len(note or "") > 1000:
        errors["note"] = [str(_("At most 1,000 characters."))]
    if errors:
        raise ValidationFailed(details=errors)
    return _close(actor, alert_id, am.Alert.Status.DISMISSED, reason, note, "alert.dismiss")


def _close(
    actor: Actor, alert_id: int, status: str, outcome: str, note: str, action: str
) -> am.Alert:
    get_alert(actor, alert_id, action=action)  # outside the transaction: a refusal stays audited
    with transaction.atomic():
        alert = _locked(alert_id)
        if alert.status not in am.Alert.ACTIVE:
            raise Conflict(_("This alert is already closed."))
        now = utc_now()
        if alert.acknowledged_at is None:
            alert.acknowledged_at = now
            alert.acknowledged_by = actor.user
        alert.status = status
        alert.outcome = outcome
        alert.note = (note or "").strip()[:1000]
        alert.closed_at = now
        alert.closed_by = actor.user
        alert.save()
        audit.record(
            actor, action, patient_id=alert.patient_id, obj=alert, detail={"outcome": outcome}
        )
    return alert


def assign(
    actor: Actor,
    *,
    alert_ids: Sequence[int] = (),
    task_ids: Sequence[int] = (),
    to: int,
) -> int:
    """Give alerts and tasks to a colleague of one of the actor's departments; the count moved."""
    patient_selectors.require(actor, Action.TASK_WORK)
    from careloop.accounts.models import Staff

    colleagues = Staff.objects.filter(
        organisation_id=actor.organisation_id or 0, is_active=True, pk=to
    )
    if not actor.is_org_wide:
        colleagues = colleagues.filter(memberships__department_id__in=actor.department_ids)
    staff = colleagues.distinct().first()
    if staff is None:
        raise ValidationFailed(details={"to": [str(_("Choose a colleague."))]})
    if len(alert_ids) + len(task_ids) > 500:
        raise ValidationFailed(details={"items": [str(_("At most 500 items at a time."))]})
    moved = 0
    with transaction.atomic():
        alerts = visible_alerts(actor).filter(pk__in=list(alert_ids), status__in=am.Alert.ACTIVE)
        for alert in alerts.select_for_update():
            alert.owner = staff
            alert.save(update_fields=["owner"])
            audit.record(
                actor, "alert.assign", patient_id=alert.patient_id, obj=alert, detail={"to": to}
            )
            moved += 1
        tasks = visible_tasks(actor).filter(pk__in=list(task_ids), status=am.Task.Status.OPEN)
        for task in tasks.select_for_update():
            task.assignee = staff
            task.save(update_fields=["assignee"])
            audit.record(
                actor, "task.assign", patient_id=task.patient_id, obj=task, detail={"to": to}
            )
            moved += 1
    return moved


def set_personal_threshold(
    actor: Actor, patient_id: int, rule: str, params: dict[str, float], reason: str = ""
) -> am.PersonalThreshold | None:
    """Set (or, with no params, remove) a patient's own threshold for a rule."""
    from careloop.alerts import evaluation

    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False
    )
    ruleset = evaluation.ruleset_for(patient.organisation_id)
    try:
        spec = ruleset.rule(rule)
    except KeyError:
        raise ValidationFailed(details={"rule": [str(_("Unknown rule."))]}) from None
    allowed = set(getattr(spec, "params", {}) or {})
    errors: dict[str, list[str]] = {}
    clean: dict[str, float] = {}
    for name, value in params.items():
        if name not in allowed:
            errors[name] = [str(_("This rule has no such threshold."))]
            continue
        try:
            clean[name] = float(value)
        except (TypeError, ValueError):
            errors[name] = [str(_("Enter a number."))]
    if errors:
        raise ValidationFailed(details=errors)
    with transaction.atomic():
        if not clean:
            am.PersonalThreshold.objects.filter(patient_id=patient.pk, rule=rule).delete()
            audit.record(actor, "threshold.remove", patient_id=patient.pk, detail={"rule": rule})
            return None
        row, _created = am.PersonalThreshold.objects.update_or_create(
            patient_id=patient.pk,
            rule=rule,
            defaults={
                "params": clean,
                "reason": reason[:300],
                "set_by": actor.user,
                "set_at": utc_now(),
            },
        )
        audit.record(
            actor, "threshold.set", patient_id=patient.pk, obj=row, detail={"rule": rule, **clean}
        )
    return row

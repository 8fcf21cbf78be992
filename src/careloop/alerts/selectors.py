"""Reads of the worklist, scoped to the acting user."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.alerts import models as am
from careloop.alerts import services

SCOPES = ("mine", "department")


@dataclass(frozen=True)
class TaskFilter:
    scope: str = "department"  # mine: assigned to me; department: every task I can see
    department: int | None = None
    kind: str = ""
    overdue: bool = False
    newest_due_first: bool = False


def departments(actor: Actor) -> QuerySet[Department]:
    """Departments whose tasks the actor may see."""
    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    return qs if actor.is_org_wide else qs.filter(pk__in=actor.department_ids)


def open_tasks(actor: Actor, flt: TaskFilter, *, now: object) -> QuerySet[am.Task]:
    """Open tasks the actor may work on, filtered and sorted by due time."""
    qs = services.visible_tasks(actor).filter(status=am.Task.Status.OPEN)
    if flt.scope == "mine":
        qs = qs.filter(Q(assignee=actor.user))
    if flt.department:
        qs = qs.filter(department_id=flt.department)
    if flt.kind in am.Task.Kind.values:
        qs = qs.filter(kind=flt.kind)
    if flt.overdue:
        qs = qs.filter(due_at__lt=now)
    order = ("-due_at", "-id") if flt.newest_due_first else ("due_at", "id")
    return qs.select_related("patient", "department", "assignee").order_by(*order)

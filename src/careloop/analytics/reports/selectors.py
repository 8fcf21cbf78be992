"""Reads of the monthly reports, scoped to the acting user.

Only organisation admins (every department of their organisation) and department heads (their
own departments) reach a department's report and its e-mail schedule: other roles are refused
(403, audited), and a department outside the actor's scope is not found (404, audited).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Staff
from careloop.accounts.roles import Action, Role
from careloop.analytics import registry
from careloop.analytics.reports import models as rm
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound

# Both actions: the roles that see the dashboards and run the department's schedules.
ACTIONS = (Action.ANALYTICS_VIEW, Action.SCHEDULE_MANAGE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def require(actor: Actor) -> None:
    """Refuse (403, audited) a role that does not run department reports."""
    missing = [a for a in ACTIONS if not actor.can(a)]
    if missing:
        audit.record_denied(actor, str(missing[0]), detail={"reason": "role", "on": "report"})
        raise Forbidden()


def departments(actor: Actor) -> QuerySet[Department]:
    """The departments whose report the actor may read and schedule."""
    org = actor.organisation_id
    if org is None:
        return Department.objects.none()
    qs = Department.objects.filter(organisation_id=org)
    if actor.role == Role.ORG_ADMIN:
        return qs.order_by("name", "pk")
    if actor.role == Role.DEPT_HEAD:
        return qs.filter(pk__in=actor.department_ids).order_by("name", "pk")
    return qs.none()


def department(actor: Actor, department_id: int) -> Department:
    """One department in the actor's scope, else 404 (audited)."""
    require(actor)
    found = departments(actor).select_related("organisation").filter(pk=department_id).first()
    if found is None:
        audit.record_denied(
            actor,
            "report.view",
            object_type="accounts.department",
            object_id=department_id,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return found


def zone_of(department: Department) -> ZoneInfo:
    try:
        return ZoneInfo(department.organisation.time_zone)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def local_today(department: Department) -> date:
    return utc_now().astimezone(zone_of(department)).date()


def last_month(department: Department) -> date:
    """The last complete month in the organisation's time zone (what a report covers)."""
    return registry.add_months(registry.month_of(local_today(department)), -1)


def parse_month(text: str) -> date | None:
    """`YYYY-MM` as the first day of that month, or None when it is not one."""
    match = _MONTH.match(text or "")
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 2000:
        return None
    return date(year, month, 1)


def reportable(department: Department, month: date) -> bool:
    """A month has a report once it has begun (the current month shows figures so far)."""
    return month <= registry.month_of(local_today(department))


def schedule_of(department: Department) -> rm.ReportSchedule | None:
    return rm.ReportSchedule.objects.filter(department=department).first()


def heads_of(department: Department) -> QuerySet[Staff]:
    """The department's heads: active staff with the department-head role and a membership."""
    return Staff.objects.filter(
        organisation_id=department.organisation_id,
        role=Role.DEPT_HEAD,
        is_active=True,
        memberships__department=department,
    ).distinct()


def recipients(department: Department, schedule: rm.ReportSchedule | None) -> list[Staff]:
    """Who gets the e-mail: the department heads, then the schedule's other recipients (staff
    of the organisation, active, with an e-mail address); each address once."""
    people: list[Staff] = list(heads_of(department).order_by("username"))
    if schedule is not None:
        people += list(
            schedule.extra_recipients.filter(
                organisation_id=department.organisation_id, is_active=True
            ).order_by("username")
        )
    seen: set[str] = set()
    found = []
    for person in people:
        address = (person.email or "").strip()
        if not address or address.lower() in seen:
            continue
        seen.add(address.lower())
        found.append(person)
    return found


def candidates(actor: Actor) -> QuerySet[Staff]:
    """Staff of the actor's organisation who may be added as recipients (with an address)."""
    org = actor.organisation_id
    if org is None:
        return Staff.objects.none()
    return (
        Staff.objects.filter(organisation_id=org, is_active=True)
        .exclude(email="")
        .order_by("display_name", "username")
    )


def recent_runs(department: Department, limit: int = 12) -> list[rm.ReportRun]:
    return list(
        rm.ReportRun.objects.filter(department=department)
        .select_related("staff")
        .order_by("-created_at", "-id")[:limit]
    )


def overview(actor: Actor) -> list[dict[str, Any]]:
    """Each department in scope with its schedule (if any), recipients and latest e-mails."""
    require(actor)
    rows = []
    schedules = {
        s.department_id: s
        for s in rm.ReportSchedule.objects.filter(
            organisation_id=actor.organisation_id or 0
        ).prefetch_related("extra_recipients")
    }
    for dept in departments(actor).select_related("organisation"):
        schedule = schedules.get(dept.pk)
        rows.append(
            {
                "department": dept,
                "schedule": schedule,
                "recipients": recipients(dept, schedule),
                "runs": recent_runs(dept, 5),
                "last_month": last_month(dept),
            }
        )
    return rows

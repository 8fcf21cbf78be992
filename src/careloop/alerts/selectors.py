"""Reads of the worklist, scoped to the acting user."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Membership, Staff
from careloop.accounts.roles import Action, Role, allowed
from careloop.alerts import labels, services
from careloop.alerts import models as am
from careloop.appointments import selectors as appointment_selectors
from careloop.audit import services as audit
from careloop.kit.clock import age_on, utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.kit.pagination import MAX_PAGE_SIZE, Page, paginate, to_int
from careloop.observations import selectors as observation_selectors
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

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


# --- the staff worklist ("my work today") -------------------------------------------------------

SECTIONS = ("urgent", "due", "overdue")
OWNERS = ("anyone", "me", "unassigned")  # or a colleague's id
SECTION_LIMIT = 1000  # rows a section lists at most (alerts and calls; see worklist())
URGENT_RANK = am.PRIORITY_RANK["urgent"]  # stat, asap and urgent rank at or below this
ROUTINE_RANK = am.PRIORITY_RANK["routine"]
_ICD10_PREFIX = re.compile(r"^[A-Z][0-9A-Z.]{0,7}$")


@dataclass
class WorklistCriteria:
    department: int | None = None
    condition: str = ""  # ICD-10 code prefix of a diagnosis on the record ("I10", "E11")
    priority: str = ""  # one of Priority; tasks and overdue patients count as routine
    owner: str = "anyone"  # anyone | me | unassigned | a colleague's id
    page: Any = 1
    size: Any = 25


@dataclass
class WorkItem:
    """One row of the worklist: an alert, a task or an overdue patient, with what the page shows."""

    section: str  # urgent | due | overdue
    kind: str  # alert | task | overdue
    id: int  # the alert's, the task's, or (overdue) the patient's id
    patient: pm.Patient
    reason: str
    priority: str
    due_at: datetime | None = None
    late: bool = False  # past its due time (alerts: past the SLA)
    days_overdue: int | None = None
    owner: Any = None
    role: Any = ""  # who it is for when nobody owns it (a lazy label)
    status: str = ""
    department_id: int | None = None
    age: int | None = None
    bp: Any = None  # observations Latest rows
    glucose: Any = None
    spark: list[float] = field(default_factory=list)
    obj: Any = None  # the Alert, Task or OverdueRow

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.id}"


@dataclass
class WorklistPage(Page):
    counts: dict[str, int] = field(default_factory=dict)
    capped: list[str] = field(default_factory=list)  # sections with more than SECTION_LIMIT
    now: datetime | None = None


# Active alerts, written with literal values exactly as the partial indexes' condition: SQLite
# proves a partial index usable only against literals (an IN list of bound parameters is not
# matched), and PostgreSQL gets the same text.
_ACTIVE = RawSQL(  # noqa: S611 - constant text from the model's own choices, no input
    f'"{am.Alert._meta.db_table}"."status" IN ('
    + ", ".join(f"'{s}'" for s in am.Alert.ACTIVE)
    + ")",
    (),
    output_field=BooleanField(),
)


def condition_prefix(raw: str) -> str:
    """An ICD-10 prefix as typed ("i10", "E11.9 ") in stored form, or "" if it is not one."""
    code = (raw or "").strip().upper()
    return code if _ICD10_PREFIX.match(code) else ""


def colleagues(actor: Actor) -> QuerySet[Staff]:
    """Active clinical staff of the actor's departments: whom work may be given to."""
    qs = Staff.objects.filter(
        organisation_id=actor.organisation_id or 0,
        is_active=True,
        role__in=[r for r in Role if allowed(r, Action.TASK_WORK)],
    )
    if not actor.is_org_wide:
        qs = qs.filter(
            pk__in=Membership.objects.filter(department_id__in=actor.department_ids).values(
                "staff_id"
            )
        )
    return qs.order_by("display_name", "username")


def owner_choice(actor: Actor, raw: Any) -> str:
    """The owner filter as given, if valid: anyone, me, unassigned or a colleague's id."""
    value = str(raw or "anyone").strip()
    if value in OWNERS:
        return value
    if value.isdigit() and colleagues(actor).filter(pk=int(value)).exists():
        return value
    raise ValidationFailed(details={"owner": [str(_("Choose someone from your departments."))]})


def _end_of_today(actor: Actor) -> datetime:
    zone = appointment_selectors.org_zone(actor)
    today = utc_now().astimezone(zone).date()
    return datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)


def _scoped_alerts(actor: Actor, c: WorklistCriteria, owner: str) -> QuerySet[am.Alert]:
    qs = services.visible_alerts(actor).filter(_ACTIVE)
    if c.department:
        qs = qs.filter(department_id=c.department)
    if owner == "me":
        qs = qs.filter(owner=actor.user)
    elif owner == "unassigned":
        qs = qs.filter(owner__isnull=True)
    elif owner.isdigit():
        qs = qs.filter(owner_id=int(owner))
    if c.priority:
        # By rank, which the worklist index holds (the rank follows from the priority).
        qs = qs.filter(priority_rank=am.PRIORITY_RANK[c.priority])
    if c.condition:
        qs = qs.filter(patient_id__in=_with_condition(actor, c.condition))
    return qs


def _scoped_tasks(actor: Actor, c: WorklistCriteria, owner: str, until: datetime) -> Any:
    qs = services.visible_tasks(actor).filter(status=am.Task.Status.OPEN, due_at__lt=until)
    if c.department:
        qs = qs.filter(department_id=c.department)
    if owner == "me":
        qs = qs.filter(assignee=actor.user)
    elif owner == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    elif owner.isdigit():
        qs = qs.filter(assignee_id=int(owner))
    if c.condition:
        qs = qs.filter(patient_id__in=_with_condition(actor, c.condition))
    return qs


def _with_condition(actor: Actor, prefix: str) -> Any:
    return pm.Condition.objects.filter(
        organisation_id=actor.organisation_id or 0,
        icd10_code__startswith=prefix,
        deleted_at__isnull=True,
    ).values("patient_id")


def _bounded(qs: Any) -> int:
    """How many rows, counting no further than SECTION_LIMIT."""
    return int(qs.order_by()[:SECTION_LIMIT].count())


def _window(start: int, size: int, offset: int, count: int) -> tuple[int, int]:
    """The part [a, b) of a section of `count` rows (starting at `offset` in the whole list)
    that falls on the page [start, start + size)."""
    a = max(0, start - offset)
    b = min(count, start + size - offset)
    return a, max(a, b)


def worklist(actor: Actor, criteria: WorklistCriteria | None = None) -> WorklistPage:
    """My work today, in one list: active urgent alerts (most urgent, then soonest due), then
    today's calls (open tasks due by the end of today and routine alerts, by due time), then
    overdue patients (appointments.selectors.overdue, in its order: high priority, then days
    overdue). Only the rows of the requested page are read.

    Filters: department (one of the actor's), condition (ICD-10 prefix of a diagnosis), priority
    (alerts of that priority; tasks and overdue patients are routine), owner (me, unassigned, a
    colleague; overdue patients are nobody's, so they show only for anyone and unassigned).
    """
    patient_selectors.require(actor, Action.TASK_WORK)
    c = criteria or WorklistCriteria()
    if c.department and not departments(actor).filter(pk=c.department).exists():
        raise ValidationFailed(details={"department": [str(_("Choose one of your departments."))]})
    if c.priority and c.priority not in am.Priority.values:
        raise ValidationFailed(details={"priority": [str(_("Choose a priority."))]})
    raw_condition = c.condition
    c.condition = condition_prefix(raw_condition)
    if raw_condition.strip() and not c.condition:
        raise ValidationFailed(details={"condition": [str(_("Enter an ICD-10 code, e.g. I10."))]})
    owner = owner_choice(actor, c.owner)
    now = utc_now()
    until = _end_of_today(actor)
    size = to_int(c.size, 25, low=1, high=MAX_PAGE_SIZE)

    alerts = _scoped_alerts(actor, c, owner)
    urgent_qs = alerts.filter(priority_rank__lte=URGENT_RANK)
    routine_qs = alerts.filter(priority_rank=ROUTINE_RANK)
    routine_only = c.priority in ("", am.Priority.ROUTINE)
    tasks_qs = _scoped_tasks(actor, c, owner, until) if routine_only else None
    with_overdue = routine_only and (owner in ("anyone", "unassigned"))

    # Counts stop at SECTION_LIMIT: each is then a bounded walk of its index, however long the
    # list (nobody works past the thousandth urgent alert; the page says "1000+").
    urgent_n = _bounded(urgent_qs) if c.priority != am.Priority.ROUTINE else 0
    routine_n = _bounded(routine_qs) if routine_only else 0
    tasks_n = _bounded(tasks_qs) if tasks_qs is not None else 0
    due_n = min(SECTION_LIMIT, routine_n + tasks_n)
    capped = [name for name, n in (("urgent", urgent_n), ("due", due_n)) if n >= SECTION_LIMIT]
    overdue = _Overdue(actor, c) if with_overdue else None
    overdue_n = overdue.total() if overdue is not None else 0
    counts = {"urgent": urgent_n, "due": due_n, "overdue": overdue_n}
    total = urgent_n + due_n + overdue_n
    pages = max(1, -(-total // size))
    number = to_int(c.page, 1, low=1, high=pages)
    start = (number - 1) * size

    items: list[WorkItem] = []
    a, b = _window(start, size, 0, urgent_n)
    if b > a:
        rows = _lean_alerts(urgent_qs).order_by("priority_rank", "due_at", "id")[a:b]
        items += [_alert_item("urgent", x, now) for x in rows]
    a, b = _window(start, size, urgent_n, counts["due"])
    if b > a:
        items += _due_items(routine_qs, tasks_qs, a, b, now)
    a, b = _window(start, size, urgent_n + counts["due"], overdue_n)
    if b > a and overdue is not None:
        items += [_overdue_item(r) for r in overdue.rows(a, b)]
    _decorate(items)
    audit.record(
        actor,
        "worklist.read",
        detail={
            "criteria": sorted(k for k in ("department", "condition", "priority") if getattr(c, k))
            + ([] if owner == "anyone" else ["owner"]),
            "results": total,
        },
    )
    return WorklistPage(
        items=items, number=number, size=size, total=total, counts=counts, capped=capped, now=now
    )


def urgent_alerts(actor: Actor, criteria: WorklistCriteria | None = None, limit: int = 50) -> Any:
    """Only the urgent section (what the worklist page polls for): the count and the first rows."""
    c = criteria or WorklistCriteria()
    c = WorklistCriteria(
        department=c.department,
        condition=c.condition,
        priority=c.priority if c.priority != am.Priority.ROUTINE else "",
        owner=c.owner,
        page=1,
        size=limit,
    )
    patient_selectors.require(actor, Action.TASK_WORK)
    if c.department and not departments(actor).filter(pk=c.department).exists():
        c.department = None
    c.condition = condition_prefix(c.condition)
    owner = owner_choice(actor, c.owner)
    now = utc_now()
    qs = _scoped_alerts(actor, c, owner).filter(priority_rank__lte=URGENT_RANK)
    total = _bounded(qs)
    rows = list(_lean_alerts(qs).order_by("priority_rank", "due_at", "id")[:limit])
    items = [_alert_item("urgent", x, now) for x in rows]
    _decorate(items)
    audit.record(actor, "worklist.read", detail={"section": "urgent", "results": total})
    return WorklistPage(
        items=items,
        number=1,
        size=limit,
        total=total,
        counts={"urgent": total},
        capped=["urgent"] if total >= SECTION_LIMIT else [],
        now=now,
    )


# What a worklist row shows, loaded without the rest (alert values, audit columns).
_ALERT_FIELDS = (
    "id",
    "patient_id",
    "department_id",
    "rule",
    "status",
    "priority",
    "priority_rank",
    "performer_role",
    "text_zh",
    "text_en",
    "due_at",
    "repeats",
)
_TASK_FIELDS = (
    "id",
    "patient_id",
    "department_id",
    "kind",
    "assignee_role",
    "status",
    "reason",
    "due_at",
)


# Choice labels looked up once (get_FOO_display() rebuilds its table on every call); they stay
# lazy, so a row's words are translated only when shown.
_ROUTES: dict[str, Any] = dict(am.Alert.Route.choices)
_TASK_KINDS: dict[str, Any] = dict(am.Task.Kind.choices)
_ASSIGNEES: dict[str, Any] = dict(am.Task.Assignee.choices)


def _STAFF_FIELDS(relation: str) -> tuple[str, ...]:  # noqa: N802 - reads as the constants above
    return (f"{relation}__id", f"{relation}__username", f"{relation}__display_name")


def _lean_alerts(qs: QuerySet[am.Alert]) -> QuerySet[am.Alert]:
    return qs.select_related("owner").only(*_ALERT_FIELDS, *_STAFF_FIELDS("owner"))


def _alert_item(section: str, alert: am.Alert, now: datetime) -> WorkItem:
    return WorkItem(
        section=section,
        kind="alert",
        id=alert.pk,
        patient=None,  # type: ignore[arg-type]  # filled in by _decorate
        reason=alert.text(get_language() or "zh-hans"),
        priority=alert.priority,
        due_at=alert.due_at,
        late=alert.due_at < now,
        owner=alert.owner,
        role=_ROUTES.get(alert.performer_role, alert.performer_role),
        status=alert.status,
        department_id=alert.department_id,
        obj=alert,
    )


def _due_items(routine_qs: Any, tasks_qs: Any, a: int, b: int, now: datetime) -> list[WorkItem]:
    """Rows a..b of routine alerts and today's tasks merged by due time: the first b of each by
    due time (from their indexes), merged; then only the chosen rows are loaded."""
    keys: list[tuple[datetime, int, str, int]] = [
        (due, 0, "alert", pk)
        for due, pk in routine_qs.order_by("due_at", "id").values_list("due_at", "id")[:b]
    ]
    if tasks_qs is not None:
        keys += [
            (due, 1, "task", pk)
            for due, pk in tasks_qs.order_by("due_at", "id").values_list("due_at", "id")[:b]
        ]
    keys.sort()
    chosen = keys[a:b]
    alert_ids = [pk for _d, _o, kind, pk in chosen if kind == "alert"]
    task_ids = [pk for _d, _o, kind, pk in chosen if kind == "task"]
    alert_rows = _lean_alerts(am.Alert.objects.all()).in_bulk(alert_ids) if alert_ids else {}
    task_rows = (
        am.Task.objects.select_related("assignee")
        .only(*_TASK_FIELDS, *_STAFF_FIELDS("assignee"))
        .in_bulk(task_ids)
        if task_ids
        else {}
    )
    items = []
    for _due, _order, kind, pk in chosen:
        if kind == "alert":
            items.append(_alert_item("due", alert_rows[pk], now))
            continue
        task = task_rows[pk]
        reason = str(_TASK_KINDS.get(task.kind, task.kind))
        if task.reason:
            reason = f"{reason}: {labels.reason_text(task.reason)}"
        items.append(
            WorkItem(
                section="due",
                kind="task",
                id=task.pk,
                patient=None,  # type: ignore[arg-type]
                reason=reason,
                priority=am.Priority.ROUTINE,
                due_at=task.due_at,
                late=task.due_at < now,
                owner=task.assignee,
                role=_ASSIGNEES.get(task.assignee_role, task.assignee_role),
                status=task.status,
                department_id=task.department_id,
                obj=task,
            )
        )
    return items


class _Overdue:
    """The overdue section: appointments.selectors.ranked_overdue, computed once per request
    and sliced here (the worklist audits what it shows)."""

    def __init__(self, actor: Actor, c: WorklistCriteria) -> None:
        self.actor = actor
        self.c = c
        self._all: list[Any] | None = None

    def _everyone(self) -> list[Any]:
        if self._all is None:
            crit = appointment_selectors.OverdueCriteria(department=self.c.department)
            rows = appointment_selectors.ranked_overdue(self.actor, crit)
            if self.c.condition:
                # The overdue list has no diagnosis filter: keep the patients with one.
                wanted = set(
                    _with_condition(self.actor, self.c.condition)
                    .filter(patient_id__in=[r.object_patient_id for r in rows])
                    .values_list("patient_id", flat=True)
                )
                rows = [r for r in rows if r.object_patient_id in wanted]
            self._all = rows
        return self._all

    def total(self) -> int:
        return len(self._everyone())

    def rows(self, a: int, b: int) -> list[Any]:
        return appointment_selectors.with_patients(self._everyone()[a:b])


def _overdue_item(row: Any) -> WorkItem:
    return WorkItem(
        section="overdue",
        kind="overdue",
        id=row.patient.pk,
        patient=row.patient,
        reason=overdue_reason(row),
        priority=am.Priority.URGENT if row.high_priority else am.Priority.ROUTINE,
        days_overdue=row.days_overdue,
        late=True,
        department_id=row.department_id,
        obj=row,
    )


def overdue_reason(row: Any) -> str:
    what = {
        "appointment": _("Missed appointment of %(day)s"),
        "revisit": _("Revisit due %(day)s"),
        "call": _("Follow-up call due %(day)s"),
    }.get(row.source, _("Follow-up due %(day)s")) % {"day": row.scheduled.isoformat()}
    if row.missed > 1:
        what += " " + ngettext("(%(n)d missed)", "(%(n)d missed)", row.missed) % {"n": row.missed}
    return what


def _decorate(items: list[WorkItem]) -> None:
    """Patients, ages, last readings and sparklines for the rows of one page."""
    if not items:
        return
    pids = {i.obj.patient_id for i in items if i.kind != "overdue"} | {
        i.id for i in items if i.kind == "overdue"
    }
    # Only what the row shows: the record's encrypted columns stay undecrypted.
    patients = pm.Patient.objects.only(
        "id", "organisation_id", "name", "sex", "date_of_birth", "time_zone"
    ).in_bulk(list(pids))
    latest = observation_selectors.latest_for(pids, ("bp", "glucose"))
    lines = observation_selectors.sparklines(pids, "bp", points=10)
    today = utc_now().date()
    for item in items:
        pid = item.id if item.kind == "overdue" else item.obj.patient_id
        item.patient = patients[pid]
        item.age = age_on(item.patient.date_of_birth, today)
        item.bp = latest.get((pid, "bp"))
        item.glucose = latest.get((pid, "glucose"))
        item.spark = lines.get(pid, [])


# --- alerts: lists and one alert ----------------------------------------------------------------

ALERT_SORTS = {
    "-raised": ("-raised_at", "-id"),
    "raised": ("raised_at", "id"),
    "priority": ("priority_rank", "due_at", "id"),
}


@dataclass
class AlertCriteria:
    status: str = "active"  # active | open | acknowledged | resolved | dismissed | all
    priority: str = ""
    rule: str = ""
    department: int | None = None
    patient: int | None = None
    sort: str = "-raised"
    page: Any = 1
    size: Any = 25


ALERT_STATUSES = ("active", "all", *am.Alert.Status.values)


def alerts(actor: Actor, c: AlertCriteria) -> Page:
    """Alerts of the actor's departments, filtered, newest first."""
    patient_selectors.require(actor, Action.TASK_WORK)
    qs = services.visible_alerts(actor)
    if c.status == "active":
        qs = qs.filter(status__in=list(am.Alert.ACTIVE))
    elif c.status in am.Alert.Status.values:
        qs = qs.filter(status=c.status)
    if c.priority in am.Priority.values:
        qs = qs.filter(priority=c.priority)
    if c.rule:
        qs = qs.filter(rule=c.rule[:60])
    if c.department:
        qs = qs.filter(department_id=c.department)
    if c.patient:
        qs = qs.filter(patient_id=c.patient)
    order = ALERT_SORTS.get(c.sort, ALERT_SORTS["-raised"])
    page = paginate(qs.select_related("patient", "owner").order_by(*order), c.page, c.size)
    audit.record(
        actor,
        "alert.list",
        detail={
            "criteria": sorted(
                k for k in ("priority", "rule", "department", "patient") if getattr(c, k)
            ),
            "status": c.status,
            "results": page.total,
        },
    )
    return page


def rule_codes(actor: Actor) -> list[str]:
    """The rule codes that have raised alerts the actor can see (for the list's filter)."""
    return sorted(
        set(services.visible_alerts(actor).values_list("rule", flat=True).distinct()[:200])
    )


def alert(actor: Actor, alert_id: int) -> am.Alert:
    """One alert of the actor's departments (404, audited, otherwise); the read is audited."""
    found = services.get_alert(actor, alert_id)
    audit.record(actor, "alert.read", patient_id=found.patient_id, obj=found)
    return found


def patient_alerts(actor: Actor, patient_id: int, limit: int = 50) -> list[am.Alert]:
    """A patient's alerts, newest first (the caller has authorised the patient)."""
    return list(
        services.visible_alerts(actor)
        .filter(patient_id=patient_id)
        .select_related("owner", "closed_by")
        .order_by("-raised_at", "-id")[:limit]
    )


def thresholds(actor: Actor, patient_id: int) -> list[am.PersonalThreshold]:
    """The patient's personal thresholds, by rule."""
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    rows = list(
        am.PersonalThreshold.objects.filter(patient_id=patient_id)
        .select_related("set_by")
        .order_by("rule")
    )
    audit.record(
        actor,
        "threshold.read",
        patient_id=patient_id,
        object_type="alerts.personalthreshold",
        detail={"count": len(rows)},
    )
    return rows


def work_item(actor: Actor, kind: str, pk: int) -> WorkItem:
    """One alert or task as a worklist row (after an action on it); NotFound outside scope."""
    now = utc_now()
    if kind == "alert":
        found = _lean_alerts(services.visible_alerts(actor)).filter(pk=pk).first()
        if found is None:
            raise NotFound()
        section = "urgent" if found.priority_rank <= URGENT_RANK else "due"
        item = _alert_item(section, found, now)
    else:
        task = services.visible_tasks(actor).filter(pk=pk).values_list("pk", flat=True).first()
        if task is None:
            raise NotFound()
        item = _due_items(am.Alert.objects.none(), am.Task.objects.filter(pk=pk), 0, 1, now)[0]
    _decorate([item])
    return item


def personal_threshold(patient_id: int, rule: str) -> am.PersonalThreshold | None:
    """The patient's own threshold for a rule (the caller has authorised the patient)."""
    return (
        am.PersonalThreshold.objects.filter(patient_id=patient_id, rule=rule)
        .select_related("set_by")
        .first()
    )

"""Follow-up operations (metrics.md, "Follow-up operations"): coverage, contact rate, task
completion, alert response against SLA, questionnaire completion.

Every figure is one grouped SQL query over the months asked for (a CASE expression puts each
row in its month), scoped to the cohort; dead patients are excluded from every month
(metrics.md, "Dead"). The helpers at the top are shared with the engagement and outcome
metrics.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    F,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from careloop.analytics.registry import (
    Breakdown,
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    as_of,
    local_bounds,
    register,
)
from careloop.analytics.registry import Value as Figure
from careloop.kit.clock import utc_now

GOOD = "#009E73"
BAD = "#D55E00"
WARNING = "#E69F00"
NEUTRAL = "#56B4E9"
OTHER = "#999999"
INFO = "#0072B2"

# --- shared helpers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One reference month: the local days [first, last] (last = the as-of day) and the UTC
    instants [start, end) they span in the organisation's time zone."""

    index: int
    month: date
    first: date
    last: date
    start: datetime
    end: datetime


def windows(cohort: Cohort, months: Months) -> list[Window]:
    today = cohort.local_today()
    out = []
    for i, month in enumerate(months):
        last = as_of(month, today)
        start, end = local_bounds(month, last, cohort.tz)
        out.append(Window(i, month, month, last, start, end))
    return out


def month_case(field: str, wins: Sequence[Window], kind: str = "instant") -> Case:
    """The index of the window holding `field` (NULL when none does). `kind`: "instant" (a
    timestamp, windows in the organisation's time zone), "date" (a calendar date) or "text"
    (a local wall time written YYYY-MM-DDTHH:MM, compared as text)."""
    whens = []
    for w in wins:
        if kind == "instant":
            cond = Q(**{f"{field}__gte": w.start, f"{field}__lt": w.end})
        elif kind == "date":
            cond = Q(**{f"{field}__gte": w.first, f"{field}__lte": w.last})
        else:
            after = (w.last + timedelta(days=1)).isoformat()
            cond = Q(**{f"{field}__gte": w.first.isoformat(), f"{field}__lt": after})
        whens.append(When(cond, then=Value(w.index)))
    return Case(*whens, default=Value(None), output_field=IntegerField())


def span(field: str, wins: Sequence[Window], kind: str = "instant") -> Q:
    """Rows of any window (a cheap range filter the CASE then refines)."""
    if not wins:
        return Q(pk__in=[])
    if kind == "instant":
        return Q(
            **{
                f"{field}__gte": min(w.start for w in wins),
                f"{field}__lt": max(w.end for w in wins),
            }
        )
    if kind == "date":
        return Q(
            **{
                f"{field}__gte": min(w.first for w in wins),
                f"{field}__lte": max(w.last for w in wins),
            }
        )
    after = (max(w.last for w in wins) + timedelta(days=1)).isoformat()
    return Q(**{f"{field}__gte": min(w.first for w in wins).isoformat(), f"{field}__lt": after})


def narrowed(cohort: Cohort) -> bool:
    """Whether the cohort is more than the whole organisation."""
    return bool(
        cohort.department_ids is not None
        or cohort.doctor_id is not None
        or cohort.condition
        or cohort.age_band
        or cohort.sex
        or cohort.plan
        or cohort.segment
    )


def scoped(
    qs: QuerySet[Any], cohort: Cohort, *, patient: str = "patient", department: str = ""
) -> QuerySet[Any]:
    """Rows of the cohort's living patients (metrics.md: the dead leave every figure); `qs` is
    already limited to the cohort's organisation. When the cohort names departments, rows
    carrying a department (`department`, a lookup path) must belong to one of them, so a shared
    patient's rows of another department stay out.

    Written for large tables: for a narrowed cohort the few dead or merged patients are
    excluded by a NOT IN of a small set, and a department-only cohort reads the department
    links directly."""
    from careloop.patients import models as pm

    if not narrowed(cohort):
        return qs.filter(
            **{
                f"{patient}__organisation_id": cohort.organisation_id,
                f"{patient}__merged_into__isnull": True,
                f"{patient}__deceased_on__isnull": True,
            }
        )
    gone = pm.Patient.objects.filter(organisation_id=cohort.organisation_id).filter(
        Q(deceased_on__isnull=False) | Q(merged_into__isnull=False)
    )
    qs = qs.exclude(**{f"{patient}_id__in": gone.values("pk")})
    only_departments = cohort.department_ids is not None and not (
        cohort.doctor_id is not None
        or cohort.condition
        or cohort.age_band
        or cohort.sex
        or cohort.plan
        or cohort.segment
    )
    if only_departments:
        members: QuerySet[Any] = pm.PatientDepartment.objects.filter(
            department_id__in=cohort.department_ids or ()
        ).values("patient_id")
    else:
        members = cohort.patients().values("pk")
    qs = qs.filter(**{f"{patient}_id__in": members})
    if department and cohort.department_ids is not None:
        qs = qs.filter(**{f"{department}__in": cohort.department_ids})
    return qs


def sql_of(qs: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    sql, params = qs.order_by().query.sql_with_params()
    return sql, tuple(params)


def union_all(*parts: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """`q1 UNION ALL q2 …` of querysets selecting the same columns in the same order."""
    sqls: list[str] = []
    params: list[Any] = []
    for qs in parts:
        sql, p = sql_of(qs)
        sqls.append(sql)
        params.extend(p)
    return " UNION ALL ".join(sqls), tuple(params)


def fetch(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


def zero_figures(months: Months, parts: Iterable[str]) -> Computed:
    keys = list(parts)
    return {m: {k: Figure(0, 0) for k in keys} for m in months}


# A metric's counts per (month index, group key), each month's parts as figures.
Grouped = dict[tuple[int, Any], dict[str, Figure]]


def per_month(
    cohort: Cohort,
    months: Months,
    parts: Iterable[str],
    grouped: Callable[[Cohort, Sequence[Window], str], Grouped],
) -> Computed:
    """A metric's figures for each month from its grouped counts (no group); zero where none."""
    wins = windows(cohort, months)
    out = zero_figures(months, parts)
    for (m, _g), figures in grouped(cohort, wins, "").items():
        out[wins[m].month] = figures
    return out


def split_counts(qs: QuerySet[Any], yes: Q, parts: tuple[str, str]) -> Grouped:
    """The rows of `qs` (annotated with their month index `m` and group `g`) counted per month
    and group: the first part is the rows matching `yes`, the second the others, each ÷ all."""
    rows = qs.order_by().values("m", "g").annotate(n=Count("pk"), yes=Count("pk", filter=yes))
    first, second = parts
    return {
        (r["m"], r["g"]): {
            first: Figure(r["yes"], r["n"]),
            second: Figure(r["n"] - r["yes"], r["n"]),
        }
        for r in rows
        if r["m"] is not None
    }


def department_labels(ids: Iterable[Any]) -> dict[Any, str]:
    from careloop.accounts.models import Department

    language = get_language() or ""
    found = Department.objects.in_bulk([i for i in ids if i is not None])
    labels: dict[Any, str] = {pk: d.label(language) for pk, d in found.items()}
    labels[None] = str(_("No department"))
    return labels


def staff_labels(ids: Iterable[Any]) -> dict[Any, str]:
    from careloop.accounts.models import Staff

    found = Staff.objects.in_bulk([i for i in ids if i is not None])
    labels: dict[Any, str] = {pk: str(s) for pk, s in found.items()}
    labels[None] = str(_("Unassigned"))
    return labels


def as_breakdown(
    rows: dict[Any, dict[str, Figure]],
    labels: dict[Any, str],
    order: Callable[[tuple[Any, dict[str, Figure]]], Any] | None = None,
) -> Breakdown:
    """(key, label, parts) rows, by label unless `order` says otherwise; key "" for none."""
    items = list(rows.items())
    items.sort(key=order or (lambda kv: (kv[0] is None, labels.get(kv[0], str(kv[0])))))
    return [
        ("" if key is None else str(key), labels.get(key, str(key)), parts) for key, parts in items
    ]


def median_hours(spans: list[float]) -> Figure:
    """The median of durations in hours (a plain amount; 0 of 0 when there is none)."""
    if not spans:
        return Figure(0, 0)
    return Figure(round(statistics.median(spans), 2), None)


def none_value() -> Value:
    return Value(None, output_field=IntegerField())


# --- coverage -------------------------------------------------------------------------------

CALL_TASKS = ("call_patient", "family_call")
PLAN_CONTACTS = ("call", "revisit")


def _task_model() -> Any:
    from careloop.alerts import models as am

    return am.Task


def _coverage_sql(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> tuple[str, tuple[Any, ...]]:
    """Rows (m, g, patient_id, attempted): each patient due a follow-up in a window, with the
    group key `g` of the due item and whether the patient had an attempt in that window."""
    from careloop.appointments import models as apm
    from careloop.reminders import models as rm

    task = _task_model()
    task_group = {"department": F("department_id"), "staff": F("assignee_id")}.get(group)
    occ_group = {"department": F("enrolment__department_id")}.get(group)
    due_tasks = (
        scoped(
            task.objects.filter(organisation_id=cohort.organisation_id, kind__in=CALL_TASKS),
            cohort,
            department="department_id",
        )
        .filter(span("due_at", wins))
        .exclude(status="cancelled")
        .values(
            "patient_id", m=month_case("due_at", wins), g=task_group or none_value(), k=Value(1)
        )
    )
    due_plan = (
        scoped(
            rm.Occurrence.objects.filter(
                organisation_id=cohort.organisation_id, kind__in=PLAN_CONTACTS
            ),
            cohort,
            department="enrolment__department_id",
        )
        .filter(span("local_due", wins, "text"))
        .exclude(status__in=[rm.Status.CANCELLED, rm.Status.SKIPPED])
        .values(
            "patient_id",
            m=month_case("local_due", wins, "text"),
            g=occ_group or none_value(),
            k=Value(1),
        )
    )
    tried_tasks = (
        scoped(
            task.objects.filter(
                organisation_id=cohort.organisation_id, kind__in=CALL_TASKS, status="done"
            ),
            cohort,
            department="department_id",
        )
        .filter(span("closed_at", wins))
        .values("patient_id", m=month_case("closed_at", wins), g=none_value(), k=Value(2))
    )
    called = (
        scoped(apm.CallResult.objects.filter(organisation_id=cohort.organisation_id), cohort)
        .filter(span("called_on", wins, "date"))
        .values("patient_id", m=month_case("called_on", wins, "date"), g=none_value(), k=Value(2))
    )
    rows_sql, params = union_all(due_tasks, due_plan, tried_tasks, called)
    # One pass, no join: a window marks each (month, patient) that had an attempt.
    sql = (
        "SELECT r.m AS m, r.g AS g, r.patient_id AS patient_id, r.tried AS tried FROM ("  # noqa: S608 - ORM SQL
        "SELECT u.m AS m, u.g AS g, u.patient_id AS patient_id, u.k AS k, "
        "MAX(CASE WHEN u.k = 2 THEN 1 ELSE 0 END) OVER (PARTITION BY u.m, u.patient_id) AS tried "
        f"FROM ({rows_sql}) u WHERE u.m IS NOT NULL) r WHERE r.k = 1"
    )
    return sql, params


def _coverage(cohort: Cohort, wins: Sequence[Window], group: str) -> dict[tuple[int, Any], Figure]:
    inner, params = _coverage_sql(cohort, wins, group)
    sql = (
        "SELECT c.m, c.g, COUNT(DISTINCT c.patient_id), "  # noqa: S608 - ORM SQL
        "COUNT(DISTINCT CASE WHEN c.tried = 1 THEN c.patient_id END) "
        f"FROM ({inner}) c GROUP BY c.m, c.g"
    )
    return {(m, g): Figure(tried, due) for m, g, due, tried in fetch(sql, params)}


def _coverage_parts(f: Figure) -> dict[str, Figure]:
    due = f.denominator or 0
    return {"covered": f, "not_covered": Figure(due - f.numerator, due)}


def coverage_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(
        cohort,
        months,
        ("covered", "not_covered"),
        lambda c, w, g: {k: _coverage_parts(f) for k, f in _coverage(c, w, g).items()},
    )


def coverage_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    inner, params = _coverage_sql(cohort, windows(cohort, [month]), "")
    tried = 1 if part == "covered" else 0
    sql = (
        f"SELECT c.patient_id FROM ({inner}) c GROUP BY c.patient_id "  # noqa: S608 - ORM SQL
        "HAVING MAX(c.tried) = %s ORDER BY c.patient_id"
    )
    return [row[0] for row in fetch(sql, params + (tried,))]


def _coverage_breakdown(group: str, labels: Callable[[Iterable[Any]], dict[Any, str]]) -> Any:
    def breakdown(cohort: Cohort, month: date) -> Breakdown:
        rows = {
            g: _coverage_parts(f)
            for (_m, g), f in _coverage(cohort, windows(cohort, [month]), group).items()
        }
        return as_breakdown(rows, labels(rows))

    return breakdown


register(
    Metric(
        key="coverage",
        title=_("Follow-up coverage"),
        definition=_(
            "Patients with at least one attempted follow-up contact in the month ÷ patients due "
            "a follow-up in the month. Due: a call task (call the patient, family-doctor call) "
            "or a plan contact (follow-up call or revisit reminder, not withdrawn) falls due in "
            "the month. Attempted: a call task of the month's patient closed in the month with "
            "any outcome (no answer included), or a call result recorded on the overdue list "
            "in the month. Month: calendar month in the organisation's time zone, up to the "
            "as-of day; plan contacts by their local due day. Dead patients are excluded. By "
            "department: the department of the task or of the plan; by staff member: the task's "
            "assignee (plan contacts are unassigned)."
        ),
        kind="share",
        parts=(
            Part("covered", _("Contact attempted"), colour=GOOD),
            Part("not_covered", _("No contact attempted"), colour=BAD),
        ),
        compute=coverage_compute,
        patients=coverage_patients,
        breakdowns={
            "department": _coverage_breakdown("department", department_labels),
            "staff": _coverage_breakdown("staff", staff_labels),
        },
        group="operations",
        headline="covered",
        target=0.9,
    )
)


# --- contact rate (接通率) ------------------------------------------------------------------

# Task outcomes that mean somebody spoke with the patient (alerts.services.REACHED).
REACHED_OUTCOMES = (
    "reached",
    "agreed_to_visit",
    "remind_later",
    "already_visited",
    "refused",
    "done",
)
# Call results (overdue list) that mean the call got through.
REACHED_RESULTS = Q(outcome__in=["agreed_to_visit", "remind_later"]) | Q(
    remove_reason__in=["already_visited", "refused"]
)


def _attempts(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> tuple[QuerySet[Any], QuerySet[Any]]:
    """Closed call tasks and recorded call results of the windows, each row with `m` (window)
    and `g` (group key), and a `reached` flag."""
    from careloop.appointments import models as apm

    task = _task_model()
    tasks = (
        scoped(
            task.objects.filter(
                organisation_id=cohort.organisation_id, kind__in=CALL_TASKS, status="done"
            ).exclude(outcome=""),
            cohort,
            department="department_id",
        )
        .filter(span("closed_at", wins))
        .annotate(
            m=month_case("closed_at", wins),
            g={"department": F("department_id"), "staff": F("closed_by_id")}.get(group)
            or none_value(),
            reached=Case(
                When(outcome__in=REACHED_OUTCOMES, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
    )
    results = apm.CallResult.objects.filter(organisation_id=cohort.organisation_id)
    if group == "department":
        # A call result has no department of its own: it counts for each department the
        # patient belongs to (within the cohort's departments).
        results = results.filter(patient__department_links__isnull=False)
        if cohort.department_ids is not None:
            results = results.filter(
                patient__department_links__department_id__in=cohort.department_ids
            )
    results = (
        scoped(results, cohort)
        .filter(span("called_on", wins, "date"))
        .annotate(
            m=month_case("called_on", wins, "date"),
            g={
                "department": F("patient__department_links__department_id"),
                "staff": F("created_by_id"),
            }.get(group)
            or none_value(),
            reached=Case(
                When(REACHED_RESULTS, then=Value(1)), default=Value(0), output_field=IntegerField()
            ),
        )
    )
    return tasks, results


def _contact(cohort: Cohort, wins: Sequence[Window], group: str) -> dict[tuple[int, Any], Figure]:
    counts: dict[tuple[int, Any], list[int]] = defaultdict(lambda: [0, 0])
    for qs in _attempts(cohort, wins, group):
        grouped = (
            qs.order_by()
            .values("m", "g")
            .annotate(n=Count("pk"), hit=Count("pk", filter=Q(reached=1)))
        )
        for row in grouped:
            if row["m"] is None:
                continue
            c = counts[(row["m"], row["g"])]
            c[0] += row["hit"]
            c[1] += row["n"]
    return {k: Figure(hit, n) for k, (hit, n) in counts.items()}


def _contact_parts(f: Figure) -> dict[str, Figure]:
    n = f.denominator or 0
    return {"reached": f, "not_reached": Figure(n - f.numerator, n)}


def contact_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(
        cohort,
        months,
        ("reached", "not_reached"),
        lambda c, w, g: {k: _contact_parts(f) for k, f in _contact(c, w, g).items()},
    )


def contact_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    wanted = 1 if part == "reached" else 0
    ids: set[int] = set()
    for qs in _attempts(cohort, windows(cohort, [month]), ""):
        ids.update(qs.filter(m=0, reached=wanted).values_list("patient_id", flat=True))
    return sorted(ids)


def _contact_breakdown(group: str, labels: Callable[[Iterable[Any]], dict[Any, str]]) -> Any:
    def breakdown(cohort: Cohort, month: date) -> Breakdown:
        rows = {
            g: _contact_parts(f)
            for (_m, g), f in _contact(cohort, windows(cohort, [month]), group).items()
        }
        return as_breakdown(rows, labels(rows))

    return breakdown


register(
    Metric(
        key="contact_rate",
        title=_("Contact rate"),
        definition=_(
            "Follow-up call attempts that reached the patient ÷ follow-up call attempts, in the "
            "month. Attempts: call tasks closed in the month with an outcome, and call results "
            "recorded on the overdue list in the month. Reached: reached, agreed to visit, asked "
            "to be called later, already visited, refused, done; not reached: no answer, wrong "
            "number, not available, and removals learned without speaking to the patient "
            "(moved, changed facility, died, other). Dead patients are excluded. By department: "
            "the task's department (a call result counts for each of the patient's "
            "departments); by staff member: who closed the task or recorded the result."
        ),
        kind="share",
        parts=(
            Part("reached", _("Reached"), colour=GOOD),
            Part("not_reached", _("Not reached"), colour=BAD),
        ),
        compute=contact_compute,
        patients=contact_patients,
        breakdowns={
            "department": _contact_breakdown("department", department_labels),
            "staff": _contact_breakdown("staff", staff_labels),
        },
        group="operations",
        headline="reached",
    )
)


# --- completion -----------------------------------------------------------------------------


def grace() -> timedelta:
    """How long after its due time a task may be closed and still count as completed:
    settings.ANALYTICS_TASK_GRACE_HOURS (environment CARELOOP_ANALYTICS_TASK_GRACE_HOURS),
    24 hours unless configured."""
    return timedelta(hours=int(getattr(settings, "ANALYTICS_TASK_GRACE_HOURS", 24)))


class WithinGrace(Func):
    """closed_at ≤ due_at + grace, in each database's own date arithmetic (no per-row Python
    function on SQLite, which would make the grouped query slow on large worklists)."""

    output_field = BooleanField()

    def __init__(self, grace: timedelta) -> None:
        super().__init__(F("closed_at"), F("due_at"))
        self.seconds = int(grace.total_seconds())

    def _parts(self, compiler: Any) -> tuple[str, str, list[Any]]:
        closed, p1 = compiler.compile(self.source_expressions[0])
        due, p2 = compiler.compile(self.source_expressions[1])
        return closed, due, [*p1, *p2]

    def as_sqlite(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        closed, due, params = self._parts(compiler)
        # Stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' UTC; %f keeps the milliseconds.
        sql = f"({closed} <= strftime('%%Y-%%m-%%d %%H:%%M:%%f', {due}, %s))"
        return sql, [*params, f"+{self.seconds} seconds"]

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        closed, due, params = self._parts(compiler)
        return f"({closed} <= {due} + make_interval(secs => %s))", [*params, self.seconds]


def _valid_outcomes() -> list[str]:
    from careloop.alerts.services import OUTCOMES

    return list(OUTCOMES)


def _tasks_due(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    """Tasks due in the windows (not cancelled), each with `m`, `g` and `state`: 2 closed with
    a valid outcome within the grace period, 1 closed otherwise, 0 still open."""
    task = _task_model()
    on_time = Q(
        status="done",
        outcome__in=_valid_outcomes(),
    ) & Q(WithinGrace(grace()))
    return (
        scoped(
            task.objects.filter(organisation_id=cohort.organisation_id),
            cohort,
            department="department_id",
        )
        .filter(span("due_at", wins))
        .exclude(status="cancelled")
        .annotate(
            m=month_case("due_at", wins),
            g={
                "department": F("department_id"),
                "staff": Coalesce("assignee_id", "closed_by_id"),
            }.get(group)
            or none_value(),
            state=Case(
                When(on_time, then=Value(2)),
                When(status="done", then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
    )


def _completion(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> dict[tuple[int, Any], dict[str, Figure]]:
    rows = (
        _tasks_due(cohort, wins, group)
        .order_by()
        .values("m", "g")
        .annotate(
            n=Count("pk"),
            done=Count("pk", filter=Q(state=2)),
            late=Count("pk", filter=Q(state=1)),
        )
    )
    out = {}
    for r in rows:
        if r["m"] is None:
            continue
        n = r["n"]
        out[(r["m"], r["g"])] = {
            "completed": Figure(r["done"], n),
            "closed_late": Figure(r["late"], n),
            "open": Figure(n - r["done"] - r["late"], n),
        }
    return out


COMPLETION_PARTS = ("completed", "closed_late", "open")


def completion_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, COMPLETION_PARTS, _completion)


def completion_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    state = {"completed": 2, "closed_late": 1, "open": 0}[part]
    qs = _tasks_due(cohort, windows(cohort, [month]), "").filter(m=0, state=state)
    return sorted(set(qs.values_list("patient_id", flat=True)))


def _completion_breakdown(group: str, labels: Callable[[Iterable[Any]], dict[Any, str]]) -> Any:
    def breakdown(cohort: Cohort, month: date) -> Breakdown:
        rows = {
            g: parts
            for (_m, g), parts in _completion(cohort, windows(cohort, [month]), group).items()
        }
        return as_breakdown(rows, labels(rows))

    return breakdown


register(
    Metric(
        key="completion",
        title=_("Follow-up task completion"),
        definition=_(
            "Worklist tasks closed with a valid outcome no later than their due time plus the "
            "grace period (24 hours unless the organisation configures "
            "CARELOOP_ANALYTICS_TASK_GRACE_HOURS) ÷ tasks due in the month (calls, reviews and "
            "contact fixes; cancelled tasks are not counted). Month: the calendar month of the "
            "due time in the organisation's time zone, up to the as-of day. Closed late: closed "
            "after the grace period or without a valid outcome. Dead patients are excluded. By "
            "department: the task's department; by staff member: the assignee, or who closed an "
            "unassigned task."
        ),
        kind="share",
        parts=(
            Part("completed", _("Completed on time"), colour=GOOD),
            Part("closed_late", _("Closed late"), colour=WARNING),
            Part("open", _("Still open"), colour=BAD),
        ),
        compute=completion_compute,
        patients=completion_patients,
        breakdowns={
            "department": _completion_breakdown("department", department_labels),
            "staff": _completion_breakdown("staff", staff_labels),
        },
        group="operations",
        headline="completed",
        target=0.9,
    )
)


# --- alert response -------------------------------------------------------------------------

ALERT_PARTS = (
    "acknowledged_within_sla",
    "resolved_within_sla",
    "median_ack_hours",
    "median_resolve_hours",
)


def _now(cohort: Cohort) -> datetime:
    """The moment "now" for open alerts: the end of the as-of day at the latest."""
    today = cohort.local_today()
    return min(utc_now(), local_bounds(today, today, cohort.tz)[1])


def _alerts(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    """Alerts raised in the windows that somebody had to answer (not those a later reading
    closed before anyone took them on), with `m` and `g`."""
    from careloop.alerts import models as am

    return (
        scoped(
            am.Alert.objects.filter(organisation_id=cohort.organisation_id),
            cohort,
            department="department_id",
        )
        .filter(span("raised_at", wins))
        .exclude(outcome="auto_resolved", acknowledged_at__isnull=True)
        .annotate(
            m=month_case("raised_at", wins),
            g={"department": F("department_id"), "rule": F("rule")}.get(group) or none_value(),
        )
    )


def _alert_response(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> dict[tuple[int, Any], dict[str, Figure]]:
    now = _now(cohort)
    qs = _alerts(cohort, wins, group)
    # Undecided: not yet answered and the deadline still ahead; left out until decided.
    ack_decided = Q(acknowledged_at__isnull=False) | Q(due_at__lte=now)
    res_decided = Q(closed_at__isnull=False) | Q(due_at__lte=now)
    rows = (
        qs.order_by()
        .values("m", "g")
        .annotate(
            ack_n=Count("pk", filter=ack_decided),
            ack_ok=Count("pk", filter=Q(acknowledged_at__lte=F("due_at"))),
            res_n=Count("pk", filter=res_decided),
            res_ok=Count("pk", filter=Q(closed_at__lte=F("due_at"))),
        )
    )
    spans: dict[tuple[int, Any], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for m, g, raised, acked, closed in qs.filter(acknowledged_at__isnull=False).values_list(
        "m", "g", "raised_at", "acknowledged_at", "closed_at"
    ):
        acks, closes = spans[(m, g)]
        acks.append((acked - raised).total_seconds() / 3600)
        if closed is not None:
            closes.append((closed - raised).total_seconds() / 3600)
    out = {}
    for r in rows:
        if r["m"] is None:
            continue
        key = (r["m"], r["g"])
        acks, closes = spans.get(key, ([], []))
        out[key] = {
            "acknowledged_within_sla": Figure(r["ack_ok"], r["ack_n"]),
            "resolved_within_sla": Figure(r["res_ok"], r["res_n"]),
            "median_ack_hours": median_hours(acks),
            "median_resolve_hours": median_hours(closes),
        }
    return out


def alert_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, ALERT_PARTS, _alert_response)


def alert_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _alerts(cohort, windows(cohort, [month]), "").filter(m=0)
    if part == "acknowledged_within_sla":
        qs = qs.filter(acknowledged_at__lte=F("due_at"))
    elif part == "resolved_within_sla":
        qs = qs.filter(closed_at__lte=F("due_at"))
    else:
        return []
    return sorted(set(qs.values_list("patient_id", flat=True)))


def _rule_labels(keys: Iterable[Any]) -> dict[Any, str]:
    return {k: str(k) for k in keys}


def _alert_breakdown(group: str, labels: Callable[[Iterable[Any]], dict[Any, str]]) -> Any:
    def breakdown(cohort: Cohort, month: date) -> Breakdown:
        rows = {
            g: parts
            for (_m, g), parts in _alert_response(cohort, windows(cohort, [month]), group).items()
        }
        return as_breakdown(rows, labels(rows))

    return breakdown


register(
    Metric(
        key="alert_response",
        title=_("Alert response"),
        definition=_(
            "Alerts raised in the month (calendar month in the organisation's time zone, up to "
            "the as-of day), except those a later reading closed before anyone took them on. "
            "Acknowledged within SLA: alerts acknowledged (or closed) by their due time ÷ alerts "
            "acknowledged or past their due time. Resolved within SLA: alerts resolved or "
            "dismissed by their due time ÷ alerts closed or past their due time. Median hours "
            "from raised to acknowledged, and from raised to resolved or dismissed, over the "
            "alerts that got there. Dead patients are excluded. By department: the alert's "
            "department; by rule: the rule that raised it."
        ),
        kind="share",
        parts=(
            Part("acknowledged_within_sla", _("Acknowledged within SLA"), colour=GOOD),
            Part("resolved_within_sla", _("Resolved within SLA"), colour=INFO),
            Part("median_ack_hours", _("Median hours to acknowledge"), drill=False, colour=NEUTRAL),
            Part("median_resolve_hours", _("Median hours to resolve"), drill=False, colour=OTHER),
        ),
        compute=alert_compute,
        patients=alert_patients,
        breakdowns={
            "department": _alert_breakdown("department", department_labels),
            "rule": _alert_breakdown("rule", _rule_labels),
        },
        group="operations",
        headline="acknowledged_within_sla",
        target=0.9,
    )
)


# --- questionnaire completion ---------------------------------------------------------------


def _assignments(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    from careloop.questionnaires import models as qm

    return (
        scoped(qm.Assignment.objects.filter(organisation_id=cohort.organisation_id), cohort)
        .filter(span("created_at", wins))
        .exclude(status="cancelled")
        .annotate(
            m=month_case("created_at", wins),
            g=F("questionnaire_id") if group == "questionnaire" else none_value(),
        )
    )


def _questionnaires(cohort: Cohort, wins: Sequence[Window], group: str) -> Grouped:
    return split_counts(
        _assignments(cohort, wins, group), Q(status="completed"), ("completed", "not_completed")
    )


def questionnaire_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, ("completed", "not_completed"), _questionnaires)


def questionnaire_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _assignments(cohort, windows(cohort, [month]), "").filter(m=0)
    qs = qs.filter(status="completed") if part == "completed" else qs.exclude(status="completed")
    return sorted(set(qs.values_list("patient_id", flat=True)))


def _questionnaire_labels(ids: Iterable[Any]) -> dict[Any, str]:
    from careloop.questionnaires import models as qm

    return {pk: str(q) for pk, q in qm.Questionnaire.objects.in_bulk(list(ids)).items()}


def questionnaire_by_questionnaire(cohort: Cohort, month: date) -> Breakdown:
    rows = {
        g: parts
        for (_m, g), parts in _questionnaires(
            cohort, windows(cohort, [month]), "questionnaire"
        ).items()
    }
    return as_breakdown(rows, _questionnaire_labels(rows))


register(
    Metric(
        key="questionnaire_completion",
        title=_("Questionnaire completion"),
        definition=_(
            "Questionnaires sent in the month that the patient (or a caregiver or staff member "
            "for them) completed ÷ questionnaires sent in the month, by staff or by a care plan "
            "(withdrawn ones not counted). Month: the calendar month the questionnaire was sent, "
            "in the organisation's time zone, up to the as-of day; completion counts whenever it "
            "happens. Dead patients are excluded."
        ),
        kind="share",
        parts=(
            Part("completed", _("Completed"), colour=GOOD),
            Part("not_completed", _("Not completed"), colour=BAD),
        ),
        compute=questionnaire_compute,
        patients=questionnaire_patients,
        breakdowns={"questionnaire": questionnaire_by_questionnaire},
        group="operations",
        headline="completed",
    )
)

"""The worklist: open tasks for the care team, and closing them with an outcome."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import labels, selectors, services
from careloop.alerts import models as am
from careloop.appointments import models as appointment_models
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.kit.pagination import paginate, to_int
from careloop.patients import selectors as patient_selectors
from careloop.web.decorators import is_htmx, staff_page

# Kept here for the task pages; the words live in labels.py.
OUTCOME_LABELS = labels.OUTCOME_LABELS
REASON_LABELS = labels.REASON_LABELS
reason_text = labels.reason_text


SCOPE_LABELS = [
    ("department", gettext_lazy("My departments")),
    ("mine", gettext_lazy("Assigned to me")),
]


def outcome_choices() -> list[tuple[str, Any]]:
    return [(code, OUTCOME_LABELS.get(code, code)) for code in services.OUTCOMES]


def _filter(request: HttpRequest) -> selectors.TaskFilter:
    g = request.GET
    return selectors.TaskFilter(
        scope=g.get("scope", "department") if g.get("scope") in selectors.SCOPES else "department",
        department=to_int(g.get("department"), 0, low=0, high=2**62) or None,
        kind=g.get("kind", "") if g.get("kind") in am.Task.Kind.values else "",
        overdue=g.get("overdue") == "1",
        newest_due_first=g.get("sort") == "-due",
    )


@staff_page
@require_GET
def task_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    patient_selectors.require(actor, Action.TASK_WORK)
    flt = _filter(request)
    now = utc_now()
    page = paginate(selectors.open_tasks(actor, flt, now=now), request.GET.get("page"), 25)
    audit.record(
        actor,
        "task.list",
        detail={"scope": flt.scope, "kind": flt.kind, "results": page.total},
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": [
            {"t": t, "overdue": t.due_at < now, "reason": reason_text(t.reason)} for t in page.items
        ],
        "flt": flt,
        "scopes": SCOPE_LABELS,
        "kinds": am.Task.Kind.choices,
        "departments": selectors.departments(actor),
        "outcomes": outcome_choices(),
        "query": query.urlencode(),
        "here": request.get_full_path(),
        "filtered": flt.scope != "department" or flt.kind or flt.overdue or flt.department,
    }
    template = "alerts/_results.html" if is_htmx(request) else "alerts/list.html"
    return render(request, template, context)


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return reverse("tasks:list")


@staff_page
@require_http_methods(["GET", "POST"])
def task_close(request: HttpRequest, actor: Actor, task_id: int) -> HttpResponse:
    try:
        task = services.get_task(actor, task_id)
    except NotFound:
        audit.record_denied(actor, "task.read", object_type="alerts.task", object_id=task_id)
        raise
    if request.method == "POST" and is_htmx(request):
        return _task_close_row(request, actor, task.pk)
    error = ""
    status = 200
    if task.status != am.Task.Status.OPEN:
        messages.info(request, _("This task is already closed."))
        return redirect(_next(request))
    outcome = request.POST.get("outcome", "")
    note = request.POST.get("note", "").strip()
    if request.method == "POST":
        try:
            services.close_task(actor, task.pk, outcome=outcome, note=note)
        except ValidationFailed:
            error = _("Choose an outcome.")
            status = 422
        except Conflict:
            messages.info(request, _("This task is already closed."))
            return redirect(_next(request))
        else:
            messages.success(
                request,
                _("Task closed: %(outcome)s.") % {"outcome": OUTCOME_LABELS.get(outcome, outcome)},
            )
            return redirect(_next(request))
    else:
        audit.record(actor, "task.read", patient_id=task.patient_id, obj=task)
    return render(
        request,
        "alerts/close.html",
        {
            "t": task,
            "reason": reason_text(task.reason),
            "overdue": task.due_at < utc_now(),
            "outcomes": outcome_choices(),
            "outcome": outcome,
            "note": note,
            "error": error,
            "next": _next(request),
        },
        status=status,
    )


# --- the staff worklist ----------------------------------------------------------------------

OWNER_LABELS = [
    ("anyone", gettext_lazy("Anyone")),
    ("me", gettext_lazy("Me")),
    ("unassigned", gettext_lazy("Nobody yet")),
]
SECTION_LABELS = {
    "urgent": gettext_lazy("Urgent alerts"),
    "due": gettext_lazy("Calls and alerts due today"),
    "overdue": gettext_lazy("Overdue patients"),
}
URGENT_REFRESH_SECONDS = 45


def _worklist_criteria(request: HttpRequest, actor: Actor) -> tuple[Any, dict[str, str]]:
    """The worklist filters from the query string; values that do not apply are dropped."""
    g = request.GET
    problems: dict[str, str] = {}
    department = to_int(g.get("department"), 0, low=0, high=2**62) or None
    if department and not selectors.departments(actor).filter(pk=department).exists():
        department = None
    condition = g.get("condition", "").strip()[:20]
    if condition and not selectors.condition_prefix(condition):
        problems["condition"] = _("Enter an ICD-10 code, e.g. I10 or E11.")
        condition = ""
    priority = g.get("priority", "")
    if priority not in am.Priority.values:
        priority = ""
    owner = g.get("owner", "anyone") or "anyone"
    try:
        owner = selectors.owner_choice(actor, owner)
    except ValidationFailed:
        owner = "anyone"
    criteria = selectors.WorklistCriteria(
        department=department,
        condition=condition,
        priority=priority,
        owner=owner,
        page=g.get("page", 1),
        size=g.get("size", 25),
    )
    return criteria, problems


def _sections(page: selectors.WorklistPage) -> list[dict[str, Any]]:
    out = []
    for key in selectors.SECTIONS:
        rows = [i for i in page.items if i.section == key]
        out.append(
            {
                "key": key,
                "label": SECTION_LABELS[key],
                "rows": rows,
                "count": page.counts.get(key, 0),
            }
        )
    return out


def _worklist_context(
    request: HttpRequest, actor: Actor, criteria: Any, page: selectors.WorklistPage
) -> dict[str, Any]:
    query = request.GET.copy()
    for key in ("page", "part"):
        query.pop(key, None)
    return {
        "page": page,
        "sections": _sections(page),
        "criteria": criteria,
        "query": query.urlencode(),
        "here": reverse("worklist:index") + (f"?{request.GET.urlencode()}" if request.GET else ""),
        "departments": selectors.departments(actor),
        "colleagues": list(selectors.colleagues(actor).exclude(pk=actor.user.pk)),
        "owners": OWNER_LABELS,
        "priorities": am.Priority.choices,
        "refresh": URGENT_REFRESH_SECONDS,
        "filtered": bool(
            criteria.department
            or criteria.condition
            or criteria.priority
            or criteria.owner != "anyone"
        ),
        **_action_choices(),
    }


def _action_choices() -> dict[str, Any]:
    return {
        "resolve_outcomes": [(c, labels.RESOLVE_LABELS[c]) for c in services.RESOLVE_OUTCOMES],
        "dismiss_reasons": [(c, labels.DISMISS_LABELS[c]) for c in services.DISMISS_REASONS],
        "task_outcomes": outcome_choices(),
        "remove_reasons": appointment_models.CallResult.RemoveReason.choices,
    }


@staff_page
@require_GET
def worklist_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    """My work today: urgent alerts, today's calls, overdue patients."""
    patient_selectors.require(actor, Action.TASK_WORK)
    criteria, problems = _worklist_criteria(request, actor)
    if request.GET.get("part") == "urgent":
        # The polled urgent section: on the first page its rows, elsewhere just how many.
        number = to_int(request.GET.get("page"), 1, low=1, high=10**6)
        size = to_int(criteria.size, 25, low=1, high=200)
        page = selectors.urgent_alerts(actor, criteria, limit=size if number == 1 else 0)
        context = _worklist_context(request, actor, criteria, page)
        context["section"] = {
            "key": "urgent",
            "label": SECTION_LABELS["urgent"],
            "rows": page.items,
            "count": page.total,
        }
        context["page_number"] = number
        return render(request, "alerts/_worklist_section.html", context)
    if request.GET.get("part") == "counts":
        criteria.page, criteria.size = 1, 1
        page = selectors.worklist(actor, criteria)
        context = _worklist_context(request, actor, criteria, page)
        return render(request, "alerts/_worklist_count_chips.html", context)
    page = selectors.worklist(actor, criteria)
    context = _worklist_context(request, actor, criteria, page)
    context["problems"] = problems
    context["page_number"] = page.number
    template = "alerts/_worklist.html" if is_htmx(request) else "alerts/worklist.html"
    return render(request, template, context)


def _row(request: HttpRequest, actor: Actor, kind: str, pk: int, **extra: Any) -> HttpResponse:
    item = selectors.work_item(actor, kind, pk)
    context = {"w": item, "here": _next_worklist(request), **_action_choices(), **extra}
    return render(request, "alerts/_work_row.html", context)


def _done(request: HttpRequest, key: str, message: str, patient: Any = None) -> HttpResponse:
    response = render(
        request, "alerts/_work_done.html", {"key": key, "message": message, "patient": patient}
    )
    response["HX-Trigger"] = "worklist-changed"
    return response


def _row_error(key: str, message: str) -> HttpResponse:
    """An inline error under the row's actions (the row itself stays as it was)."""
    response = HttpResponse(escape(message))
    response["HX-Retarget"] = f"#err-{key}"
    response["HX-Reswap"] = "innerHTML"
    return response


def _first_error(exc: ValidationFailed) -> str:
    for messages_ in (exc.details or {}).values():
        if messages_:
            return str(messages_[0])
    return str(exc.message)


def _next_worklist(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return reverse("worklist:index")


def _task_close_row(request: HttpRequest, actor: Actor, task_id: int) -> HttpResponse:
    outcome = request.POST.get("outcome", "")
    key = f"task-{task_id}"
    try:
        task = services.close_task(
            actor, task_id, outcome=outcome, note=request.POST.get("note", "").strip()
        )
    except ValidationFailed:
        return _row_error(key, _("Choose an outcome."))
    except Conflict:
        return _done(request, key, _("This task is already closed."))
    label = OUTCOME_LABELS.get(outcome, outcome)
    return _done(request, key, _("Task closed: %(outcome)s.") % {"outcome": label}, task.patient)


@staff_page
@require_POST
def worklist_assign(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Give the ticked alerts and tasks to a colleague."""
    patient_selectors.require(actor, Action.TASK_WORK)
    alert_ids: list[int] = []
    task_ids: list[int] = []
    for key in request.POST.getlist("item")[:500]:
        kind, _sep, raw = key.partition("-")
        pk = to_int(raw, 0, low=0, high=2**62)
        if pk and kind == "alert":
            alert_ids.append(pk)
        elif pk and kind == "task":
            task_ids.append(pk)
    if not alert_ids and not task_ids:
        messages.error(request, _("Tick the alerts and calls to hand over first."))
        return redirect(_next_worklist(request))
    to = to_int(request.POST.get("to"), 0, low=0, high=2**62)
    try:
        moved = services.assign(actor, alert_ids=alert_ids, task_ids=task_ids, to=to)
    except ValidationFailed as exc:
        messages.error(request, _first_error(exc))
    else:
        who = selectors.colleagues(actor).filter(pk=to).first()
        messages.success(
            request,
            ngettext("%(n)d item given to %(who)s.", "%(n)d items given to %(who)s.", moved)
            % {"n": moved, "who": who},
        )
    return redirect(_next_worklist(request))


@staff_page
@require_POST
def worklist_call_result(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """The result of calling an overdue patient (agreed to visit, remind later, removed)."""
    from careloop.appointments import services as appointment_services

    patient_selectors.require(actor, Action.TASK_WORK, patient_id=patient_id)
    outcome = request.POST.get("outcome", "")
    reason = request.POST.get("remove_reason", "")
    key = f"overdue-{patient_id}"
    try:
        result = appointment_services.record_call_result(
            actor, patient_id, outcome, remove_reason=reason, note=request.POST.get("note", "")
        )
    except ValidationFailed as exc:
        if is_htmx(request):
            return _row_error(key, _first_error(exc))
        messages.error(request, _first_error(exc))
        return redirect(_next_worklist(request))
    if result.remind_on:
        message = _("%(result)s: off the list until %(day)s.") % {
            "result": result.get_outcome_display(),
            "day": result.remind_on.isoformat(),
        }
    else:
        message = _("Removed from the overdue list: %(reason)s.") % {
            "reason": result.get_remove_reason_display()
        }
    if is_htmx(request):
        return _done(request, key, message, result.patient)
    messages.success(request, message)
    return redirect(_next_worklist(request))


# --- alerts: actions, list, detail -------------------------------------------------------------


def _alert_action(request: HttpRequest, actor: Actor, alert_id: int, verb: str) -> HttpResponse:
    patient_selectors.require(actor, Action.TASK_WORK)
    key = f"alert-{alert_id}"
    note = request.POST.get("note", "").strip()
    try:
        if verb == "acknowledge":
            alert = services.acknowledge_alert(actor, alert_id)
        elif verb == "resolve":
            alert = services.resolve_alert(
                actor, alert_id, outcome=request.POST.get("outcome", ""), note=note
            )
        else:
            alert = services.dismiss_alert(
                actor, alert_id, reason=request.POST.get("reason", ""), note=note
            )
    except ValidationFailed as exc:
        if is_htmx(request):
            return _row_error(key, _first_error(exc))
        messages.error(request, _first_error(exc))
        return redirect(_next_alert(request, alert_id))
    except Conflict as exc:
        if is_htmx(request):
            return _done(request, key, str(exc.message))
        messages.info(request, str(exc.message))
        return redirect(_next_alert(request, alert_id))
    if verb == "acknowledge":
        message = _("Alert acknowledged.")
    elif verb == "resolve":
        message = _("Alert resolved: %(outcome)s.") % {
            "outcome": labels.closing_label(alert.status, alert.outcome)
        }
    else:
        message = _("Alert dismissed: %(reason)s.") % {
            "reason": labels.closing_label(alert.status, alert.outcome)
        }
    if is_htmx(request):
        if verb == "acknowledge":
            response = _row(request, actor, "alert", alert.pk, notice=message)
            response["HX-Trigger"] = "worklist-changed"
            return response
        return _done(request, key, message, alert.patient)
    messages.success(request, message)
    return redirect(_next_alert(request, alert_id))


def _next_alert(request: HttpRequest, alert_id: int) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return reverse("alerts:detail", args=[alert_id])


@staff_page
@require_POST
def alert_acknowledge(request: HttpRequest, actor: Actor, alert_id: int) -> HttpResponse:
    return _alert_action(request, actor, alert_id, "acknowledge")


@staff_page
@require_POST
def alert_resolve(request: HttpRequest, actor: Actor, alert_id: int) -> HttpResponse:
    return _alert_action(request, actor, alert_id, "resolve")


@staff_page
@require_POST
def alert_dismiss(request: HttpRequest, actor: Actor, alert_id: int) -> HttpResponse:
    return _alert_action(request, actor, alert_id, "dismiss")


STATUS_FILTERS = [
    ("active", gettext_lazy("Not closed")),
    ("open", gettext_lazy("Open")),
    ("acknowledged", gettext_lazy("Acknowledged")),
    ("resolved", gettext_lazy("Resolved")),
    ("dismissed", gettext_lazy("Dismissed")),
    ("all", gettext_lazy("All")),
]


@staff_page
@require_GET
def alert_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    patient_selectors.require(actor, Action.TASK_WORK)
    g = request.GET
    status = g.get("status", "active")
    department = to_int(g.get("department"), 0, low=0, high=2**62) or None
    if department and not selectors.departments(actor).filter(pk=department).exists():
        department = None
    criteria = selectors.AlertCriteria(
        status=status if status in selectors.ALERT_STATUSES else "active",
        priority=g.get("priority", "") if g.get("priority") in am.Priority.values else "",
        rule=g.get("rule", "")[:60],
        department=department,
        sort=g.get("sort", "-raised") if g.get("sort") in selectors.ALERT_SORTS else "-raised",
        page=g.get("page", 1),
    )
    page = selectors.alerts(actor, criteria)
    lang = get_language() or "zh-hans"
    query = g.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": [{"a": a, "text": a.text(lang)} for a in page.items],
        "criteria": criteria,
        "statuses": STATUS_FILTERS,
        "priorities": am.Priority.choices,
        "rules": selectors.rule_codes(actor),
        "departments": selectors.departments(actor),
        "query": query.urlencode(),
        "now": utc_now(),
        "filtered": criteria.status != "active"
        or bool(criteria.priority or criteria.rule or criteria.department),
        "tones": labels.PRIORITY_TONES,
        "status_tones": labels.STATUS_TONES,
    }
    template = "alerts/_alert_results.html" if is_htmx(request) else "alerts/alerts.html"
    return render(request, template, context)


@staff_page
@require_GET
def alert_detail(request: HttpRequest, actor: Actor, alert_id: int) -> HttpResponse:
    patient_selectors.require(actor, Action.TASK_WORK)
    alert = selectors.alert(actor, alert_id)
    lang = get_language() or "zh-hans"
    rule = _rule_info(alert)
    item = selectors.work_item(actor, "alert", alert.pk)
    history = [
        {"a": a, "text": a.text(lang), "closing": labels.closing_label(a.status, a.outcome)}
        for a in selectors.patient_alerts(actor, alert.patient_id)
    ]
    personal = selectors.personal_threshold(alert.patient_id, alert.rule)
    context = {
        "alert": alert,
        "w": item,
        "text": alert.text(lang),
        "rule": rule,
        "rule_text": (
            rule.text.get("en" if lang.startswith("en") else "zh-hans", "") if rule else ""
        ),
        "personal": personal,
        "values": _values(alert.values),
        "history": history,
        "closing": labels.closing_label(alert.status, alert.outcome) if alert.outcome else "",
        "late": alert.status in am.Alert.ACTIVE and alert.due_at < utc_now(),
        "here": reverse("alerts:detail", args=[alert.pk]),
        "tones": labels.PRIORITY_TONES,
        "status_tones": labels.STATUS_TONES,
        **_action_choices(),
    }
    return render(request, "alerts/alert_detail.html", context)


def _rule_info(alert: am.Alert) -> Any:
    from careloop.alerts import evaluation

    try:
        return evaluation.ruleset_for(alert.organisation_id).rule(alert.rule)
    except KeyError:
        return None


VALUE_LABELS: dict[str, Any] = {
    "value": gettext_lazy("Value"),
    "value2": gettext_lazy("Second value (diastolic)"),
    "count": gettext_lazy("Count"),
    "mean": gettext_lazy("Mean"),
    "days": gettext_lazy("Days"),
    "kind": gettext_lazy("Measurement"),
    "context": gettext_lazy("Context"),
    "hour": gettext_lazy("Hour of the day (patient's time)"),
    "sys": gettext_lazy("Systolic threshold"),
    "dia": gettext_lazy("Diastolic threshold"),
}


def _values(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The facts the rule fired on, for people (the latest repeat last)."""
    out = []
    for key, value in (values or {}).items():
        if (key == "latest" and isinstance(value, dict)) or value in (None, ""):
            continue
        label = VALUE_LABELS.get(key, key)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        out.append((str(label), shown))
    latest = (values or {}).get("latest")
    if isinstance(latest, dict):
        shown = ", ".join(
            f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in latest.items()
        )
        out.append((str(_("Latest repeat")), shown))
    return out

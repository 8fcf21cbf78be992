"""The worklist: open tasks for the care team, and closing them with an outcome."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import models as am
from careloop.alerts import selectors, services
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.kit.pagination import paginate, to_int
from careloop.patients import selectors as patient_selectors
from careloop.reminders.labels import REASONS
from careloop.web.decorators import is_htmx, staff_page

# How a task ended (services.OUTCOMES), in words.
OUTCOME_LABELS: dict[str, Any] = {
    "reached": gettext_lazy("Reached the patient"),
    "agreed_to_visit": gettext_lazy("Agreed to come for a visit"),
    "remind_later": gettext_lazy("Asked to be called later"),
    "no_answer": gettext_lazy("No answer"),
    "already_visited": gettext_lazy("Has already visited"),
    "unavailable": gettext_lazy("Patient not available"),
    "wrong_number": gettext_lazy("Wrong number"),
    "changed_facility": gettext_lazy("Now cared for elsewhere"),
    "moved": gettext_lazy("Moved away"),
    "died": gettext_lazy("Patient has died"),
    "refused": gettext_lazy("Refused follow-up"),
    "done": gettext_lazy("Done"),
    "other": pgettext_lazy("outcome", "Other"),
}
# Why the dispatcher opened a task (its reason text), in words; anything else is shown as is.
REASON_LABELS: dict[str, Any] = {
    "no acknowledgement": gettext_lazy("the patient did not confirm the reminder"),
    "not delivered": gettext_lazy("the reminder was not delivered"),
}


def reason_text(reason: str) -> str:
    """A task's reason for people: the dispatcher's phrases translated, other text unchanged."""
    if reason in REASON_LABELS:
        return str(REASON_LABELS[reason])
    if reason.startswith("dead letter: "):
        code = reason.removeprefix("dead letter: ")
        why = REASONS.get(code, code)
        return _("the reminder could not be sent: %(why)s") % {"why": why}
    if reason.startswith("high risk: "):
        return _("high-risk patient: %(why)s") % {"why": reason_text(reason[11:])}
    return reason


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

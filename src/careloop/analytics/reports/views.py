"""Staff pages of the monthly report: the PDF download and the e-mail schedules."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.analytics.reports import models as rm
from careloop.analytics.reports import selectors, services
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.web.decorators import staff_page


@staff_page
@require_GET
def monthly(request: HttpRequest, actor: Actor, department_id: int, month: str) -> HttpResponse:
    """The department's report of one month as a PDF download (heads and admins only)."""
    selectors.require(actor)
    first = selectors.parse_month(month)
    if first is None:
        raise NotFound()
    name, data = services.download(actor, department_id, first)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@staff_page
@require_GET
def schedules(request: HttpRequest, actor: Actor) -> HttpResponse:
    rows = selectors.overview(actor)
    return render(request, "reports/schedules.html", {"rows": rows, "section": "reports"})


def _initial(schedule: rm.ReportSchedule | None, actor: Actor) -> dict[str, Any]:
    if schedule is None:
        return {"active": True, "day": 1, "language": actor.user.language or "zh-hans"}
    return {
        "active": schedule.active,
        "day": schedule.day,
        "language": schedule.language,
        "extra_recipients": list(schedule.extra_recipients.values_list("pk", flat=True)),
    }


@staff_page
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, actor: Actor, department_id: int) -> HttpResponse:
    dept = selectors.department(actor, department_id)
    schedule = selectors.schedule_of(dept)
    status = 200
    if request.method == "POST":
        form = services.schedule_form(actor, request.POST)
        try:
            services.save_schedule(actor, dept.pk, request.POST)
        except ValidationFailed:
            form.is_valid()
            status = 422
        else:
            messages.success(request, _("The report schedule is saved."))
            return redirect("reports:schedules")
    else:
        form = services.schedule_form(actor, initial=_initial(schedule, actor))
    context = {
        "form": form,
        "department": dept,
        "schedule": schedule,
        "heads": selectors.heads_of(dept).order_by("username"),
        "runs": selectors.recent_runs(dept),
        "last_month": selectors.last_month(dept),
        "section": "reports",
    }
    return render(request, "reports/schedule_form.html", context, status=status)


@staff_page
@require_POST
def send_test(request: HttpRequest, actor: Actor, department_id: int) -> HttpResponse:
    """Send a copy of last month's report to the signed-in user now."""
    try:
        run = services.send_test(actor, department_id)
    except ValidationFailed as exc:
        for errors in exc.details.values():
            for error in errors:
                messages.error(request, error)
        return redirect("reports:schedules")
    if run.status == rm.ReportRun.Status.SENT:
        messages.success(
            request, _("A test copy was sent to %(address)s.") % {"address": run.recipient}
        )
    elif run.status == rm.ReportRun.Status.PENDING:
        messages.warning(
            request,
            _("The mail server did not take the test copy now (%(error)s); it is tried again.")
            % {"error": run.error},
        )
    else:
        messages.error(
            request,
            _("The test copy could not be sent: %(error)s") % {"error": run.error},
        )
    return redirect("reports:schedules")

"""The staff inbox: triage tabs, a thread with its timeline, replies, assignment, closing."""

from __future__ import annotations

from typing import Any

from django.contrib import messages as flash
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import ValidationFailed
from careloop.kit.pagination import paginate
from careloop.messaging import domain, selectors, services
from careloop.messaging.models import BODY_MAX, Thread
from careloop.messaging.portal_views import serve
from careloop.web.decorators import staff_page

TAB_LABELS = [
    ("unassigned", gettext_lazy("Unassigned")),
    ("mine", gettext_lazy("Mine")),
    ("waiting", gettext_lazy("Waiting for patient")),
    ("open", gettext_lazy("All open")),
    ("closed", gettext_lazy("Closed")),
]


def _row(thread: Thread, now: Any) -> dict[str, Any]:
    return {
        "t": thread,
        "waited": domain.waited(thread.first_unanswered_at, now),
        "overdue": thread.is_overdue(now),
    }


@staff_page
@require_GET
def inbox(request: HttpRequest, actor: Actor) -> HttpResponse:
    tab = request.GET.get("tab", "unassigned")
    if tab not in selectors.TABS:
        tab = "unassigned"
    query = request.GET.get("q", "")[:100]
    rows, counts = selectors.inbox(actor, tab, query)
    page = paginate(rows, request.GET.get("page"), 25)
    now = utc_now()
    audit.record(
        actor,
        "message.inbox.list",
        detail={"tab": tab, "search": bool(query), "results": page.total},
    )
    return render(
        request,
        "messaging/inbox.html",
        {
            "tab": tab,
            "tabs": [(key, label, counts[key]) for key, label in TAB_LABELS],
            "q": query,
            "page": page,
            "rows": [_row(t, now) for t in page.items],
            "sla_hours": services.settings_for(actor.organisation_id or 0).sla_hours,
        },
    )


def _thread_context(
    request: HttpRequest, actor: Actor, thread: Thread, errors: dict[str, Any], body: str = ""
) -> dict[str, Any]:
    writer = selectors.can_write(actor)
    return {
        "thread": thread,
        "patient": thread.patient,
        "entries": selectors.timeline(thread, for_patient=False),
        "errors": errors,
        "body": body,
        "key": services.new_key(),
        "body_max": BODY_MAX,
        "can_write": writer,
        "colleagues": list(selectors.colleagues(actor, thread)) if writer else [],
        "templates": list(selectors.reply_templates(actor)) if writer else [],
        "overdue": thread.is_overdue(),
        "waited": domain.waited(thread.first_unanswered_at, utc_now()),
    }


@staff_page
@require_GET
def thread(request: HttpRequest, actor: Actor, thread_id: int) -> HttpResponse:
    found = selectors.staff_thread(actor, thread_id)
    context = _thread_context(request, actor, found, {})
    marked = services.mark_read_by_staff(actor, found)
    audit.record(
        actor,
        "message.thread.read",
        patient_id=found.patient_id,
        obj=found,
        detail={"marked_read": marked},
    )
    return render(request, "messaging/thread.html", context)


@staff_page
@require_POST
def reply(request: HttpRequest, actor: Actor, thread_id: int) -> HttpResponse:
    found = selectors.staff_thread(actor, thread_id, write=True)
    body = request.POST.get("body", "")
    try:
        services.reply(
            actor,
            found.pk,
            body=body,
            files=request.FILES.getlist("file"),
            key=request.POST.get("idempotency_key", ""),
        )
    except ValidationFailed as exc:
        context = _thread_context(request, actor, found, exc.details, body)
        return render(request, "messaging/thread.html", context, status=exc.status)
    flash.success(request, _("Reply sent. The patient has been notified."))
    return redirect("messaging:thread", thread_id=found.pk)


def _version(request: HttpRequest) -> int | None:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return None


@staff_page
@require_POST
def assign(request: HttpRequest, actor: Actor, thread_id: int) -> HttpResponse:
    raw = request.POST.get("to", "")
    if raw == "me":
        to: int | None = actor.user.pk
    elif raw in ("", "none"):
        to = None
    else:
        try:
            to = int(raw)
        except ValueError:
            raise ValidationFailed(details={"to": [_("Choose a colleague.")]}) from None
    done = services.assign(actor, thread_id, to, version=_version(request))
    if done.assignee_id:
        flash.success(request, _("Assigned to %(name)s.") % {"name": done.assignee})
    else:
        flash.success(request, _("The conversation is unassigned."))
    return redirect("messaging:thread", thread_id=thread_id)


@staff_page
@require_POST
def close(request: HttpRequest, actor: Actor, thread_id: int) -> HttpResponse:
    services.close(actor, thread_id, version=_version(request))
    flash.success(request, _("Conversation closed."))
    return redirect(f"{reverse('messaging:inbox')}?tab=open")


@staff_page
@require_POST
def reopen(request: HttpRequest, actor: Actor, thread_id: int) -> HttpResponse:
    services.reopen(actor, thread_id, version=_version(request))
    flash.success(request, _("Conversation reopened."))
    return redirect("messaging:thread", thread_id=thread_id)


@staff_page
@require_GET
def attachment(request: HttpRequest, actor: Actor, attachment_id: int) -> FileResponse:
    att = selectors.staff_attachment(actor, attachment_id)
    audit.record(
        actor,
        "message.attachment.read",
        patient_id=att.message.thread.patient_id,
        obj=att,
    )
    return serve(att)


@staff_page
@require_http_methods(["GET"])
def patient(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """A patient's conversations, from the patient's record page."""
    threads = list(selectors.patient_threads_for_staff(actor, patient_id))
    from careloop.patients.models import Patient

    who = Patient.objects.get(pk=patient_id)
    audit.record(
        actor, "message.patient.list", patient_id=patient_id, detail={"threads": len(threads)}
    )
    now = utc_now()
    return render(
        request,
        "messaging/patient.html",
        {"patient": who, "rows": [_row(t, now) for t in threads]},
    )

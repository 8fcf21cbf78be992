"""Portal pages: the patient's threads, one timeline per thread, writing and attachments."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.kit.errors import ValidationFailed
from careloop.messaging import selectors, services
from careloop.messaging.models import BODY_MAX, Attachment
from careloop.patients import models as pm
from careloop.portal.context import PortalActor
from careloop.portal.decorators import patient_page


def _departments(actor: PortalActor) -> list[tuple[int, str]]:
    from django.utils.translation import get_language

    language = get_language()
    return [
        (link.department_id, link.department.label(language))
        for link in pm.PatientDepartment.objects.filter(patient_id=actor.patient_id)
        .select_related("department")
        .order_by("id")
    ]


@patient_page
@require_http_methods(["GET", "POST"])
def messages(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    """The list of threads and the form to ask the care team a new question."""
    errors: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        try:
            sent = services.start_thread(
                actor,
                subject=request.POST.get("subject", ""),
                body=request.POST.get("body", ""),
                department_id=_int(request.POST.get("department")),
                files=request.FILES.getlist("file"),
                key=request.POST.get("idempotency_key", ""),
            )
        except ValidationFailed as exc:
            errors, status = exc.details, exc.status
        else:
            return _after_send(sent)
    threads = list(selectors.patient_threads(actor))
    actor.audit(
        "portal.messages.list", object_type="messaging.thread", detail={"threads": len(threads)}
    )
    return render(
        request,
        "messaging/portal/list.html",
        {
            "active": "messages",
            "threads": threads,
            "departments": _departments(actor),
            "errors": errors,
            "form": request.POST if errors else {},
            "key": services.new_key(),
            "body_max": BODY_MAX,
            "open_form": bool(errors) or not threads or request.GET.get("new") == "1",
        },
        status=status,
    )


def _after_send(sent: services.Sent) -> HttpResponse:
    url = reverse("portal:thread", args=[sent.message.thread_id])
    if sent.urgent:
        # The emergency notice is at the top of the page: land there, not on the message.
        return redirect(f"{url}?urgent=1#urgent")
    return redirect(f"{url}#m{sent.message.pk}")


def _int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


@patient_page
@require_GET
def thread(request: HttpRequest, actor: PortalActor, thread_id: int) -> HttpResponse:
    """One thread's timeline; opening it marks the care team's messages read."""
    found = selectors.patient_thread(actor, thread_id)
    return _thread_page(request, actor, found, {}, 200)


def _thread_page(
    request: HttpRequest, actor: PortalActor, found: Any, errors: dict[str, Any], status: int
) -> HttpResponse:
    entries = selectors.timeline(found, for_patient=True)
    marked = services.mark_read_by_patient(actor, found)
    actor.audit(
        "portal.message.read",
        object_type="messaging.thread",
        object_id=found.pk,
        detail={"marked_read": marked},
    )
    urgent = request.GET.get("urgent") == "1" or any(
        e.message is not None and e.message.urgent and e.message.from_patient_side
        for e in entries[-1:]
    )
    return render(
        request,
        "messaging/portal/thread.html",
        {
            "active": "messages",
            "thread": found,
            "entries": entries,
            "errors": errors,
            "form": request.POST if errors else {},
            "key": services.new_key(),
            "body_max": BODY_MAX,
            "urgent": urgent,
        },
        status=status,
    )


@patient_page
@require_POST
def message_send(request: HttpRequest, actor: PortalActor, thread_id: int) -> HttpResponse:
    found = selectors.patient_thread(actor, thread_id)
    try:
        sent = services.send(
            actor,
            found.pk,
            body=request.POST.get("body", ""),
            files=request.FILES.getlist("file"),
            key=request.POST.get("idempotency_key", ""),
        )
    except ValidationFailed as exc:
        return _thread_page(request, actor, found, exc.details, exc.status)
    return _after_send(sent)


@patient_page
@require_GET
def attachment(request: HttpRequest, actor: PortalActor, attachment_id: int) -> FileResponse:
    att = selectors.patient_attachment(actor, attachment_id)
    actor.audit("portal.attachment.read", object_type="messaging.attachment", object_id=att.pk)
    return serve(att)


def serve(att: Attachment) -> FileResponse:
    """The file with its checked type, never sniffed by the browser, never run as a page."""
    from careloop.messaging import domain

    kind = domain.type_of(att.content_type)
    inline = bool(kind and kind.inline)
    response = FileResponse(
        att.file.open("rb"),
        content_type=att.content_type,
        as_attachment=not inline,
        filename=att.file_name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response

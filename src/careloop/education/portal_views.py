"""The portal's Learn tab: my visit summaries, the items delivered to me, reading them."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from careloop.education import media, rendering, selectors, services
from careloop.kit.errors import Conflict
from careloop.portal.context import PortalActor
from careloop.portal.decorators import patient_page

# Seconds on the page after which an item counts as read through, if the end was not reached.
READ_SECONDS = 45


@patient_page
def learn(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:100]
    summaries, rows = selectors.learn(actor, q)
    actor.audit("portal.education.list", detail={"search": bool(q)})
    context = {
        "active": "learn",
        "summaries": summaries,
        "rows": rows,
        "q": q,
    }
    return render(request, "education/portal/learn.html", context)


@patient_page
def learn_item(request: HttpRequest, actor: PortalActor, item_id: int) -> HttpResponse:
    item = selectors.learn_item(actor, item_id)
    services.record_open(actor, item)
    context = {
        "active": "learn",
        "item": item,
        "body": rendering.render(item.body),
        "read_seconds": READ_SECONDS,
    }
    return render(request, "education/portal/item.html", context)


@patient_page
@require_POST
def learn_progress(request: HttpRequest, actor: PortalActor, item_id: int) -> HttpResponseBase:
    """The page's script reports a read-through (end reached or time spent)."""
    item = selectors.learn_item(actor, item_id)
    try:
        first = services.record_read_through(actor, item, request.POST.get("seconds", 0))
    except Conflict:
        return JsonResponse({"recorded": False}, status=409)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"recorded": True, "first": first})
    return redirect("portal:learn_item", item.pk)


@patient_page
def learn_video(request: HttpRequest, actor: PortalActor, item_id: int) -> HttpResponseBase:
    return media.serve(request, selectors.learn_item(actor, item_id))


@patient_page
def learn_summary(request: HttpRequest, actor: PortalActor, summary_id: int) -> HttpResponse:
    summary = selectors.learn_summary(actor, summary_id)
    services.record_summary_open(actor, summary)
    context = {"active": "learn", "summary": summary, "s": summary.content}
    return render(request, "education/portal/summary.html", context)

"""The HL7 v2 message log page: filters, paging, and replay of a message."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from careloop.accounts.actor import Actor
from careloop.audit import services as audit
from careloop.hl7v2 import models as hm
from careloop.hl7v2 import selectors, services
from careloop.kit.pagination import paginate
from careloop.web.decorators import is_htmx, staff_page


def _filter(request: HttpRequest) -> selectors.LogFilter:
    g = request.GET
    return selectors.LogFilter(
        status=g.get("status", "") if g.get("status") in hm.Status.values else "",
        message_type=g.get("type", "")[:40],
        control_id=g.get("control_id", "")[:199],
    )


@staff_page
def message_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    flt = _filter(request)
    page = paginate(selectors.messages(actor, flt), request.GET.get("page"), 50)
    audit.record(actor, "hl7v2.list", detail={"status": flt.status, "type": flt.message_type})
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "flt": flt,
        "statuses": hm.Status.choices,
        "types": selectors.type_names(actor),
        "query": query.urlencode(),
    }
    template = "hl7v2/_results.html" if is_htmx(request) else "hl7v2/list.html"
    return render(request, template, context)


@require_POST
@staff_page
def replay(request: HttpRequest, actor: Actor, message_id: int) -> HttpResponseBase:
    row = selectors.message(actor, message_id)
    services.replay(row, actor)
    if row.status == hm.Status.APPLIED:
        flash.success(request, _("The message was applied."))
    else:
        flash.error(request, _("The message still fails: %(reason)s") % {"reason": row.reason})
    return redirect("hl7v2:list")

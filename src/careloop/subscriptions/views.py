"""The subscriptions page for organisation admins: every subscription of the organisation
with its status, last error and recent deliveries (retry now, turn off), and the allow-list of
internal endpoint hosts."""

from __future__ import annotations

from typing import Any

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.errors import NotFound
from careloop.kit.pagination import paginate
from careloop.patients.selectors import require
from careloop.subscriptions import guard, services
from careloop.subscriptions import models as sm
from careloop.web.decorators import staff_page

RECENT = 5


def _subscription(actor: Actor, subscription_id: int) -> sm.Subscription:
    require(actor, Action.ORG_MANAGE)
    found = (
        sm.Subscription.objects.select_related("created_by")
        .filter(pk=subscription_id, organisation_id=actor.organisation_id or 0)
        .first()
    )
    if found is None:
        raise NotFound()
    return found


@staff_page
def subscription_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    qs = (
        sm.Subscription.objects.filter(organisation_id=actor.organisation_id or 0)
        .select_related("created_by")
        .order_by("-pk")
    )
    status = request.GET.get("status", "")
    if status in sm.Subscription.Status.values:
        qs = qs.filter(status=status)
    page = paginate(qs, request.GET.get("page"), 25)
    rows: list[dict[str, Any]] = []
    for sub in page.items:
        recent = list(sub.deliveries.order_by("-pk")[:RECENT])
        waiting = sub.deliveries.filter(
            status__in=(sm.Delivery.Status.PENDING, sm.Delivery.Status.SENDING)
        ).count()
        rows.append({"sub": sub, "recent": recent, "waiting": waiting})
    audit.record(actor, "subscription.list", detail={"status": status})
    context = {
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": sm.Subscription.Status.choices,
        "hosts": sm.AllowedHost.objects.filter(organisation_id=actor.organisation_id or 0).order_by(
            "host"
        ),
    }
    return render(request, "subscriptions/list.html", context)


@require_POST
@staff_page
def retry(request: HttpRequest, actor: Actor, subscription_id: int) -> HttpResponseBase:
    sub = _subscription(actor, subscription_id)
    if sub.status == sm.Subscription.Status.OFF:
        flash.error(request, _("The subscription is off; turn it on through the FHIR API."))
        return redirect("subscriptions:list")
    count = services.retry_now(actor, sub)
    flash.success(request, _("%(n)s deliveries will be sent again now.") % {"n": count})
    return redirect("subscriptions:list")


@require_POST
@staff_page
def turn_off(request: HttpRequest, actor: Actor, subscription_id: int) -> HttpResponseBase:
    sub = _subscription(actor, subscription_id)
    services.turn_off(actor, sub)
    flash.success(request, _("The subscription is off."))
    return redirect("subscriptions:list")


@require_POST
@staff_page
def allow_host(request: HttpRequest, actor: Actor) -> HttpResponseBase:
    require(actor, Action.ORG_MANAGE)
    host = request.POST.get("host", "").strip().lower().strip("[]")
    try:
        literal = f"[{host}]" if ":" in host else host  # an IPv6 address
        _scheme, parsed, _port, _path = guard.parse(f"http://{literal}/")
    except guard.Refused:
        parsed = ""
    if not host or parsed != host or len(host) > 255:
        flash.error(request, _("Enter a host name or an IP address, nothing else."))
        return redirect("subscriptions:list")
    sm.AllowedHost.objects.get_or_create(
        organisation_id=actor.organisation_id or 0, host=host, defaults={"added_by": actor.user}
    )
    audit.record(actor, "subscription.allow_host", detail={"host": host})
    flash.success(request, _("%(host)s may now be used as an endpoint.") % {"host": host})
    return redirect("subscriptions:list")


@require_POST
@staff_page
def remove_host(request: HttpRequest, actor: Actor, host_id: int) -> HttpResponseBase:
    require(actor, Action.ORG_MANAGE)
    row = sm.AllowedHost.objects.filter(
        pk=host_id, organisation_id=actor.organisation_id or 0
    ).first()
    if row is None:
        raise NotFound()
    audit.record(actor, "subscription.remove_host", detail={"host": row.host})
    row.delete()
    flash.success(request, _("The host was removed from the allow-list."))
    return redirect("subscriptions:list")

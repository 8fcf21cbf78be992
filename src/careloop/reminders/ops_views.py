"""The reminder operations page: queue, dead letters, send success per channel, pause switch."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import sending as alert_sending
from careloop.audit import services as audit
from careloop.careplans.models import ActivityKind
from careloop.channels.models import KIND_CHOICES
from careloop.kit.errors import Conflict, ValidationFailed
from careloop.patients import selectors as patient_selectors
from careloop.reminders import models as rm
from careloop.reminders import selectors
from careloop.reminders import services as reminder_services
from careloop.web.decorators import is_htmx, staff_page

CHANNEL_LABELS: dict[str, Any] = dict(KIND_CHOICES)
KIND_LABELS: dict[str, Any] = {
    **dict(ActivityKind.choices),
    "appointment": gettext_lazy("Appointment"),
    "queue": gettext_lazy("Queue call"),
}


def _allowed(actor: Actor) -> None:
    """Reminder operations (403) over patient data (the dead letters name patients)."""
    selectors.require_operate(actor)
    patient_selectors.require(actor, Action.PATIENT_VIEW)


def age_text(seconds: int | None) -> str:
    """A waiting time for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return _("%(n)d s") % {"n": seconds}
    minutes = seconds // 60
    if minutes < 60:
        return _("%(n)d min") % {"n": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    days, hours = divmod(hours, 24)
    return _("%(d)d d %(h)d h") % {"d": days, "h": hours}


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def live_context(actor: Actor) -> dict[str, Any]:
    """Everything the auto-refreshing part of the page shows; the read is audited."""
    figures = selectors.figures(actor)
    dead = selectors.dead_letters(actor)
    audit.record(
        actor,
        "reminders.operations.read",
        detail={
            "dead_letters": figures.dead_letters,
            "patients": sorted({d.patient_id for d in dead}),
        },
    )
    channels = [
        {
            "label": str(CHANNEL_LABELS.get(c.channel, c.channel)),
            "c": c,
            "rate_24h": _percent(c.rate_24h),
            "rate_7d": _percent(c.rate_7d),
        }
        for c in figures.channels
    ]
    chart = {
        "labels": [row["label"] for row in channels],
        "series": [
            {"label": _("Last 24 hours"), "data": [row["rate_24h"] for row in channels]},
            {"label": _("Last 7 days"), "data": [row["rate_7d"] for row in channels]},
        ],
        "axis": _("Accepted or delivered, percent of attempts"),
    }
    return {
        "f": figures,
        "oldest_age": age_text(figures.oldest_age_seconds),
        "today": [(label, figures.today[value]) for value, label in rm.Status.choices],
        "today_total": sum(figures.today.values()),
        "channels": channels,
        # A data attribute, not a json_script tag: htmx drops <script> elements from the
        # content it swaps in (allowScriptTags is off), and the figures are swapped every 30 s.
        "chart_json": json.dumps(chart, ensure_ascii=False),
        "dead": [
            {
                "o": d,
                "kind": KIND_LABELS.get(d.kind, d.kind),
                "reason": selectors.REASONS.get(d.reason, d.reason),
                "channel": CHANNEL_LABELS.get(getattr(d, "last_channel", ""), ""),
            }
            for d in dead
        ],
        # Urgent-alert messages to staff that could not be sent (careloop.alerts.sending).
        "staff_failed": alert_sending.failed(actor.organisation_id or 0),
    }


@require_GET
@staff_page
def dashboard(request: HttpRequest, actor: Actor) -> HttpResponse:
    _allowed(actor)
    context = live_context(actor)
    if is_htmx(request):
        return render(request, "reminders/ops_live.html", context)
    return render(request, "reminders/ops.html", context)


@require_POST
@staff_page
def retry(request: HttpRequest, actor: Actor, occurrence_id: int) -> HttpResponse:
    _allowed(actor)
    occ = selectors.in_scope(actor, occurrence_id)
    if request.POST.get("confirm") != "1":
        audit.record(
            actor, "reminder.read", patient_id=occ.patient_id, obj=occ, detail={"view": "retry"}
        )
        return render(
            request,
            "reminders/ops_retry.html",
            {
                "o": occ,
                "kind": KIND_LABELS.get(occ.kind, occ.kind),
                "reason": selectors.REASONS.get(occ.reason, occ.reason),
            },
        )
    try:
        reminder_services.retry_dead_by(actor, occ.pk)
    except Conflict:
        messages.error(request, _("Only dead letters can be retried; this one has moved on."))
    else:
        messages.success(request, _("The reminder will be sent again shortly."))
    return redirect("operations:dashboard")


@require_POST
@staff_page
def dispatch(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.require_operate(actor)
    action = request.POST.get("action", "")
    if action not in ("pause", "resume"):
        messages.error(request, _("Choose to pause or to resume sending."))
        return redirect("operations:dashboard")
    try:
        reminder_services.set_dispatch(
            actor, paused=action == "pause", reason=request.POST.get("reason", "")
        )
    except ValidationFailed:
        messages.error(request, _("Say why sending is paused."))
    else:
        if action == "pause":
            messages.warning(request, _("Sending is paused. No reminder leaves until you resume."))
        else:
            messages.success(request, _("Sending has resumed."))
    return redirect("operations:dashboard")

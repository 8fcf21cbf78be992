"""The send-time pages: the lift report (learned time vs the control group) and the settings."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import domain
from careloop.kit import exports as kit_exports
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound
from careloop.patients.selectors import require
from careloop.reminders.ops_views import KIND_LABELS
from careloop.sendtime import services
from careloop.sendtime.forms import PeriodForm, SettingsForm
from careloop.web.decorators import staff_page

DEFAULT_WEEKS = 12
LEARN_COLOUR = "#1f6feb"
CONTROL_COLOUR = "#8c959f"


def _organisation(actor: Actor) -> Organisation:
    org_id = actor.organisation_id
    org = Organisation.objects.filter(pk=org_id).first() if org_id is not None else None
    if org is None:
        raise NotFound()
    return org


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}"


def _rate_series(weeks: list[dict[str, Any]], arm: str) -> list[float | None]:
    return [None if w[arm]["rate"] is None else round(w[arm]["rate"] * 100, 1) for w in weeks]


def _charts(result: dict[str, Any]) -> dict[str, str]:
    weeks = result["weeks"]
    weekly = {
        "type": "line",
        "percent": True,
        "labels": [w["week"] for w in weeks],
        "series": [
            {
                "label": _("Learned time"),
                "colour": LEARN_COLOUR,
                "data": _rate_series(weeks, services.LEARN),
            },
            {
                "label": _("Fixed time (control)"),
                "colour": CONTROL_COLOUR,
                "data": _rate_series(weeks, services.CONTROL),
            },
        ],
    }
    hours = {
        "type": "bar",
        "percent": False,
        "labels": [f"{h:02d}" for h in range(24)],
        "series": [
            {
                "label": _("Learned time"),
                "colour": LEARN_COLOUR,
                "data": result["hours"][services.LEARN],
            },
            {
                "label": _("Fixed time (control)"),
                "colour": CONTROL_COLOUR,
                "data": result["hours"][services.CONTROL],
            },
        ],
    }
    return {"weekly_json": json.dumps(weekly), "hours_json": json.dumps(hours)}


def _week_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for w in result["weeks"]:
        learn, control = w[services.LEARN], w[services.CONTROL]
        rows.append(
            [
                w["week"],
                learn["sent"],
                learn["acknowledged"],
                _pct(learn["rate"]),
                control["sent"],
                control["acknowledged"],
                _pct(control["rate"]),
            ]
        )
    return rows


@staff_page
@require_GET
def report_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    require(actor, Action.ANALYTICS_VIEW)
    org = _organisation(actor)
    tz = domain.zone(org.time_zone)
    today = domain.local_of(utc_now(), tz).date()
    period = PeriodForm(request.GET)
    if not period.is_valid():
        return render(
            request,
            "sendtime/report.html",
            {"period": period, "result": None, "can_manage": actor.can(Action.ORG_MANAGE)},
            status=400,
        )
    end: date = period.cleaned_data.get("end") or today
    start: date = period.cleaned_data.get("start") or end - timedelta(weeks=DEFAULT_WEEKS)
    departments = None if actor.is_org_wide else actor.department_ids
    result = services.report(org.pk, start, end + timedelta(days=1), department_ids=departments)
    header = [
        _("Week from"),
        _("Learned: sent"),
        _("Learned: acknowledged"),
        _("Learned: rate"),
        _("Control: sent"),
        _("Control: acknowledged"),
        _("Control: rate"),
    ]
    rows = _week_rows(result)
    if request.GET.get("format") == "csv":
        response = HttpResponse(
            kit_exports.csv_bytes(header, rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="sendtime-{start.isoformat()}-{end.isoformat()}.csv"'
        )
        return response
    lift = result["lift"]
    context = {
        "period": period,
        "start": start,
        "end": end,
        "result": result,
        "org_wide": departments is None,
        "arms": [
            (label, result["arms"][arm], _pct(result["arms"][arm]["rate"]))
            for arm, label in (
                (services.LEARN, _("Learned time")),
                (services.CONTROL, _("Fixed time (control)")),
            )
        ],
        "lift_points": _points(lift["absolute"]),
        "lift_relative": _pct(lift["relative"]) if lift["relative"] is not None else "–",
        "ci_low": _points(lift["ci_low"]),
        "ci_high": _points(lift["ci_high"]),
        "significant": lift["ci_low"] is not None and (lift["ci_low"] > 0 or lift["ci_high"] < 0),
        "header": header,
        "rows": rows,
        "channels": list(result["channels"].items()),
        "kinds": [
            (
                KIND_LABELS.get(kind, kind),
                _pct(figures["learn"]["rate"]),
                _pct(figures["control"]["rate"]),
                figures["learn"]["sent"] + figures["control"]["sent"],
                _points(figures["lift"]["absolute"]),
                _points(figures["lift"]["ci_low"]),
                _points(figures["lift"]["ci_high"]),
            )
            for kind, figures in result["kinds"].items()
        ],
        "settings": services.settings_for(org.pk),
        "can_manage": actor.can(Action.ORG_MANAGE),
        **_charts(result),
    }
    return render(request, "sendtime/report.html", context)


@staff_page
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    org = _organisation(actor)
    current = services.settings_for(org.pk)
    if request.method == "POST":
        form = SettingsForm(request.POST)
        if form.is_valid():
            before = {
                "enabled": current.enabled,
                "control_share": current.control_share,
                "prior_strength": current.prior_strength,
                "windows": current.windows,
            }
            saved = form.apply(current)
            saved.updated_at = utc_now()
            saved.save()
            audit.record(
                actor,
                "sendtime.settings.change",
                obj=saved,
                detail={
                    "before": before,
                    "after": {
                        "enabled": saved.enabled,
                        "control_share": saved.control_share,
                        "prior_strength": saved.prior_strength,
                        "windows": saved.windows,
                    },
                },
            )
            messages.success(request, _("Send-time settings saved."))
            return redirect("sendtime:settings")
        status = 400
    else:
        form = SettingsForm(initial=SettingsForm.initial_from(current))
        status = 200
    return render(
        request,
        "sendtime/settings.html",
        {"form": form, "saved": current.pk is not None},
        status=status,
    )

"""The page behind a reminder's message link: the patient confirms, without signing in.

The opaque token in the address is the only credential; it names one reminder and expires
(``ReminderSettings.link_ttl_hours`` after the reminder was due). The page shows the reminder's
title and local time, never a diagnosis, and speaks the patient's preferred language.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from careloop.careplans import domain
from careloop.careplans import services as plan_services
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.reminders import models as rm
from careloop.reminders import services

ANSWERS = ("taken", "skipped", "seen")


def _headers(response: HttpResponse) -> HttpResponse:
    # The address holds the token: keep it out of caches, referrers and search engines.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _title(occ: rm.Occurrence, language: str) -> str:
    payload = occ.payload or {}
    english = payload.get("title_en") if language == "en" else None
    return str(english or payload.get("title") or "")


@require_http_methods(["GET", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        occ = services.by_token(token)
    except NotFound:
        return _headers(render(request, "reminders/link_gone.html", status=404))
    language = occ.patient.preferred_language or "zh-hans"
    with translation.override(language):
        return _headers(_link(request, occ, language))


def _link(request: HttpRequest, occ: rm.Occurrence, language: str) -> HttpResponse:
    error = ""
    status = 200
    if request.method == "POST":
        answer = request.POST.get("answer", "")
        reason = request.POST.get("reason", "")
        medication = occ.kind == "medication"
        if answer not in ANSWERS or (answer != "seen") != medication:
            error = "answer"
            status = 422
        else:
            try:
                services.acknowledge(
                    occ.pk,
                    source="link",
                    intake=answer if medication else "",
                    reason=reason if answer == "skipped" else "",
                )
            except ValidationFailed:
                error = "reason"
                status = 422
            except Conflict:
                occ.refresh_from_db()
            else:
                return redirect(f"{request.path}?done=1", permanent=False)
        occ.refresh_from_db()
    local = domain.local_of(occ.due_at, domain.zone(occ.time_zone))
    intake = getattr(occ, "intake", None)
    context: dict[str, Any] = {
        "occ": occ,
        "language": language,
        "title": _title(occ, language),
        "detail": " ".join(
            str(occ.payload.get(k, "")) for k in ("medication", "dose") if occ.payload
        ).strip(),
        "local": local,
        "clinic": occ.organisation.name,
        "large": plan_services.preference_for(occ.patient).elderly,
        "medication": occ.kind == "medication",
        "state": _state(occ, request),
        "intake": intake,
        "reasons": rm.IntakeEvent.SkipReason.choices,
        "error": error,
        "chosen_reason": request.POST.get("reason", ""),
    }
    return render(request, "reminders/link.html", context, status=status)


def _state(occ: rm.Occurrence, request: HttpRequest) -> str:
    if occ.status == rm.Status.ACKNOWLEDGED:
        return "thanks" if request.GET.get("done") else "already"
    if occ.status in (rm.Status.CANCELLED, rm.Status.SKIPPED):
        return "withdrawn"
    return "open"

"""The insights panel of the patient 360 page (loaded by htmx): portrait, segments, risk."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.insights import portrait as portraits
from careloop.insights import sentiment
from careloop.observations import forms as observation_forms
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.web.decorators import is_htmx, staff_page

TONES = {
    sentiment.POSITIVE: pgettext_lazy("tone", "Positive"),
    sentiment.NEUTRAL: pgettext_lazy("tone", "Neutral"),
    sentiment.NEGATIVE: pgettext_lazy("tone", "Negative"),
}
TONE_CLASSES = {sentiment.POSITIVE: "ok", sentiment.NEUTRAL: "neutral", sentiment.NEGATIVE: "bad"}
TRENDS = {
    portraits.IMPROVING: pgettext_lazy("tone trend", "Improving"),
    portraits.WORSENING: pgettext_lazy("tone trend", "Worsening"),
    portraits.STEADY: pgettext_lazy("tone trend", "Steady"),
}
# The colour of a risk band's badge (the risk app names the band).
BAND_TONES = {"low": "ok", "medium": "warn", "high": "bad"}
CHART_HEIGHT = 36  # user units of the small column charts' drawing area


def _percent(value: float | None) -> int | None:
    return None if value is None else round(value * 100)


def shown(value: Any) -> Any:
    """A factor's value as read: whole numbers without decimals, others to two places."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else value
    if float(value).is_integer():
        return int(value)
    return round(float(value), 2)


def columns(values: list[int], *, width: int = 10, gap: int = 2) -> list[dict[str, Any]]:
    """Rectangles of a small column chart (SVG user units, drawing area CHART_HEIGHT high)."""
    top = max(values) if values else 0
    out = []
    for i, v in enumerate(values):
        height = round(v / top * CHART_HEIGHT, 2) if top else 0
        out.append(
            {"x": i * width + gap / 2, "y": CHART_HEIGHT - height, "w": width - gap, "h": height}
        )
    return out


def spark(scores: list[float]) -> str:
    """SVG polyline points of scores in [-1, 1], oldest first, over a 100 × 30 box."""
    if not scores:
        return ""
    if len(scores) == 1:
        y = round(15 - scores[0] * 13, 2)
        return f"0,{y} 100,{y}"
    step = 100 / (len(scores) - 1)
    return " ".join(f"{round(i * step, 2)},{round(15 - s * 13, 2)}" for i, s in enumerate(scores))


def _segments(patient: pm.Patient) -> dict[str, Any]:
    # Imported here: the panel reads segments and risk, neither depends on this app.
    from careloop.segments import selectors as segment_selectors

    current = list(segment_selectors.for_patient(patient))
    history = [h for h in segment_selectors.history_for(patient, limit=10) if h.get("left_at")]
    return {"current": current, "history": history}


def _risk(patient: pm.Patient) -> dict[str, Any] | None:
    from careloop.risk import selectors as risk_selectors

    found = risk_selectors.for_patient(patient)
    if not found:
        return None
    factors = list(found.get("factors") or [])
    top = max((abs(float(f.get("weight") or 0)) for f in factors), default=0.0)
    bars = [
        {
            "label": f.get("label", ""),
            "value": f.get("shown") or shown(f.get("value")),
            "weight": float(f.get("weight") or 0),
            "pct": round(abs(float(f.get("weight") or 0)) / top * 100, 1) if top else 0,
        }
        for f in factors
    ]
    band = str(found.get("band", ""))
    actions = [
        {
            "label": a.get("label") or a.get("kind", ""),
            "at": a.get("at"),
            "by": a.get("by") or "",
        }
        for a in found.get("actions") or []
    ]
    return {
        "score": float(found.get("score") or 0),
        "percent": round(float(found.get("score") or 0) * 100),
        "band": found.get("band_label") or band,
        "tone": BAND_TONES.get(band, "neutral"),
        "factors": bars,
        "model_version": found.get("model_version"),
        "scored_at": found.get("scored_at"),
        "actions": actions,
    }


def panel_context(actor: Actor, patient: pm.Patient, today: date | None = None) -> dict[str, Any]:
    p = portraits.portrait(patient, today=today)
    b = p.behaviour
    s = p.sentiment
    month_counts = [n for _m, n in p.visits.by_month]
    risk = _risk(patient)
    return {
        "patient": patient,
        "p": p,
        "ack_30": _percent(b.ack_30d.value),
        "ack_90": _percent(b.ack_90d.value),
        "questionnaires": _percent(b.questionnaires_90d.value),
        "hour_columns": columns(b.answers_by_hour),
        "month_columns": columns(month_counts, width=20, gap=6),
        "first_month": p.visits.by_month[0][0],
        "last_month": p.visits.by_month[-1][0],
        "readings": [(observation_forms.KIND_LABELS.get(k, k), n) for k, n in b.readings_by_kind],
        "moods": [
            {
                "m": m,
                "tone": TONES[m.label],
                "tone_class": TONE_CLASSES[m.label],
            }
            for m in s.messages
        ],
        "mean_tone": TONES[s.label],
        "mean_tone_class": TONE_CLASSES[s.label],
        "trend": TRENDS.get(s.trend, ""),
        "trend_key": s.trend,
        "spark": spark([m.score for m in reversed(s.messages)]),
        "segments": _segments(patient),
        "risk": risk,
        "can_call": actor.can(Action.CLINICAL_WRITE),
    }


def _patient(actor: Actor, patient_id: int, action: Action) -> pm.Patient:
    patient_selectors.require(actor, Action.PATIENT_VIEW, patient_id=patient_id)
    return patient_selectors.get_patient(actor, patient_id, action=action, audit_read=False)


def _render(
    request: HttpRequest,
    actor: Actor,
    patient: pm.Patient,
    notice: str = "",
    level: int = messages.SUCCESS,
) -> HttpResponse:
    context = panel_context(actor, patient)
    context["notice"] = notice
    context["notice_class"] = (
        "error" if level == messages.ERROR else ("info" if level == messages.INFO else "")
    )
    audit.record(
        actor,
        "insights.portrait.read",
        patient_id=patient.pk,
        obj=patient,
        detail={
            "segments": len(context["segments"]["current"]),
            "risk": context["risk"] is not None,
            "messages": len(context["moods"]),
        },
    )
    return render(request, "insights/_panel.html", context)


@staff_page
@require_GET
def patient_panel(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """The 360 page's insights section (loaded by htmx)."""
    patient = _patient(actor, patient_id, Action.CLINICAL_VIEW)
    return _render(request, actor, patient)


@staff_page
@require_POST
def call_task(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """Open a nurse call about the patient's latest risk score (once per score) through the
    risk app, which records it as an action on the score; then show the panel again."""
    from careloop.risk import services as risk_services

    patient_selectors.require(actor, Action.CLINICAL_VIEW, patient_id=patient_id)
    patient = _patient(actor, patient_id, Action.CLINICAL_WRITE)
    level = messages.SUCCESS
    try:
        task, action = risk_services.open_call_task(actor, patient.pk)
    except risk_services.RiskError as exc:
        level, notice = messages.ERROR, str(exc.message)
        audit.record(
            actor,
            "insights.call_task",
            outcome="failure",
            patient_id=patient.pk,
            detail={"reason": "not_scored"},
        )
    else:
        if action is not None:
            notice = _("A call task was opened for the responsible nurse.")
        else:
            level = messages.INFO
            notice = _("A call task for this risk score is already open.")
        audit.record(
            actor,
            "insights.call_task",
            patient_id=patient.pk,
            obj=task,
            detail={"created": action is not None},
        )
    if is_htmx(request):
        return _render(request, actor, patient, notice, level)
    messages.add_message(request, level, notice)
    return redirect("patients:detail", patient.pk)

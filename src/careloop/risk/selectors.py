"""Reads of the risk app for other apps and the pages: latest scores, one patient's risk, the
worklist of scored patients a user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Max, QuerySet

from careloop.accounts.actor import Actor
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.risk import features
from careloop.risk import models as rm

RECENT_ACTIONS = 5


def latest_day(model: rm.Model | None) -> Any:
    if model is None:
        return None
    return rm.Score.objects.filter(model=model).aggregate(d=Max("day"))["d"]


def _active(organisation_id: int) -> rm.Model | None:
    return rm.Model.objects.filter(organisation_id=organisation_id, active=True).first()


def latest_scores(organisation_id: int) -> dict[int, float]:
    """Patient id -> score of the active model's latest day of scoring ({} if none)."""
    model = _active(organisation_id)
    day = latest_day(model)
    if day is None:
        return {}
    return dict(rm.Score.objects.filter(model=model, day=day).values_list("patient_id", "score"))


def shown(feature: str, value: Any) -> str:
    """A factor's value as people read it: rates in percent, counts whole, others to 0.1."""
    if value is None:
        return "—"
    number = float(value)
    if feature in features.RATES:
        return f"{100 * number:.0f}%"
    if feature in features.SHARES_OF_CHANGE:
        return f"{100 * number:+.0f}%"
    if number.is_integer():
        return str(int(number))
    return f"{number:.1f}"


def factors_of(score: rm.Score) -> list[dict[str, Any]]:
    """The score's top factors with their human labels: [{label, value, shown, weight,
    feature}] (``value`` as computed, ``shown`` as text)."""
    return [
        {
            "feature": f.get("feature", ""),
            "label": features.label_of(f.get("feature", "")),
            "value": f.get("value"),
            "shown": shown(f.get("feature", ""), f.get("value")),
            "weight": f.get("weight"),
        }
        for f in score.factors or []
    ]


def for_patient(patient: pm.Patient) -> dict[str, Any] | None:
    """The patient's latest score of the active model, its reasons and the recent actions."""
    score = (
        rm.Score.objects.filter(patient_id=patient.pk, model__active=True)
        .select_related("model")
        .order_by("-scored_at", "-id")
        .first()
    )
    if score is None:
        return None
    actions = [
        {
            "kind": a.kind,
            "label": str(a.get_kind_display()),
            "detail": a.detail,
            "at": a.created_at,
            "by": str(a.actor) if a.actor_id else "",
        }
        for a in rm.Action.objects.filter(patient_id=patient.pk).select_related("actor")[
            :RECENT_ACTIONS
        ]
    ]
    return {
        "score": score.score,
        "band": score.band,
        "band_label": str(score.get_band_display()),
        "factors": factors_of(score),
        "model_version": score.model.version,
        "scored_at": score.scored_at,
        "actions": actions,
    }


def worklist(
    actor: Actor, *, band: str = "", department_id: int | None = None
) -> QuerySet[rm.Score]:
    """The latest day's scores of the patients the actor may see, highest first."""
    model = _active(actor.organisation_id or 0)
    day = latest_day(model)
    if day is None:
        return rm.Score.objects.none()
    visible = patient_selectors.visible_patients(actor)
    if department_id is not None:
        visible = visible.filter(department_links__department_id=department_id)
    qs = rm.Score.objects.filter(model=model, day=day, patient__in=visible.values("pk"))
    if band:
        qs = qs.filter(band=band)
    return qs.select_related("patient").order_by("-score", "patient_id")


def model_versions(organisation_id: int) -> QuerySet[rm.Model]:
    return rm.Model.objects.filter(organisation_id=organisation_id).order_by("-version")


def drift_history(organisation_id: int, limit: int = 90) -> list[rm.DriftCheck]:
    rows = list(
        rm.DriftCheck.objects.filter(organisation_id=organisation_id)
        .select_related("model")
        .order_by("-day", "-id")[:limit]
    )
    return list(reversed(rows))

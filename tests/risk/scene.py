"""The careloop.risk routes in the shared route-matrix tests (tests/security/scenario.py).

The scene's organisation gets an active risk model (plain JSON parameters, no training) and the
scene's patient a high score from it today, with its reasons and a drift check, so the card,
the worklist (and its call task) and the drift page all have something to show.
"""

from __future__ import annotations

from typing import Any

from careloop.kit.clock import utc_now
from careloop.risk import features, services
from careloop.risk import models as rm


def _ours(route: Any) -> bool:
    return str(route.name).startswith("risk:")


def model_for(organisation: Any, *, version: int = 1) -> rm.Model:
    """An active model whose only weight is on the 30-day acknowledgement rate."""
    names = list(features.NAMES)
    coef = [-2.0 if n == "ack_rate_30d" else 0.0 for n in names]
    now = utc_now()
    return rm.Model.objects.create(
        organisation=organisation,
        version=version,
        as_of=now,
        period_start=now,
        period_end=now,
        params={
            "kind": "logistic_regression",
            "names": names,
            "means": [0.7 if n == "ack_rate_30d" else 0.0 for n in names],
            "scales": [0.2 if n == "ack_rate_30d" else 1.0 for n in names],
            "coef": coef,
            "intercept": -1.0,
        },
        card={
            "target": {"horizon_days": 30, "min_sent": 5, "ack_within_hours": 12},
            "thresholds": {"medium": 0.3, "high": 0.6},
            "score_distribution": {"edges": [0.0, 0.3, 0.6, 1.0], "shares": [0.5, 0.3, 0.2]},
            "limitations": ["observational"],
        },
        active=True,
    )


def extend(scene: Any) -> None:
    org = scene.world.org
    model = model_for(org)
    now = utc_now()
    day = services.local_day(org, now)
    scene.extra["risk_model"] = model
    scene.extra["risk_score"] = rm.Score.objects.create(
        organisation=org,
        patient=scene.patient,
        model=model,
        day=day,
        score=0.82,
        band=rm.Band.HIGH,
        factors=[{"feature": "ack_rate_30d", "value": 0.2, "weight": 1.6}],
        scored_at=now,
    )
    rm.DriftCheck.objects.create(
        organisation=org, model=model, day=day, psi=0.05, scored=1, bins={}
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

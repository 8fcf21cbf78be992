"""The careloop.insights routes in the shared route-matrix tests (tests/security/scenario.py).

The scene's patient gets a risk score of the organisation's active model (made here when the
risk scene has not made one), so that "ask the nurse to call" has a score to act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.kit.clock import utc_now
from careloop.patients import models as pm
from careloop.risk import models as rm


def _ours(route: Any) -> bool:
    return str(route.name).startswith("insights:")


def scored(patient: pm.Patient, *, score: float = 0.72, band: str = "high") -> rm.Score:
    """The patient's score today under the organisation's active model (made if missing)."""
    now = utc_now()
    model = rm.Model.objects.filter(organisation_id=patient.organisation_id, active=True).first()
    if model is None:
        last = (
            rm.Model.objects.filter(organisation_id=patient.organisation_id)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        model = rm.Model.objects.create(
            organisation_id=patient.organisation_id,
            version=(last or 0) + 1,
            as_of=now,
            period_start=now - timedelta(days=180),
            period_end=now,
            params={},
            card={"thresholds": {"medium": 0.3, "high": 0.6}},
            active=True,
        )
    found = rm.Score.objects.filter(patient=patient, model=model).order_by("-scored_at").first()
    if found is not None:
        return found
    return rm.Score.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        model=model,
        day=now.date(),
        score=score,
        band=band,
        factors=[
            {"feature": "ack_rate_30d", "value": 0.35, "weight": 0.9},
            {"feature": "days_since_activity", "value": 12, "weight": 0.5},
        ],
        scored_at=now,
    )


def extend(scene: Any) -> None:
    scene.extra["insights_score"] = scored(scene.patient)


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    return {}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    return {}


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

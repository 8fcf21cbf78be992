"""The careloop.experiments routes in the shared route-matrix tests (tests/security/scenario.py).

The scene holds one draft experiment of the scene's organisation: every page about one
experiment is asked about it, so starting and stopping (each request rolled back) both apply.
"""

from __future__ import annotations

import json
from typing import Any

from careloop.experiments import design
from careloop.experiments.models import Experiment


def _ours(route: Any) -> bool:
    return str(route.name).startswith("experiments:")


def form(code: str = "wording-b") -> dict[str, Any]:
    """Valid input of the experiment form."""
    return {
        "code": code,
        "name": "提醒措辞",
        "hypothesis": "A personal tone raises acknowledgements.",
        "factor": "wording",
        "kinds": ["medication", "measurement"],
        "population": "all",
        "arms": json.dumps(design.example_arms("wording"), ensure_ascii=False),
        "primary_outcome": "ack_rate",
        "min_per_arm": "20",
        "max_per_arm": "100",
        "looks": "4",
        "alpha": "0.05",
        "seed": "5",
    }


def extend(scene: Any) -> None:
    """Add this app's rows to the scene (scene.extra[...])."""
    scene.extra["experiment"] = Experiment.objects.create(
        organisation=scene.world.org,
        code="scene-wording",
        name="Scene experiment",
        factor="wording",
        kinds=["medication"],
        arms=design.example_arms("wording"),
        min_per_arm=20,
        max_per_arm=100,
        seed=1,
    )


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route) or "<int:experiment_id>" not in route.path:
        return {}
    return {"experiment_id": scene.extra["experiment"].pk}


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if route.name == "experiments:create":
        return form("scene-new")
    if route.name == "experiments:edit":
        return form("scene-wording")
    if route.name == "experiments:stop":
        return {"note": "route matrix"}
    if route.name == "experiments:start":
        return {}
    return None


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

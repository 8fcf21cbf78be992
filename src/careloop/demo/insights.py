"""The demo's precision-care layer, built after its history: the risk model trained on the past
year and today's scores, segments computed, send-time learning switched on, and a draft
wording experiment ready to start."""

from __future__ import annotations

import json
from typing import Any

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation, Staff


def add_insights(org: Organisation, seed: int) -> dict[str, Any]:
    from careloop.risk import services as risk
    from careloop.segments import services as segments
    from careloop.sendtime import models as sendtime

    done: dict[str, Any] = {}
    sendtime.Settings.objects.update_or_create(organisation=org, defaults={"enabled": True})
    try:
        model = risk.train(org.pk, seed=seed)
    except risk.RiskError as exc:  # too little history in a very small demo
        done["risk"] = str(exc)
    else:
        done["risk_model"] = model.version
        done["risk_scores"] = risk.score(org.pk)
        risk.drift(org.pk)
    # Segments after the scores: the high-risk segment also takes a high score.
    segments.load_defaults()
    run = segments.recompute(org.pk, force=True)
    done["segment_members"] = run.counts
    admin = Staff.objects.filter(organisation=org, username="admin").first()
    if admin is not None:
        done["experiment"] = _draft_experiment(Actor(user=admin, source="demo", channel="demo"))
    return done


def _draft_experiment(actor: Actor) -> str:
    """A wording test on the portal reminders for daily measurements, left as a draft."""
    from careloop.experiments import services
    from careloop.experiments.forms import ExperimentForm

    arms = [
        {"code": "control", "name": "现行文案", "weight": 1, "control": True, "params": {}},
        {
            "code": "family",
            "name": "家人关怀",
            "weight": 1,
            "control": False,
            "params": {
                "wording": {
                    "zh-hans": "{name}，家人也盼着您血压平稳：今天量一次，点这里记录 {link}",
                    "en": "{name}, your family counts on steady blood pressure: "
                    "measure once today and log it here {link}",
                }
            },
        },
    ]
    form = ExperimentForm(
        {
            "code": "bp-wording",
            "name": "测量提醒文案：家人关怀 vs 现行",
            "hypothesis": "提到家人的提醒让更多患者当天完成血压测量。",
            "factor": "wording",
            "kinds": ["measurement"],
            "population": "all",
            "arms": json.dumps(arms, ensure_ascii=False),
            "primary_outcome": "ack_rate",
            "min_per_arm": 30,
            "max_per_arm": 100,
            "looks": 4,
            "alpha": 0.05,
            "seed": 2026,
        },
        organisation_id=actor.organisation_id or 0,
    )
    if not form.is_valid():
        return json.dumps(form.errors.get_json_data(), ensure_ascii=False)
    return services.save(actor, form.cleaned_data).code

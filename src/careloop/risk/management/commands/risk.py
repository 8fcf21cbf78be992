"""careloop risk train|score|card|drift: the risk model from the command line (JSON output)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError


def _as_of(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(
            f"--as-of is not a date (YYYY-MM-DD) or ISO date-time: {text!r}"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "`train` fits the risk model on the organisation's history (time split, model card) and "
        "makes it active; `score` scores every patient with the active model; `card` prints the "
        "active model's card; `drift` checks the latest scores against the training scores. "
        "--organisation CODE picks the organisation (needed when there are several)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["train", "score", "card", "drift"])
        parser.add_argument("--organisation", default="", help="an organisation's code")
        parser.add_argument("--seed", type=int, default=0, help="random seed of the training")
        parser.add_argument("--as-of", default="", help="train as of this date (default: now)")
        parser.add_argument("--horizon", type=int, default=30, help="days the outcome covers")

    def handle(self, *args: Any, action: str, organisation: str, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.risk import services

        orgs = Organisation.objects.order_by("pk")
        if organisation:
            orgs = orgs.filter(code=organisation)
            if not orgs.exists():
                raise CommandError(f"no organisation with code {organisation!r}")
        elif orgs.count() > 1:
            codes = ", ".join(orgs.values_list("code", flat=True))
            raise CommandError(f"several organisations ({codes}): give --organisation CODE")
        org = orgs.first()
        if org is None:
            raise CommandError("no organisation yet")
        try:
            out = self._run(services, org, action, opts)
        except services.RiskError as exc:
            raise CommandError(str(exc.message)) from exc
        self.stdout.write(json.dumps(out, ensure_ascii=False, indent=2, default=str))

    def _run(self, services: Any, org: Any, action: str, opts: dict[str, Any]) -> dict[str, Any]:
        if action == "train":
            model = services.train(
                org.pk, as_of=_as_of(opts["as_of"]), seed=opts["seed"], horizon_days=opts["horizon"]
            )
            card = model.card
            return {
                "organisation": org.code,
                "version": model.version,
                "data": card["data"],
                "auroc": card["metrics"]["auroc"],
                "brier": card["metrics"]["brier"],
                "thresholds": card["thresholds"],
            }
        if action == "score":
            count = services.score(org.pk)
            model = services.active_model(org.pk)
            return {"organisation": org.code, "version": model.version, "scored": count}
        if action == "drift":
            check = services.drift(org.pk)
            return {
                "organisation": org.code,
                "version": check.model.version,
                "day": check.day.isoformat(),
                "psi": check.psi,
                "warn": check.warn,
                "scored": check.scored,
            }
        model = services.active_model(org.pk)
        if model is None:
            raise CommandError("no risk model has been trained for this organisation yet")
        return {"organisation": org.code, "version": model.version, **model.card}

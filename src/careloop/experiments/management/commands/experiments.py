"""careloop experiments list|results CODE|stop CODE|evaluate [--organisation CODE]."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "`list` shows the experiments; `results CODE` prints an experiment's results per arm "
        "and its comparisons with the control arm as JSON; `stop CODE [--reason TEXT]` stops a "
        "running experiment and gives its future reminders back; `evaluate` applies the stop "
        "rules to every running experiment now. --organisation CODE picks the organisation "
        "(needed when there are several)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["list", "results", "stop", "evaluate"])
        parser.add_argument("code", nargs="?", default="", help="the experiment's code")
        parser.add_argument("--organisation", default="", help="an organisation's code")
        parser.add_argument("--reason", default="", help="why it is stopped (stop)")

    def _orgs(self, code: str) -> list[Any]:
        from careloop.accounts.models import Organisation

        orgs = Organisation.objects.order_by("pk")
        if code:
            orgs = orgs.filter(code=code)
            if not orgs.exists():
                raise CommandError(f"no organisation with code {code!r}")
        return list(orgs)

    def _experiment(self, code: str, organisation: str) -> Any:
        from careloop.experiments.models import Experiment

        if not code:
            raise CommandError("give the experiment's code")
        found = Experiment.objects.filter(code=code)
        if organisation:
            found = found.filter(organisation__code=organisation)
        rows = list(found.select_related("organisation"))
        if not rows:
            raise CommandError(f"no experiment with code {code!r}")
        if len(rows) > 1:
            raise CommandError(f"several organisations have an experiment {code!r}: --organisation")
        return rows[0]

    def handle(
        self, *args: Any, action: str, code: str, organisation: str, reason: str, **opts: Any
    ) -> None:
        from careloop.experiments import analysis, services
        from careloop.experiments.models import Experiment, Status
        from careloop.kit.errors import CareLoopError

        if action == "list":
            orgs = self._orgs(organisation)
            rows = Experiment.objects.filter(organisation__in=orgs).select_related("organisation")
            counts = services.counts_by_experiment([e.pk for e in rows])
            for e in rows.order_by("organisation_id", "code"):
                started = e.started_at.isoformat(timespec="minutes") if e.started_at else "-"
                self.stdout.write(
                    f"{e.organisation.code}\t{e.code}\t{e.status}\t{e.factor}\t"
                    f"{','.join(e.kinds)}\t{counts.get(e.pk, 0)} patients\tstarted {started}"
                )
            return
        if action == "results":
            exp = self._experiment(code, organisation)
            self.stdout.write(json.dumps(analysis.results(exp), ensure_ascii=False, indent=2))
            return
        if action == "stop":
            exp = self._experiment(code, organisation)
            try:
                stopped = services.stop(None, exp.pk, reason, organisation_id=exp.organisation_id)
            except CareLoopError as exc:
                raise CommandError(str(exc.message)) from exc
            self.stdout.write(f"{stopped.code}: stopped")
            return
        orgs = self._orgs(organisation)
        running = Experiment.objects.filter(organisation__in=orgs, status=Status.RUNNING)
        for exp in running.order_by("pk"):
            look = analysis.evaluate(exp)
            if look is None:
                self.stdout.write(f"{exp.code}: no analysis due")
            else:
                self.stdout.write(
                    f"{exp.code}: look {look.number}, information {look.information:.2f}, "
                    f"{look.decision} — {look.reason}"
                )

"""careloop rules: list the alert rules, check a rule file, recompute alerts over the stored
history, run the sweeps once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Command(BaseCommand):
    help = (
        "Alert rule tools. `list` shows the rules (the rule file's, or an organisation's with "
        "its admin-edited ones); `check FILE` compiles a rule file and reports the first "
        "problem; `recompute` replays every patient's stored history through the rules and "
        "compares the result with the alerts streaming raised (exit status 1 when they differ; "
        "`--apply` raises the missing ones instead); `sweep` runs the absence, missed-dose and "
        "escalation sweeps once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["list", "check", "recompute", "sweep"])
        parser.add_argument("file", nargs="?", default=None, help="rule file (for check)")
        parser.add_argument(
            "--organisation", default="", help="organisation code (default: every one)"
        )
        parser.add_argument(
            "--apply", action="store_true", help="recompute: raise the alerts that are missing"
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, action: str, file: str | None, **opts: Any) -> None:
        if action == "check":
            self.check_file(file)
        elif action == "list":
            self.list_rules(opts["organisation"], as_json=opts["json"])
        elif action == "recompute":
            self.run_recompute(opts["organisation"], apply=opts["apply"], as_json=opts["json"])
        else:
            self.run_sweeps()

    def _organisations(self, code: str) -> list[Any]:
        from careloop.accounts.models import Organisation

        orgs = Organisation.objects.order_by("code")
        if code:
            orgs = orgs.filter(code=code)
            if not orgs.exists():
                raise CommandError(f"no organisation with code {code!r}")
        return list(orgs)

    def check_file(self, file: str | None) -> None:
        from careloop.rules import RuleError, RuleSet, load_file

        if not file:
            raise CommandError("name the rule file: careloop rules check FILE")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            ruleset = RuleSet.compile(load_file(path))
        except RuleError as exc:
            raise CommandError(f"{file}: {exc}") from None
        rules = ruleset.rules()
        enabled = sum(1 for r in rules if r.enabled)
        self.stdout.write(f"{file}: {len(rules)} rules, {enabled} enabled, all valid")

    def list_rules(self, code: str, *, as_json: bool) -> None:
        from careloop.alerts import evaluation
        from careloop.alerts import models as am
        from careloop.rules import RuleSet

        if code:
            (org,) = self._organisations(code)
            ruleset = evaluation.ruleset_for(org.pk)
            edited = set(
                am.RuleDefinition.objects.filter(organisation=org).values_list("code", flat=True)
            )
        else:
            ruleset = RuleSet.compile(evaluation.file_rules())
            edited = set()
        rows = [
            {
                "code": r.code,
                "kind": r.kind,
                "event": ",".join(r.events),
                "severity": r.severity,
                "priority": r.priority,
                "route": r.route,
                "sla": _duration(r.sla),
                "enabled": r.enabled,
                "source": "admin" if r.code in edited else "file",
            }
            for r in sorted(ruleset.rules(), key=lambda r: r.code)
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for row in rows:
            self.stdout.write(
                f"{row['code']:<22} {row['kind']:<16} {row['event']:<13} {row['severity']:<9} "
                f"{row['priority']:<8} {row['route']:<16} {row['sla']:>5}  "
                f"{'on ' if row['enabled'] else 'off'} {row['source']}"
            )

    def run_recompute(self, code: str, *, apply: bool, as_json: bool) -> None:
        from careloop.alerts import evaluation

        reports = {}
        for org in self._organisations(code):
            report = evaluation.recompute(org.pk, apply_missing=apply)
            reports[org.code] = report
            if as_json:
                continue
            self.stdout.write(
                f"{org.code}: patients {report['patients']}, fires {report['fires']}, "
                f"stored {report['stored']}, missing {len(report['missing'])}, "
                f"extra {len(report['extra'])}, identical {str(report['identical']).lower()}"
            )
            for key in report["missing"][:20]:
                self.stdout.write(f"  missing {key}" + ("  (raised now)" if apply else ""))
            for key in report["extra"][:20]:
                self.stdout.write(f"  extra   {key}")
        if as_json:
            self.stdout.write(json.dumps(reports, ensure_ascii=False, indent=2))
        if not apply and not all(r["identical"] for r in reports.values()):
            raise CommandError(
                "streaming and recompute differ (run with --apply to raise the missing alerts)",
                returncode=1,
            )

    def run_sweeps(self) -> None:
        from careloop.alerts import sweeps

        absent = sweeps.absence()
        missed = sweeps.missed_doses()
        moved = sweeps.escalate()
        self.stdout.write(
            f"absence alerts raised: {absent}; missed doses found: {missed}; "
            f"alerts escalated: {moved}"
        )

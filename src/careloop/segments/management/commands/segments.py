"""careloop segments: load the shipped segments, recompute memberships, list segments."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Patient segments. `load` loads the shipped segment files and their add-on plan "
        "templates; `recompute [--organisation CODE] [--force]` puts patients into the segments "
        "whose rule holds today (once per organisation-local day unless --force); `list` shows "
        "each organisation's segments with their current member counts."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["load", "recompute", "list"])
        parser.add_argument("--organisation", default="", help="organisation code (default: all)")
        parser.add_argument("--force", action="store_true", help="recompute again today")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.kit.errors import ValidationFailed
        from careloop.segments import models as sm
        from careloop.segments import services, strategies

        if action == "load":
            try:
                plans = strategies.load_addons()
                results = services.load_defaults()
            except ValidationFailed as exc:
                lines = [str(exc.message)] + [
                    f"  {k}: {'; '.join(str(m) for m in v)}" for k, v in exc.details.items()
                ]
                raise CommandError("\n".join(lines)) from exc
            for code, outcome in plans:
                self.stdout.write(f"plan    {code:<28} {outcome}")
            for code, outcome in results:
                self.stdout.write(f"segment {code:<28} {outcome}")
            return
        orgs = Organisation.objects.order_by("code")
        if opts["organisation"]:
            orgs = orgs.filter(code=opts["organisation"])
            if not orgs.exists():
                raise CommandError(f"no organisation with the code {opts['organisation']!r}")
        if action == "recompute":
            out = []
            for org in orgs:
                run = services.recompute(org.pk, force=opts["force"])
                out.append(
                    {
                        "organisation": org.code,
                        "day": run.day.isoformat(),
                        "patients": run.patients,
                        "entered": run.entered,
                        "left": run.left,
                        "counts": run.counts,
                    }
                )
            self._print(out, opts["json"])
            return
        out = []
        for org in orgs:
            for segment in services.segments_for(org.pk, active_only=False):
                members = sm.Membership.objects.filter(
                    organisation_id=org.pk, segment=segment, left_at__isnull=True
                ).count()
                out.append(
                    {
                        "organisation": org.code,
                        "code": segment.code,
                        "name": segment.name,
                        "shared": segment.organisation_id is None,
                        "active": segment.active,
                        "version": segment.version,
                        "members": members,
                        "rule": segment.rule,
                    }
                )
        self._print(out, opts["json"])

    def _print(self, rows: list[dict[str, Any]], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for row in rows:
            self.stdout.write("  ".join(f"{k}={v}" for k, v in row.items()))

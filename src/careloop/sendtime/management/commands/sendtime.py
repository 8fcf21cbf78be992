"""careloop sendtime learn|plan|report: run the send-time learner by hand, or print its report."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "`plan` routes the reminders due in the next 36 hours (learned hour and channel, or the "
        "control group's planned time), `learn` folds final outcomes into the counts, `report` "
        "prints the lift of the learned times over the control group as JSON (from --since, "
        "default 12 weeks ago, to today). Without --organisation: every organisation with "
        "send-time learning enabled (report: every organisation with outcomes)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["learn", "plan", "report"])
        parser.add_argument("--organisation", default="", help="an organisation's code")
        parser.add_argument("--since", default="", help="report from this date (YYYY-MM-DD)")

    def handle(self, *args: Any, action: str, organisation: str, since: str, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.careplans import domain
        from careloop.kit.clock import utc_now
        from careloop.sendtime import models as m
        from careloop.sendtime import services

        if organisation:
            orgs = list(Organisation.objects.filter(code=organisation))
            if not orgs:
                raise CommandError(f"no organisation with code {organisation!r}")
        elif action == "report":
            ids = set(m.Outcome.objects.values_list("organisation_id", flat=True).distinct())
            orgs = list(Organisation.objects.filter(pk__in=ids).order_by("pk"))
        else:
            orgs = list(
                Organisation.objects.filter(pk__in=services.enabled_organisations()).order_by("pk")
            )
        start: date | None = None
        if since:
            try:
                start = date.fromisoformat(since)
            except ValueError as exc:
                raise CommandError(f"--since {since!r} is not a date YYYY-MM-DD") from exc
        now = utc_now()
        for org in orgs:
            if action == "plan":
                stats = services.plan_batch(org.pk, now=now)
                self.stdout.write(
                    f"{org.code}: {stats.routed} routed ({stats.moved} moved, {stats.kept} kept, "
                    f"{stats.control} control), {stats.skipped} without a slot or channel, "
                    f"{stats.lost} changed meanwhile"
                )
            elif action == "learn":
                self.stdout.write(f"{org.code}: {services.learn(org.pk, now=now)} outcomes folded")
            else:
                today = domain.local_of(now, domain.zone(org.time_zone)).date()
                first = start or today - timedelta(weeks=12)
                result = services.report(org.pk, first, today + timedelta(days=1))
                self.stdout.write(json.dumps({"organisation": org.code, **result}, indent=2))

"""careloop report monthly: make a department's monthly report (PDF) and optionally e-mail it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "`monthly --department CODE [--month YYYY-MM] [--organisation CODE] [--out FILE.pdf]"
        " [--language zh-hans|en] [--send]`: write the department's report of the month (default:"
        " the last complete month in the organisation's time zone) as a PDF; with --send, also"
        " e-mail it now to the department's recipients who have not had it yet (through the"
        " organisation's e-mail channel). Without --out or --send the PDF is written to"
        " careloop-<department>-<month>.pdf in the current directory."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["monthly"])
        parser.add_argument("--department", required=True, help="department code")
        parser.add_argument("--month", default="", help="YYYY-MM (default: last month)")
        parser.add_argument("--organisation", default="", help="organisation code")
        parser.add_argument("--out", default="", help="where to write the PDF")
        parser.add_argument("--language", default="", choices=["", "zh-hans", "en"])
        parser.add_argument("--send", action="store_true", help="e-mail it to the recipients")

    def handle(self, *args: Any, **opts: Any) -> None:
        from careloop.accounts.models import Department
        from careloop.analytics.reports import pdf, selectors, services

        departments = Department.objects.filter(code=opts["department"]).select_related(
            "organisation"
        )
        if opts["organisation"]:
            departments = departments.filter(organisation__code=opts["organisation"])
        found = list(departments[:2])
        if not found:
            raise CommandError(f"no department with the code {opts['department']!r}")
        if len(found) > 1:
            raise CommandError(
                f"several organisations have a department {opts['department']!r}:"
                " name one with --organisation"
            )
        dept = found[0]
        if opts["month"]:
            month = selectors.parse_month(opts["month"])
            if month is None:
                raise CommandError(f"--month must be YYYY-MM, not {opts['month']!r}")
            if not selectors.reportable(dept, month):
                raise CommandError(f"{opts['month']} has not begun yet")
        else:
            month = selectors.last_month(dept)
        schedule = selectors.schedule_of(dept)
        language = opts["language"] or (schedule.language if schedule else "zh-hans")
        if opts["out"] or not opts["send"]:
            data = services.generate(dept, month, language=language, purpose="cli")
            out = Path(opts["out"] or pdf.filename(dept, month))
            out.write_bytes(data)
            self.stdout.write(f"wrote {out} ({len(data)} bytes)")
        if opts["send"]:
            added, sent = services.send_month(dept, month)
            self.stdout.write(f"report e-mails queued: {added}, sent now: {sent}")
            failed = services.failed_runs(dept, month)
            for run in failed:
                self.stderr.write(f"not sent to {run.recipient}: {run.status} {run.error}")

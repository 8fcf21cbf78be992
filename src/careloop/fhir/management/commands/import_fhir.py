"""careloop import fhir PATH: import FHIR Bundles or NDJSON files (or a folder of them)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError


class ProgressBar:
    """One line on stderr: files and resources done out of the total, and the rate."""

    WIDTH = 24

    def __init__(self, stream: TextIO, every: float = 0.1) -> None:
        self.stream = stream
        self.every = every
        self.shown = 0.0
        self.used = False

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        done = progress.resources_done >= progress.resources_total
        if now - self.shown < self.every and not done:
            return
        self.shown = now
        share = progress.resources_done / max(progress.resources_total, 1)
        filled = int(self.WIDTH * share)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {share:4.0%}  files {progress.files_done}/{progress.files_total}  "
            f"resources {progress.resources_done}/{progress.resources_total}  "
            f"{progress.rate:5.0f}/s  {progress.current[:40]:<40}"
        )
        self.stream.flush()
        self.used = True

    def end(self) -> None:
        if self.used:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = (
        "Import FHIR R4 resources from a transaction/batch Bundle (JSON), an NDJSON file, or a "
        "folder of them, into an organisation through the FHIR facade's mappers and the same "
        "services as the staff pages. Prints a report per file (per resource type: in the "
        "file, imported, updated, already present, skipped, refused). A file already imported "
        "(same path and content) is skipped unless --again; an interrupted import resumes "
        "without duplicates. Exits with status 1 when a file could not be imported."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        return super().create_parser(prog_name, "import fhir", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="a Bundle .json file, an .ndjson file, or a folder")
        parser.add_argument(
            "--organisation", default="", help="the organisation's code (needed if several)"
        )
        parser.add_argument(
            "--department", default="", help="department code new patients join (default: first)"
        )
        parser.add_argument(
            "--source",
            default="",
            help="name of the system the resource ids come from (default: the file or folder "
            "name); urn:uuid entries need none",
        )
        parser.add_argument("--again", action="store_true", help="import finished files again")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--progress", action="store_true", help="show progress even if not a tty"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress, summary only")

    def handle(self, *args: Any, path: str, **opts: Any) -> None:
        from careloop.accounts.models import Department
        from careloop.fhir import importer as bulk
        from careloop.hl7v2.services import organisation_for

        try:
            org = organisation_for(opts["organisation"] or None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        department = None
        if opts["department"]:
            department = Department.objects.filter(
                organisation=org, code=opts["department"]
            ).first()
            if department is None:
                raise CommandError(f"no department {opts['department']!r} in {org.code}")
        show = not opts["quiet"] and (opts["progress"] or sys.stderr.isatty())
        bar = ProgressBar(sys.stderr) if show else None
        importer = bulk.Importer(
            org, department=department, source=opts["source"], again=opts["again"],
            on_progress=bar,
        )  # fmt: skip
        started = time.monotonic()
        try:
            reports = importer.run(Path(path))
        except bulk.Unreadable as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.end()
        seconds = time.monotonic() - started
        worked = sum(r.entries for r in reports if r.status != "already-imported")
        summary = {
            "organisation": org.code,
            "files": [r.as_dict() for r in reports],
            "entries": sum(r.entries for r in reports),
            **{name: sum(r.total(name) for r in reports) for name in bulk.OUTCOMES},
            "failed_files": sum(1 for r in reports if r.status == "failed"),
            "seconds": round(seconds, 2),
            "rate": round(worked / seconds, 1) if seconds > 0 else 0.0,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2))
        else:
            for r in reports:
                self._print(r, quiet=opts["quiet"])
            self.stdout.write(
                f"{len(reports)} files, {summary['entries']} entries: imported "
                f"{summary['imported']}, updated {summary['updated']}, already present "
                f"{summary['present']}, skipped {summary['skipped']}, refused "
                f"{summary['refused']}; {summary['failed_files']} files failed; "
                f"{summary['rate']} resources/s"
            )
        if summary["failed_files"]:
            sys.exit(1)

    def _print(self, report: Any, *, quiet: bool) -> None:
        name = Path(report.path).name
        if report.status == "already-imported":
            self.stdout.write(f"{name}: already imported ({report.entries} entries), skipped")
            return
        if report.status == "failed" and not report.types:
            self.stdout.write(f"{name}: FAILED: {report.error}")
            return
        head = f"{name}: {report.entries} entries" + (
            f" — FAILED: {report.error}" if report.status == "failed" else ""
        )
        self.stdout.write(head)
        if quiet:
            return
        for rtype, t in sorted(report.types.items()):
            self.stdout.write(
                f"  {rtype:<22} {t.total:5d}  imported {t.imported}  updated {t.updated}  "
                f"present {t.present}  skipped {t.skipped}  refused {t.refused}"
            )
            for reason, n in t.skip_reasons.most_common():
                self.stdout.write(f"      skipped {n}: {reason}")
            for message, n in t.refusals.most_common():
                self.stdout.write(f"      refused {n}: {message}")

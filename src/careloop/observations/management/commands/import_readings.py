"""careloop import-readings: read a file of readings into one organisation, in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Read a file of readings (formats in docs/observations.md) into an organisation, as its "
        "own system would send them: every line is checked, good lines are stored, readings "
        "already stored are skipped, and the refused lines are printed with their reasons. "
        "Exits with status 1 when the file could not be read to the end."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        # Run as `careloop import-readings` (cli.COMMAND_MODULES maps the dash).
        return super().create_parser(prog_name, subcommand.replace("_", "-"), **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="the file (for Apple Health: export.xml or export.zip)")
        parser.add_argument(
            "--format",
            required=True,
            choices=["csv", "device_csv", "apple_health", "ndjson"],
            dest="fmt",
        )
        parser.add_argument("--organisation", required=True, help="the organisation's code")
        parser.add_argument(
            "--patient",
            default="",
            help="the patient of every reading (CareLoop id or record number); "
            "needed for Apple Health",
        )
        parser.add_argument("--quiet", action="store_true", help="print the summary only")

    def handle(self, *args: Any, path: str, fmt: str, organisation: str, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.observations import jobs
        from careloop.patients import models as pm

        org = Organisation.objects.filter(code=organisation).first()
        if org is None:
            raise CommandError(f"no organisation with the code {organisation!r}")
        patient_id: int | None = None
        ref = str(opts.get("patient") or "").strip().removeprefix("#")
        if ref:
            patients = pm.Patient.objects.filter(organisation=org, merged_into__isnull=True)
            found = (
                patients.filter(pk=int(ref))
                if ref.isdigit()
                else patients.filter(record_number=ref)
            )
            ids = list(found.values_list("pk", flat=True)[:2])
            if len(ids) != 1:
                raise CommandError(f"no single patient {ref!r} in {organisation}")
            patient_id = ids[0]
        elif fmt in jobs.ONE_PATIENT:
            raise CommandError("an Apple Health export is one person's: name them with --patient")
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file at {path}")
        size = file.stat().st_size
        quiet = bool(opts.get("quiet"))

        def progress(figures: dict[str, Any], position: int) -> None:
            if not quiet and sys.stderr.isatty():
                share = 100 * position // max(size, 1)
                sys.stderr.write(
                    f"\r{share:3d}%  stored {figures['accepted']}  "
                    f"already stored {figures['duplicates']}  refused {figures['rejected']}"
                )

        with file.open("rb") as stream:
            try:
                outcome = jobs.read_into(
                    stream, fmt, actor=None, organisation_id=org.pk, patient_id=patient_id,
                    origin="cli", on_progress=progress,
                )  # fmt: skip
            except Exception as exc:  # say why, keep what was stored
                raise CommandError(f"import stopped: {exc}") from exc
        if not quiet and sys.stderr.isatty():
            sys.stderr.write("\n")
        f = outcome.figures
        if not quiet:
            for p in f["problems"]:
                self.stdout.write(f"line {p['line']}: {p['field'] or '-'}: {p['reason']}")
        self.stdout.write(
            f"lines {f['lines']}  stored {f['accepted']}  already stored {f['duplicates']}  "
            f"refused {f['rejected']}  alerts {outcome.alerts}"
        )
        if outcome.error:
            self.stderr.write(f"stopped early: {outcome.error}")
            sys.exit(1)

"""careloop plans: load plan templates from files, list them, apply enrolment rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Care plan tools. `load [DIR]` loads plan template files (*.toml; default: the bundled "
        "ones) and the default enrolment rules; `list` shows templates and versions; "
        "`apply-rules` enrols every patient whose enrolment rule holds."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["load", "list", "apply-rules"])
        parser.add_argument("directory", nargs="?", default=None)

    def handle(self, *args: Any, action: str, directory: str | None, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.careplans import models as cm
        from careloop.careplans import services
        from careloop.kit.errors import ValidationFailed
        from careloop.patients.models import Patient

        if action == "load":
            path = Path(directory) if directory else None
            if path is not None and not path.is_dir():
                raise CommandError(f"{directory} is not a directory")
            try:
                results = services.load_templates(path)
            except ValidationFailed as exc:
                lines = [str(exc.message)] + [
                    f"  {k}: {'; '.join(v)}" for k, v in exc.details.items()
                ]
                raise CommandError("\n".join(lines)) from exc
            for code, outcome in results:
                self.stdout.write(f"{code:<20} {outcome}")
            rules = sum(services.install_default_rules(org) for org in Organisation.objects.all())
            self.stdout.write(f"enrolment rules created: {rules}")
        elif action == "list":
            for tpl in cm.PlanTemplate.objects.order_by("code"):
                scope = tpl.organisation.code if tpl.organisation else "shared"
                self.stdout.write(
                    f"{tpl.code:<20} v{tpl.version:<4} {scope:<10} "
                    f"{tpl.activities.count()} activities  {tpl.name}"
                )
        else:
            made = 0
            for patient in Patient.objects.filter(
                merged_into__isnull=True, deceased_on__isnull=True
            ):
                made += len(services.apply_rules(patient))
            self.stdout.write(f"enrolments created: {made}")

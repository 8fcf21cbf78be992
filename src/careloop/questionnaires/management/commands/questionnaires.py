"""careloop questionnaires: load the shipped questionnaires, import a FHIR file, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Questionnaire tools. `load [DIR]` loads the shipped FHIR Questionnaires (data/*.json, "
        "or those of DIR) as CareLoop's shared library; `list` shows every questionnaire."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["load", "list"])
        parser.add_argument("directory", nargs="?", default=None)

    def handle(self, *args: Any, action: str, directory: str | None, **opts: Any) -> None:
        from careloop.questionnaires import fhir, services
        from careloop.questionnaires import models as qm

        if action == "load":
            path = Path(directory) if directory else services.DATA_DIR
            if not path.is_dir():
                raise CommandError(f"{directory} is not a directory")
            try:
                loaded = services.load_shipped(path)
            except fhir.InvalidResource as exc:
                lines = [f"  {k}: {'; '.join(v)}" for k, v in exc.errors.items()]
                raise CommandError("invalid questionnaire:\n" + "\n".join(lines)) from exc
            for questionnaire, created in loaded:
                outcome = "created" if created else "updated"
                self.stdout.write(f"{questionnaire.url} v{questionnaire.version}: {outcome}")
            return
        for q in qm.Questionnaire.objects.select_related("organisation").order_by("url", "pk"):
            scope = q.organisation.code if q.organisation else "shared"
            self.stdout.write(
                f"{q.pk:<5} {q.status:<8} {scope:<10} {q.instrument or '-':<13} "
                f"{q.url} v{q.version}  {q.title}"
            )

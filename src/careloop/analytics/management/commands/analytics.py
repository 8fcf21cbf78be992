"""careloop analytics refresh: bring the monthly per-patient state up to date."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "`refresh` brings the analytics' monthly per-patient state up to date: the patients "
        "whose record changed since the last refresh (and every patient when the month "
        "changed), or, with --full, every patient again (needed after rows were deleted from "
        "the database by hand). --organisation CODE limits it to one organisation."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["refresh"])
        parser.add_argument("--full", action="store_true", help="rebuild every month of everyone")
        parser.add_argument("--organisation", default="", help="an organisation's code")

    def handle(self, *args: Any, action: str, full: bool, organisation: str, **opts: Any) -> None:
        from careloop.accounts.models import Organisation
        from careloop.analytics import state

        orgs = Organisation.objects.order_by("pk")
        if organisation:
            orgs = orgs.filter(code=organisation)
            if not orgs.exists():
                raise CommandError(f"no organisation with code {organisation!r}")
        for org in orgs:
            self.stdout.write(f"{org.code}: refreshing{' (full)' if full else ''}…")

            def progress(done: int, total: int, code: str = org.code) -> None:
                self.stdout.write(f"  {code}: {done}/{total} patients")

            result = state.refresh(org.pk, full, progress=progress)
            self.stdout.write(
                f"{org.code}: {'full rebuild' if result.full else 'incremental'}, "
                f"{result.patients} patients, {result.rows} monthly rows in all, "
                f"{result.seconds:.1f} s"
            )

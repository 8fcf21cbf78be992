"""careloop appointments: open the coming weeks' clinic slots; mark missed appointments."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Appointment upkeep, safe to run at any time and as often as wanted (e.g. from cron). "
        "`slots` opens every active clinic schedule's slots for the coming weeks "
        "(CARELOOP_APPOINTMENT_SLOT_DAYS); `sweep` marks appointments still booked after their "
        "day as missed, which puts them on the overdue list; `all` does both."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["slots", "sweep", "all"])

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        from careloop.appointments import services

        if action in ("slots", "all"):
            self.stdout.write(f"slots opened: {services.top_up_slots()}")
        if action in ("sweep", "all"):
            self.stdout.write(f"appointments marked missed: {services.sweep_no_shows()}")

"""careloop portal invite --patient ID: print a single-use sign-in link for a patient."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from careloop.kit.errors import NotFound
from careloop.portal import services


class Command(BaseCommand):
    help = "Patient portal tools: `careloop portal invite --patient ID` prints a sign-in link."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        invite = sub.add_parser("invite", help="print a single-use sign-in link (valid 72 h)")
        invite.add_argument("--patient", type=int, required=True, help="the patient's id")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "invite":
            try:
                invitation, token = services.create_invitation_cli(options["patient"])
            except NotFound:
                raise CommandError(f"no active patient with id {options['patient']}") from None
            self.stdout.write(services.invitation_url(token))
            self.stderr.write(f"single use, valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC")

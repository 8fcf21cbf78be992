"""careloop apitoken: print a new bearer token for a staff account."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from careloop.accounts import services
from careloop.accounts.models import Staff
from careloop.accounts.roles import Action, allowed


class Command(BaseCommand):
    help = "Print a new bearer token for the JSON and FHIR APIs (shown once, stored hashed)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--label", default="", help="what the token is for")
        parser.add_argument(
            "--revoke-all", action="store_true", help="revoke the account's existing tokens instead"
        )

    def handle(self, *args: Any, username: str, label: str, revoke_all: bool, **opts: Any) -> None:
        staff = Staff.objects.filter(username=username, is_active=True).first()
        if staff is None:
            raise CommandError(f"no active account named {username!r}")
        if revoke_all:
            self.stdout.write(f"revoked {services.revoke_tokens(staff)} token(s)")
            return
        if not (allowed(staff.role, Action.API_TOKEN) or allowed(staff.role, Action.AUDIT_VIEW)):
            raise CommandError(f"the role {staff.role!r} has no use for API tokens")
        self.stdout.write(services.issue_token(staff, label))

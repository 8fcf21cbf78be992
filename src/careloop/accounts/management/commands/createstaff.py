"""careloop createstaff: add a staff account, or reset one's password."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from careloop.accounts import services
from careloop.accounts.models import Department, Organisation, Staff
from careloop.accounts.roles import Role


class Command(BaseCommand):
    help = "Create a staff account (prints a random password unless --password is given)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--org", help="organisation code (required for new accounts)")
        parser.add_argument("--role", choices=[r.value for r in Role], default=Role.NURSE.value)
        parser.add_argument(
            "--department", action="append", default=[], help="department code; repeat for several"
        )
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument("--password", help="password (default: a random one, printed)")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="set a new password on an existing account",
        )

    def handle(
        self,
        *args: Any,
        username: str,
        org: str | None,
        role: str,
        department: list[str],
        name: str,
        password: str | None,
        reset_password: bool,
        **opts: Any,
    ) -> None:
        password = password or secrets.token_urlsafe(12)
        existing = Staff.objects.filter(username=username).first()
        if reset_password:
            if existing is None:
                raise CommandError(f"no account named {username!r}")
            self._validate(password, existing)
            existing.set_password(password)
            existing.save(update_fields=["password"])
            self.stdout.write(f"{username}  {password}")
            return
        if existing is not None:
            raise CommandError(f"an account named {username!r} exists; use --reset-password")
        organisation = Organisation.objects.filter(code=org).first() if org else None
        if organisation is None:
            raise CommandError("--org must name an existing organisation code")
        depts = []
        for code in department:
            dept = Department.objects.filter(organisation=organisation, code=code).first()
            if dept is None:
                raise CommandError(f"no department {code!r} in {organisation.code}")
            depts.append(dept.pk)
        self._validate(password, Staff(username=username))
        services.create_staff(
            organisation_id=organisation.pk,
            username=username,
            password=password,
            role=role,
            department_ids=depts,
            display_name=name,
        )
        self.stdout.write(f"{username}  {password}")

    @staticmethod
    def _validate(password: str, user: Staff) -> None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc

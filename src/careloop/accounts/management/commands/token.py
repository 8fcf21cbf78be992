"""careloop token issue|list|revoke: scoped bearer tokens for apps and systems."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from careloop.accounts import services
from careloop.accounts.actor import Actor
from careloop.accounts.models import ApiToken, Staff
from careloop.accounts.roles import Action, allowed
from careloop.kit.clock import utc_now
from careloop.kit.errors import CareLoopError

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([mhdw])\s*", text or "")
    if match is None:
        raise CommandError(f"--expires-in {text!r}: expected a number and m, h, d or w (e.g. 30d)")
    value = int(match.group(1))
    if value <= 0:
        raise CommandError("--expires-in must be more than zero")
    return timedelta(**{_UNITS[match.group(2)]: value})


class Command(BaseCommand):
    help = "Issue, list and revoke API bearer tokens with SMART v2 scopes."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        issue = sub.add_parser("issue", help="print a new token once (stored hashed)")
        issue.add_argument("--user", required=True, help="the staff account the token acts as")
        issue.add_argument(
            "--scopes",
            default="",
            help="space-separated SMART scopes, e.g. 'patient/Observation.rs user/Patient.rs'; "
            "empty: everything the user's role allows",
        )
        issue.add_argument("--patient", type=int, help="the patient patient/ scopes are bound to")
        issue.add_argument("--expires-in", default="", help="lifetime, e.g. 30d, 12h, 2w")
        issue.add_argument("--label", default="", help="what the token is for")
        listing = sub.add_parser("list", help="list a user's tokens (never their values)")
        listing.add_argument("--user", required=True)
        revoke = sub.add_parser("revoke", help="revoke one token by its number")
        revoke.add_argument("token_id", type=int)

    def handle(self, *args: Any, verb: str, **opts: Any) -> None:
        if verb == "issue":
            self._issue(**opts)
        elif verb == "list":
            self._list(opts["user"])
        else:
            self._revoke(opts["token_id"])

    def _staff(self, username: str) -> Staff:
        staff = Staff.objects.filter(username=username, is_active=True).first()
        if staff is None:
            raise CommandError(f"no active account named {username!r}")
        return staff

    def _issue(
        self, *, user: str, scopes: str, patient: int | None, expires_in: str, label: str, **_: Any
    ) -> None:
        staff = self._staff(user)
        if not (allowed(staff.role, Action.API_TOKEN) or allowed(staff.role, Action.AUDIT_VIEW)):
            raise CommandError(f"the role {staff.role!r} has no use for API tokens")
        expires_at = utc_now() + parse_duration(expires_in) if expires_in else None
        try:
            raw = services.issue_token(
                staff,
                label,
                scopes=scopes,
                patient_id=patient,
                expires_at=expires_at,
                actor=Actor(user=staff, source="cli", channel="cli"),
            )
        except CareLoopError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(str(m) for m in messages)}"
                for field, messages in exc.as_dict()["details"].items()
            )
            raise CommandError(problems or str(exc)) from exc
        self.stdout.write(raw)

    def _list(self, username: str) -> None:
        staff = self._staff(username)
        now = utc_now()
        for token in ApiToken.objects.filter(staff=staff).order_by("pk"):
            state = "active"
            if token.revoked_at is not None:
                state = "revoked"
            elif token.expires_at is not None and token.expires_at <= now:
                state = "expired"
            self.stdout.write(
                f"{token.pk}\t{token.prefix}…\t{state}\t{token.scopes or '(role)'}\t"
                f"patient={token.patient_id or '-'}\texpires={token.expires_at or '-'}\t"
                f"last used={token.last_used_at or '-'}\t{token.label}"
            )

    def _revoke(self, token_id: int) -> None:
        token = ApiToken.objects.select_related("staff").filter(pk=token_id).first()
        if token is None:
            raise CommandError(f"no token {token_id}")
        services.revoke_token(Actor(user=token.staff, source="cli", channel="cli"), token_id)
        self.stdout.write(f"revoked token {token_id}")

"""careloop demo: load the synthetic demo organisation and print how to sign in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from careloop.accounts.models import Organisation

LOGINS_FILE = "demo-logins.txt"


def _portal_lines(example: dict[str, str], host: str) -> list[str]:
    """A single-use portal sign-in link for the example patient."""
    from django.urls import reverse

    from careloop.portal import services as portal

    _invitation, token = portal.create_invitation_cli(int(example["patient_id"]))
    link = host.rstrip("/") + reverse("portal:invitation", args=[token])
    return [
        "",
        f"Patient portal: {link}",
        f"  (single-use sign-in link for {example['name']}, valid 72 hours; later sign in at "
        f"{host.rstrip('/')}/portal/sign-in with the phone ending {example['tail']}: "
        "the SMS code is in var/fake-sms.jsonl)",
    ]


class Command(BaseCommand):
    help = (
        "Build a reproducible demo hospital (cardiology 心内科, endocrinology 内分泌科) with "
        "staff of every role and synthetic patients. Passwords are random and printed once; "
        f"they are also kept in ./var/{LOGINS_FILE} (readable by you only)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--patients", type=int, default=200, help="how many patients (default 200)"
        )
        parser.add_argument(
            "--seed", type=int, default=7, help="random seed (same seed, same data)"
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing (but print the logins) if an organisation exists",
        )
        parser.add_argument("--host", default="http://127.0.0.1:8000", help="URL to print")

    def handle(
        self, *args: Any, patients: int, seed: int, if_empty: bool, host: str, **opts: Any
    ) -> None:
        path = Path(settings.VAR_DIR) / LOGINS_FILE
        if patients < 0 or patients > 1_000_000:
            raise CommandError("--patients must be between 0 and 1,000,000")
        if Organisation.objects.exists():
            if not if_empty:
                raise CommandError(
                    "the database already holds an organisation; demo data goes "
                    "into an empty database only"
                )
            self.stdout.write(
                path.read_text()
                if path.exists()
                else "The database already has data; the demo logins are not on file."
            )
            return
        from careloop.demo.build import build

        self.stdout.write(f"Building the demo hospital with {patients} patients (seed {seed})…")
        result = build(patients=patients, seed=seed)
        lines = [
            "",
            "CareLoop is set up with demo data.",
            f"  Staff pages:  {host}/",
            f"  API docs:     {host}/api/docs",
            f"  Admin:        {host}/admin/",
            "",
            "Demo logins (random passwords, generated for this database):",
        ]
        lines += [f"  {u:<22} {p:<16} {role}" for u, p, role in result.logins]
        lines += [
            "  (org_admin accounts set up an authenticator app, such as Microsoft or Google",
            "   Authenticator or FreeOTP, at their first sign-in: a second factor is required.)",
        ]
        if result.example:
            lines += [
                "",
                f"Try: sign in as nurse.cardiology and search {result.example['tail']} "
                f"(last 4 digits of {result.example['name']}'s phone), open the record and "
                "edit their allergy on the Overview tab (it is also in the red banner).",
            ]
            lines += _portal_lines(result.example, host)
        text = "\n".join(lines) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        self.stdout.write(text)

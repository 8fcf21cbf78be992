"""careloop audit verify: walk the hash chains and report any edited or missing row."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from careloop.audit import services


class Command(BaseCommand):
    help = "Audit trail tools. `verify` checks every chain; exit status 1 if tampering is found."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check the hash chains of the audit trail")
        verify.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        result = services.verify()
        if opts.get("json"):
            self.stdout.write(
                json.dumps(
                    {
                        "ok": result.ok,
                        "checked": result.checked,
                        "chains": result.chains,
                        "problems": result.problems,
                    }
                )
            )
        else:
            for problem in result.problems:
                self.stdout.write(f"TAMPERED  {problem}")
            self.stdout.write(
                f"checked {result.checked} events in {result.chains} chain(s): "
                + ("intact" if result.ok else f"{len(result.problems)} problem(s)")
            )
        if not result.ok:
            raise CommandError("the audit trail has been altered", returncode=1)

"""careloop import patients FILE: register a clinic's patient list in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Import a patient list (CSV or XLSX) as a staff member: columns are mapped from their "
        "headers (or --mapping), every row is checked, and good rows create or update patients "
        "through the same services as the staff pages. With --dry-run nothing is written. "
        "Exits with status 1 when a row was refused."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        return super().create_parser(prog_name, "import", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("what", choices=["patients"], help="what the file holds")
        parser.add_argument("path", help="the CSV or XLSX file")
        parser.add_argument(
            "--user", required=True, help="the staff member the rows are written as"
        )
        parser.add_argument(
            "--mapping",
            nargs="*",
            default=[],
            metavar="COLUMN=FIELD",
            help="a column (header text or 1-based number) and the field it holds; "
            "overrides the proposed mapping",
        )
        parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
        parser.add_argument("--department", default="", help="department code for rows naming none")
        parser.add_argument("--quiet", action="store_true", help="print the summary only")

    def handle(self, *args: Any, path: str, user: str, **opts: Any) -> None:
        from careloop.accounts.actor import Actor
        from careloop.accounts.models import Staff
        from careloop.kit.errors import CareLoopError
        from careloop.onboarding import reading, services

        staff = Staff.objects.filter(username=user, is_active=True).first()
        if staff is None:
            raise CommandError(f"no active staff member {user!r}")
        actor = Actor(user=staff, source="cli", channel="import")
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file {path}")
        try:
            services.require(actor)
            department = (
                services.department_by_code(actor, opts["department"])
                if opts["department"]
                else None
            )
            with file.open("rb") as stream:
                kind = reading.kind_of(file.name, stream.read(8))
                stream.seek(0)
                table = reading.open_table(stream, kind)
            mapping = reading.propose(table.headers)
            for item in opts["mapping"]:
                column, _, name = item.partition("=")
                index = _column(table.headers, column.strip())
                if index is None or name.strip() not in reading.FIELDS:
                    raise CommandError(f"bad --mapping {item!r}")
                mapping = {k: v for k, v in mapping.items() if v != name.strip()}
                mapping[str(index)] = name.strip()
            if "name" not in mapping.values() or "phone" not in mapping.values():
                raise CommandError("map at least the name and the phone columns (--mapping)")
            self.stdout.write(
                "mapping: "
                + ", ".join(f"{table.headers[int(k)]}={v}" for k, v in sorted(mapping.items()))
            )
            with file.open("rb") as stream:
                summary = services.process(
                    actor, stream, kind=kind, mapping=mapping, header_row=table.header_row,
                    department=department, dry_run=opts["dry_run"],
                )  # fmt: skip
        except CareLoopError as exc:
            raise CommandError(str(exc.message)) from None
        if not opts["quiet"]:
            for r in summary.results:
                reasons = "; ".join(m["reason"] for m in r["messages"])
                self.stdout.write(f"row {r['row']}: {r['outcome']} {r['name']} {reasons}".rstrip())
        verb = "would create" if opts["dry_run"] else "created"
        self.stdout.write(
            f"{summary.total} rows: {verb} {summary.created}, updated {summary.updated}, "
            f"unchanged {summary.unchanged}, refused {summary.rejected}"
        )
        if summary.rejected:
            raise SystemExit(1)


def _column(headers: list[str], column: str) -> int | None:
    if column.isdigit() and 1 <= int(column) <= len(headers):
        return int(column) - 1
    for i, header in enumerate(headers):
        if header.strip() == column:
            return i
    return None

"""The `careloop` command: CareLoop's own subcommands over Django's management layer."""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "serve": "start the web server (and, with --with-worker, the background worker)",
    "worker": "run the background worker: sends due reminders and runs queued jobs",
    "plans": "care plan tools: `careloop plans load|list|apply-rules`",
    "rules": "alert rule tools: `careloop rules list|check FILE|recompute|sweep`",
    "appointments": "appointment upkeep: `careloop appointments slots|sweep|all`",
    "migrate": "create or upgrade the database tables",
    "demo": "load a reproducible synthetic organisation with staff and patients",
    "createstaff": "create a staff account (or reset its password)",
    "apitoken": "print a new bearer token for the JSON/FHIR APIs",
    "token": "scoped API tokens: `careloop token issue --user U --scopes '...'|list|revoke`",
    "audit": "audit trail tools: `careloop audit verify`",
    "keys": "encryption key tools: `careloop keys rotate`",
    "bench": "run a named benchmark workload and write JSON results",
    "check": "check the configuration and the database for problems",
    "import-readings": "read a file of readings: `careloop import-readings PATH --format ...`",
    "import": "import a patient list: `careloop import patients FILE [--dry-run] ...`, "
    "or FHIR resources: `careloop import fhir PATH [--json] [--again]`",
    "portal": "patient portal tools: `careloop portal invite --patient ID`",
    "questionnaires": "load or list the shipped questionnaires: `careloop questionnaires load`",
    "hl7": "HL7 v2 interface: `careloop hl7 load FILE...|listen --port 2575|replay ID|--failed`",
    "analytics": "analytics state: `careloop analytics refresh [--full] [--organisation CODE]`",
    "report": "monthly department report (PDF): "
    "`careloop report monthly --department CODE --month YYYY-MM [--out FILE] [--send]`",
    "simulate": "run a synthetic population through the whole loop: "
    "`careloop simulate --patients N --days D --seed S`",
    "segments": "patient segments: `careloop segments load|recompute|list`",
    "risk": "risk model: `careloop risk train|score|card|drift`",
    "sendtime": "send-time learning: `careloop sendtime learn|plan|report [--organisation CODE]`",
    "experiments": "A/B experiments: `careloop experiments list|results ID|stop ID`",
}
# Commands whose name has a dash, and the Django command that runs them.
COMMAND_MODULES = {"import-readings": "import_readings", "import": "import_patients"}
# Subcommands run by a Django command of their own: (command, subcommand) → that command.
SUBCOMMAND_MODULES = {("import", "fhir"): "import_fhir"}


def usage() -> str:
    lines = ["usage: careloop <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "`careloop <command> --help` explains each one.",
        "`careloop django <command>` reaches any other Django management command.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if args[0] == "django":
        args = args[1:]
    elif args[0] not in COMMANDS:
        print(f"careloop: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    from django.core.management import execute_from_command_line

    if len(args) > 1 and (args[0], args[1]) in SUBCOMMAND_MODULES:
        args = [SUBCOMMAND_MODULES[(args[0], args[1])], *args[2:]]
    execute_from_command_line(["careloop", COMMAND_MODULES.get(args[0], args[0]), *args[1:]])


if __name__ == "__main__":
    main()

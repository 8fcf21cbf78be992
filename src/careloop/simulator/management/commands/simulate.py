"""careloop simulate: a synthetic population through the whole loop, hour by hour."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from careloop.kit.clock import utc_now
from careloop.simulator import engine, summary, world

CHILD_MARKER = "CARELOOP_SIMULATE_DB"


def default_db(seed: int) -> Path:
    return Path(settings.VAR_DIR) / "simulate" / f"sim-{seed}.sqlite3"


def empty_db(folder: Path) -> Path:
    """Where a freshly migrated, empty database of this code's migrations is kept: runs copy it
    instead of migrating again. Its name changes whenever any migration file does."""
    from django.apps import apps

    digest = hashlib.sha256()
    for config in sorted(apps.get_app_configs(), key=lambda c: c.label):
        folder_of = Path(config.path) / "migrations"
        for path in sorted(folder_of.glob("*.py")) if folder_of.is_dir() else []:
            digest.update(f"{config.label}/{path.name}".encode())
            digest.update(path.read_bytes())
    return folder / f"empty-{digest.hexdigest()[:16]}.sqlite3"


class Command(BaseCommand):
    help = (
        "Simulate N patients for D days through the real reminder, reading, visit, alert and "
        "learning services on a set clock. By default everything goes to a new SQLite file "
        "(<var>/simulate/sim-<seed>.sqlite3, replaced on every run); your database is only "
        "written with --into-current, which adds an organisation sim-<seed> to it. Prints a "
        "summary; --json FILE writes the full one."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--patients", type=int, default=200, help="how many (default 200)")
        parser.add_argument("--days", type=int, default=30, help="how long (default 30)")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--start", help="first simulated day, YYYY-MM-DD (default: DAYS before today)"
        )
        parser.add_argument("--db", help="the SQLite file to write (default under <var>)")
        parser.add_argument(
            "--into-current",
            action="store_true",
            help="write into the configured database instead (organisation sim-<seed>)",
        )
        parser.add_argument("--json", dest="json_path", help="write the summary as JSON here")
        parser.add_argument(
            "--control-share",
            type=float,
            default=0.2,
            help="share of patients whose reminders send-time learning leaves alone (0.2)",
        )
        parser.add_argument(
            "--nurse-capacity",
            type=int,
            default=25,
            help="calls a nurse makes in a day (default 25)",
        )
        parser.add_argument(
            "--without",
            action="append",
            choices=engine.OPTIONAL,
            default=[],
            help="leave out one of the learning parts (repeatable)",
        )
        parser.add_argument("--quiet", action="store_true", help="print only the summary")
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--template", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["patients"] < 1 or opts["days"] < 1:
            raise CommandError("--patients and --days must be at least 1")
        if not 0 <= opts["control_share"] <= 1:
            raise CommandError("--control-share must be between 0 and 1")
        if opts["nurse_capacity"] < 0:
            raise CommandError("--nurse-capacity cannot be negative")
        start = self._start(opts)
        json_path = Path(opts["json_path"]).expanduser().resolve() if opts["json_path"] else None
        if json_path is not None and not json_path.parent.is_dir():
            raise CommandError(f"cannot write {json_path}: {json_path.parent} is not a directory")
        if opts["into_current"]:
            if opts["db"]:
                raise CommandError("give either --db or --into-current, not both")
            self._run(opts, start, json_path)
            return
        if opts["child"]:
            self._child(opts, start, json_path)
            return
        self._parent(opts, start, json_path)

    def _start(self, opts: dict[str, Any]) -> date:
        if not opts["start"]:
            return utc_now().date() - timedelta(days=opts["days"])
        try:
            return date.fromisoformat(opts["start"])
        except ValueError:
            raise CommandError(f"--start is not a date (YYYY-MM-DD): {opts['start']!r}") from None

    def _parent(self, opts: dict[str, Any], start: date, json_path: Path | None) -> None:
        path = Path(opts["db"]).expanduser().resolve() if opts["db"] else default_db(opts["seed"])
        current = settings.DATABASES["default"]
        if current["ENGINE"].endswith("sqlite3") and Path(str(current["NAME"])).resolve() == path:
            raise CommandError(f"{path} is the configured database; choose another --db")
        if path.suffix not in (".sqlite3", ".sqlite", ".db"):
            raise CommandError("--db must name a .sqlite3 file (it is replaced on every run)")
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        template = empty_db(path.parent)
        if template.exists():
            shutil.copyfile(template, path)
        env = {k: v for k, v in os.environ.items() if k != "CARELOOP_TEST_DATABASE_NAME"}
        env.update(
            {
                "CARELOOP_DATABASE_URL": f"sqlite:///{path}",
                CHILD_MARKER: str(path),
                "DJANGO_SETTINGS_MODULE": "careloop.settings",
            }
        )
        cmd = [
            sys.executable,
            "-m",
            "careloop.cli",
            "simulate",
            "--child",
            "--template",
            str(template),
            "--patients",
            str(opts["patients"]),
            "--days",
            str(opts["days"]),
            "--seed",
            str(opts["seed"]),
            "--start",
            start.isoformat(),
            "--control-share",
            str(opts["control_share"]),
            "--nurse-capacity",
            str(opts["nurse_capacity"]),
        ]
        for app in opts["without"]:
            cmd += ["--without", app]
        if json_path is not None:
            cmd += ["--json", str(json_path)]
        if opts["quiet"]:
            cmd.append("--quiet")
        cmd.append(f"--verbosity={opts.get('verbosity', 1)}")
        self.stdout.flush()
        status = subprocess.call(cmd, env=env)  # noqa: S603 - our own interpreter and command
        if status != 0:
            raise CommandError(f"the simulation failed (exit status {status}); database: {path}")

    def _child(self, opts: dict[str, Any], start: date, json_path: Path | None) -> None:
        expected = os.environ.get(CHILD_MARKER)
        current = settings.DATABASES["default"]
        if (
            not expected
            or not current["ENGINE"].endswith("sqlite3")
            or Path(str(current["NAME"])).resolve() != Path(expected).resolve()
        ):
            raise CommandError("--child runs only on the simulation's own SQLite file")
        call_command("migrate", verbosity=0, interactive=False)
        from django.db import connection

        template = Path(opts["template"]) if opts.get("template") else None
        with connection.cursor() as cursor:
            if template is not None and not template.exists():
                partial = template.with_suffix(f".{os.getpid()}.tmp")
                cursor.execute("VACUUM INTO %s", [str(partial)])
                partial.replace(template)
                for stale in template.parent.glob("empty-*.sqlite3"):
                    if stale != template:  # made by earlier migrations
                        stale.unlink(missing_ok=True)
            cursor.execute("PRAGMA synchronous=OFF")  # a throwaway file: speed over durability
        self._run(opts, start, json_path, database=expected)

    def _run(
        self,
        opts: dict[str, Any],
        start: date,
        json_path: Path | None,
        database: str | None = None,
    ) -> None:
        options = engine.Options(
            patients=opts["patients"],
            days=opts["days"],
            seed=opts["seed"],
            start=start,
            control_share=opts["control_share"],
            nurse_capacity=opts["nurse_capacity"],
            without=frozenset(opts["without"]),
            into_current=bool(opts["into_current"]),
        )

        def emit(line: str) -> None:
            if not opts["quiet"]:
                self.stderr.write(line)

        quiet_logs = opts.get("verbosity", 1) < 2
        product_log = logging.getLogger("careloop")
        level = product_log.level
        if quiet_logs:  # the services' own daily info lines would drown the progress
            product_log.setLevel(logging.WARNING)
        try:
            result = engine.Simulation(options, emit).run()
        except world.SimulationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            product_log.setLevel(level)
        result["database"] = database or "configured"
        if json_path is not None:
            json_path.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        self.stdout.write(summary.text(result))
        if json_path is not None:
            self.stdout.write(f"summary: {json_path}")

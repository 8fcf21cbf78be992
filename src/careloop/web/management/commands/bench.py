"""careloop bench: run a named workload in a scratch database and write its results as JSON."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from careloop.bench import harness

SIZES = ("tiny", "small", "full")


class Command(BaseCommand):
    help = (
        "Run a benchmark workload with a fixed seed in a new, throwaway database (a temporary "
        "SQLite file, or careloop_bench_<pid> on CARELOOP_BENCH_POSTGRES_URL, default "
        f"{harness.DEFAULT_POSTGRES_URL}); your own database is never touched. The scratch "
        "database is dropped afterwards, also when the run fails. Results (rates, latency "
        "percentiles, same-run floors, ratios, a correctness verdict, machine and versions) go to "
        "--json PATH, or to standard output. Progress goes to standard error. "
        "Sizes: small (registry: 10k patients; reminders: 10k patients, 40k reminders a day, "
        "bursts of 5k), full (100k; 400k; 50k), tiny (for tests)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "workload", choices=sorted(harness.WORKLOADS), help="the workload to run"
        )
        parser.add_argument(
            "--size", choices=SIZES, default="small", help="how much work (default small)"
        )
        parser.add_argument(
            "--database",
            choices=harness.DATABASES,
            default="sqlite",
            help="which kind of scratch database to run on (default sqlite)",
        )
        parser.add_argument(
            "--json",
            dest="json_path",
            metavar="PATH",
            help="write the JSON results here (default: standard output)",
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)

    def handle(
        self,
        *args: Any,
        workload: str,
        size: str,
        database: str,
        json_path: str | None,
        seed: int,
        child: bool,
        **opts: Any,
    ) -> None:
        out = Path(json_path).expanduser().resolve() if json_path else None
        if out is not None and not out.parent.is_dir():
            raise CommandError(f"cannot write {out}: {out.parent} is not a directory")
        if size not in harness.workload_module(workload).SIZES:
            raise CommandError(f"workload {workload} has no size {size}")
        if child:
            if out is None:
                raise CommandError("--child needs --json")
            self._child(workload, size, database, seed, out)
            return
        self._parent(workload, size, database, seed, out)

    def _parent(self, workload: str, size: str, database: str, seed: int, out: Path | None) -> None:
        try:
            with harness.scratch_database(database, emit=harness.stderr_line) as env:
                target = out or Path(env["CARELOOP_VAR_DIR"]) / "result.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "careloop.cli",
                    "bench",
                    workload,
                    "--size",
                    size,
                    "--database",
                    database,
                    "--seed",
                    str(seed),
                    "--json",
                    str(target),
                    "--child",
                ]
                status = subprocess.call(cmd, env=env)  # noqa: S603 - our own interpreter
                if status != 0:
                    raise CommandError(
                        f"the benchmark run failed (exit status {status}); "
                        "its scratch database has been removed"
                    )
                result = json.loads(target.read_text())
        except (OSError, psycopg.Error, RuntimeError) as exc:  # e.g. PostgreSQL unreachable
            raise CommandError(f"scratch {database} database: {exc}") from exc
        if out is None:
            self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(summary(result) + f"\nresults: {out}")
        if not result["correct"]:
            failed = [name for name, c in result.get("checks", {}).items() if not c.get("ok")]
            raise CommandError(f"the work was not right: {', '.join(failed) or 'see checks'}")

    def _child(self, workload: str, size: str, database: str, seed: int, out: Path) -> None:
        from django.db import connection

        from careloop.accounts.models import Organisation

        if os.environ.get(harness.SCRATCH_MARKER) != "1":
            raise CommandError(
                "--child is internal: it runs only in the scratch database that "
                "`careloop bench` creates"
            )
        vendor = {"sqlite": "sqlite", "postgres": "postgresql"}[database]
        if connection.vendor != vendor:
            raise CommandError(f"expected a {database} database, found {connection.vendor}")
        call_command("migrate", verbosity=0, interactive=False)
        if Organisation.objects.exists():
            raise CommandError("the scratch database is not empty; refusing to run")
        result = harness.run(workload, size, database, seed, emit=harness.stderr_line)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        tmp.replace(out)


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"{result['workload']}/{result['size']} on {result['database']}: n={result['n']:,}, "
        f"{result['rate_per_s']:,.1f}/s, {result['seconds']:,.1f} s measured",
    ]
    if "search_p50_ms" in result:
        lines.append(f"  search p50 {result['search_p50_ms']} ms, p99 {result['search_p99_ms']} ms")
    if "dispatch_per_s" in result:
        lines.append(
            f"  dispatch {result['dispatch_per_s']:,.1f} messages/s, burst lateness p50 "
            f"{result['burst_p50_s']} s, p99 {result['burst_p99_s']} s; duplicates "
            f"{result['duplicates']}, losses {result['losses']}"
        )
    for name, target in result.get("targets", {}).items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"  target {name} ({target['target']}): {target['measured']} {verdict}")
    lines += [f"  floor {name}: {value:,.1f}/s" for name, value in result["floors"].items()]
    lines += [f"  ratio {name}: {value:.4f}" for name, value in result["ratios"].items()]
    lines.append(f"  correct: {result['correct']}")
    return "\n".join(lines)

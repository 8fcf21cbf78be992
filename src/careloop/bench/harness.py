"""What every workload shares: scratch databases, progress, percentiles, machine facts."""

from __future__ import annotations

import importlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# name -> module with `SIZES` and `run(size, seed, progress) -> dict`
WORKLOADS = {
    "registry": "careloop.bench.registry",
    "reminders": "careloop.bench.reminders",
    "ingest": "careloop.bench.ingest",
    "rules": "careloop.bench.rules",
    "worklist": "careloop.bench.worklist",
    "fhir": "careloop.bench.fhir",
    "export": "careloop.bench.export",
    "analytics": "careloop.bench.analytics",
}
DATABASES = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Set in the child's environment by the parent that created its scratch database.
SCRATCH_MARKER = "CARELOOP_BENCH_SCRATCH"
# Settings a scratch run must not inherit from the user's environment.
INHERITED_SETTINGS = (
    "DATABASE_URL",
    "SECRET_KEY",
    "FIELD_KEYS",
    "INDEX_KEY",
    "PRODUCTION",
    "TEST_DATABASE_NAME",
    "DEBUG",
)

REQUIRED_KEYS = (
    "workload",
    "size",
    "database",
    "n",
    "seconds",
    "rate_per_s",
    "floors",
    "ratios",
    "correct",
    "machine",
    "versions",
)

Emit = Callable[[str], None]


def stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def workload_module(name: str) -> Any:
    try:
        return importlib.import_module(WORKLOADS[name])
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None


class Progress:
    """Says how far a long phase has got, about every tenth of the way."""

    def __init__(self, label: str, total: int, emit: Emit | None, unit: str = "") -> None:
        self.label, self.total, self.emit, self.unit = label, total, emit, unit
        self.step = max(1, math.ceil(total / 10))
        self.started = time.perf_counter()

    def tick(self, done: int) -> None:
        if self.emit is None or (done % self.step and done != self.total):
            return
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        self.emit(
            f"  {self.label}: {done:,}/{self.total:,} {self.unit}"
            f" ({100 * done // max(1, self.total)}%), {rate:,.0f}/s, {elapsed:,.1f} s"
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, max and mean of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


# --- where it ran ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    memory = _memory_bytes()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": _load_average(),
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews the figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """Versions of CareLoop, Django, the database driver and the database server in use."""
    import django
    from django.db import connection

    out: dict[str, Any] = {"careloop": _version("careloop"), "django": django.get_version()}
    if connection.vendor == "sqlite":
        import sqlite3

        out["database_server"] = f"SQLite {sqlite3.sqlite_version}"
        out["driver"] = f"sqlite3 (Python {platform.python_version()})"
    else:
        with connection.cursor() as cur:
            cur.execute("SELECT version()")
            out["database_server"] = cur.fetchone()[0]
        out["driver"] = f"psycopg {_version('psycopg')}"
    out["database_settings"] = database_settings()
    return out


def database_settings() -> dict[str, str]:
    """Server settings that move the figures (durability, statistics upkeep, cache)."""
    from django.db import connection

    if connection.vendor == "sqlite":
        pragmas = ("journal_mode", "synchronous", "cache_size")
        with connection.cursor() as cur:
            return {name: str(cur.execute(f"PRAGMA {name}").fetchone()[0]) for name in pragmas}
    names = ("autovacuum", "synchronous_commit", "fsync", "shared_buffers", "work_mem")
    settings: dict[str, str] = {}
    with connection.cursor() as cur:
        for name in names:
            cur.execute(f"SHOW {name}")
            settings[name] = str(cur.fetchone()[0])
    return settings


def envelope(workload: str, size: str, database: str, seed: int) -> dict[str, Any]:
    return {
        "workload": workload,
        "size": size,
        "database": database,
        "seed": seed,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run(
    workload: str, size: str, database: str, seed: int, emit: Emit | None = stderr_line
) -> dict[str, Any]:
    """Run one workload against the configured database and return its result document."""
    module = workload_module(workload)
    if size not in module.SIZES:
        raise ValueError(f"unknown size {size!r} for {workload}; known: {', '.join(module.SIZES)}")
    result = envelope(workload, size, database, seed)
    load_before = _load_average()
    result.update(module.run(size=size, seed=seed, emit=emit))
    result["machine"] = {**machine(), "load_average_at_start": load_before}
    result["versions"] = versions()
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise RuntimeError(f"workload {workload} did not report {', '.join(missing)}")
    return result


# --- scratch databases ----------------------------------------------------------------------


def postgres_url_for(server_url: str, dbname: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + dbname))


def scratch_environment(base: dict[str, str], var_dir: Path, database_url: str) -> dict[str, str]:
    """The child's environment: the user's, minus their database and keys, plus the scratch."""
    env = {
        k: v
        for k, v in base.items()
        if k not in {f"CARELOOP_{name}" for name in INHERITED_SETTINGS}
    }
    env.update(
        {
            "CARELOOP_VAR_DIR": str(var_dir),
            "CARELOOP_DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "careloop.settings",
            SCRATCH_MARKER: "1",
        }
    )
    return env


@contextmanager
def scratch_database(kind: str, emit: Emit | None = None) -> Iterator[dict[str, str]]:
    """Make a new, empty database (and var dir); yield the environment to reach it; drop it.

    SQLite: a file in a new temporary directory. PostgreSQL: `careloop_bench_<pid>` on the
    server named by CARELOOP_BENCH_POSTGRES_URL. Both go away afterwards, also on failure.
    """
    if kind not in DATABASES:
        raise ValueError(f"unknown database {kind!r}; choose {' or '.join(DATABASES)}")
    var_dir = Path(tempfile.mkdtemp(prefix="careloop-bench-"))
    try:
        if kind == "sqlite":
            url = f"sqlite:///{var_dir / 'bench.sqlite3'}"
            if emit:
                emit(f"scratch database: {var_dir / 'bench.sqlite3'}")
            yield scratch_environment(dict(os.environ), var_dir, url)
            return
        server = os.environ.get("CARELOOP_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL
        name = f"careloop_bench_{os.getpid()}"
        _create_postgres(server, name)
        try:
            if emit:
                emit(f"scratch database: {name} on {_without_password(server)}")
            yield scratch_environment(dict(os.environ), var_dir, postgres_url_for(server, name))
        finally:
            _drop_postgres(server, name)
            if emit:
                emit(f"dropped {name}")
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _create_postgres(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            raise RuntimeError(
                f"database {name} already exists (left by an earlier run?); drop it first"
            )
        conn.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )


def _drop_postgres(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        if conn.info.server_version >= 130000:
            stmt = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        else:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            stmt = sql.SQL("DROP DATABASE IF EXISTS {}")
        conn.execute(stmt.format(sql.Identifier(name)))

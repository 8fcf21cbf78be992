"""Fault tests: real `careloop worker` processes against a scratch database of their own.

Each test gets a fresh database (a file under tmp on SQLite; a new database on the PostgreSQL
server of the test run) copied from one migrated once per session, so worker processes and
the test see the same rows. The test reads the end state with plain SQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg import sql as pgsql

from careloop.bench import harness
from careloop.bench.reminders import FakeProvider, Workers, message_key

REPO = Path(__file__).resolve().parents[2]
# Claims last this long in fault tests. A batch must finish well within it: a batch still
# working when its lease runs out (e.g. reconciling many in-doubt messages with a slow provider)
# can be claimed by another worker too, and sent twice.
LEASE_SECONDS = 5


def backend() -> str:
    engine = settings.DATABASES["default"]["ENGINE"]
    return "postgres" if "postgresql" in engine else "sqlite"


def postgres_server_url() -> str:
    db = settings.DATABASES["default"]
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/postgres"


def _migrate(url: str, var_dir: Path) -> None:
    env = harness.scratch_environment(dict(os.environ), var_dir, url)
    subprocess.run(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "careloop.cli", "migrate", "--no-input", "-v", "0"],
        env=env,
        cwd=REPO,
        check=True,
        timeout=300,
    )


@dataclass(frozen=True)
class Template:
    kind: str
    path: Path | None = None  # SQLite file
    name: str = ""  # PostgreSQL database


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """One migrated database per session; each test starts from a copy of it."""
    root = tmp_path_factory.mktemp("fault-template")
    if backend() == "sqlite":
        path = root / "template.sqlite3"
        _migrate(f"sqlite:///{path}", root / "var")
        yield Template("sqlite", path=path)
        return
    server = postgres_server_url()
    name = f"careloop_fault_tpl_{os.getpid()}"
    harness._drop_postgres(server, name)
    harness._create_postgres(server, name)
    try:
        _migrate(harness.postgres_url_for(server, name), root / "var")
        yield Template("postgres", name=name)
    finally:
        harness._drop_postgres(server, name)


class Scratch:
    """A fresh copy of the migrated database, and what runs against it."""

    _n = 0

    def __init__(self, template: Template, tmp: Path) -> None:
        Scratch._n += 1
        self.kind = template.kind
        self.tmp = tmp
        self.var_dir = tmp / "var"
        self.var_dir.mkdir()
        if template.kind == "sqlite":
            assert template.path is not None
            self.path = tmp / "fault.sqlite3"
            shutil.copyfile(template.path, self.path)
            self.url = f"sqlite:///{self.path}"
            self.dbname = ""
        else:
            self.server = postgres_server_url()
            self.dbname = f"careloop_fault_{os.getpid()}_{Scratch._n}"
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(
                    pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        pgsql.Identifier(self.dbname), pgsql.Identifier(template.name)
                    )
                )
            self.url = harness.postgres_url_for(self.server, self.dbname)
        self.env = harness.scratch_environment(dict(os.environ), self.var_dir, self.url)
        self.env["CARELOOP_DISPATCH_LEASE_SECONDS"] = str(LEASE_SECONDS)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), self.env.get("PYTHONPATH", "")) if p
        )

    def drop(self) -> None:
        if self.kind == "postgres":
            harness._drop_postgres(self.server, self.dbname)

    def sql(
        self, query: str, params: tuple[Any, ...] = (), *, timeout: float = 30
    ) -> list[tuple[Any, ...]]:
        """Rows of one query on the scratch database (``%s`` placeholders)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path, timeout=timeout)
            try:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.url, autocommit=True) as pg:
            return pg.execute(query, params).fetchall()  # type: ignore[arg-type]

    def scenario(self, config: dict[str, Any], *args: str) -> dict[str, Any]:
        """Build the clinic (tests/fault/scenario.py) in a process of its own."""
        out = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "tests.fault.scenario", "--config", json.dumps(config), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    def workers(self) -> Workers:
        log_dir = self.tmp / "workers"
        log_dir.mkdir(exist_ok=True)
        return Workers(log_dir, env=self.env)

    def statuses(self) -> dict[str, int]:
        return dict(self.sql("SELECT status, COUNT(*) FROM reminders_occurrence GROUP BY status"))

    def digests(self) -> dict[str, int]:
        """Each occurrence's key at the provider (see ``message_key``) -> its id."""
        return {
            "t:" + digest: pk
            for pk, digest in self.sql("SELECT id, link_digest FROM reminders_occurrence")
        }


@pytest.fixture
def scratch(migrated: Template, tmp_path: Path) -> Iterator[Scratch]:
    db = Scratch(migrated, tmp_path)
    try:
        yield db
    finally:
        db.drop()


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def freeze_when(
    proc: subprocess.Popen[bytes], check: Callable[[], bool], timeout: float, what: str
) -> None:
    """Stop a process (SIGSTOP) at a moment when ``check`` holds, so the state it saw stays.

    Checking a running process and then killing it races with what it does in between; a
    stopped process does nothing, so what the check saw is what the kill leaves behind.
    """
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the worker ended before the fault could be injected"
        proc.send_signal(signal.SIGSTOP)
        try:
            if check():
                return
        except (sqlite3.OperationalError, psycopg.errors.LockNotAvailable):
            pass  # stopped while holding SQLite's lock (e.g. a checkpoint): not this moment
        proc.send_signal(signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # let it work between looks


def per_occurrence(fake: FakeProvider, scratch: Scratch) -> tuple[Counter[int], list[str]]:
    """How many messages the provider accepted for each occurrence, and any it cannot place."""
    names = scratch.digests()
    counts: Counter[int] = Counter()
    strays = []
    for sent in fake.sent():
        key = message_key(sent)
        if key in names:
            counts[names[key]] += 1
        else:
            strays.append(key)
    return counts, strays


__all__ = [
    "FakeProvider",
    "LEASE_SECONDS",
    "Scratch",
    "backend",
    "freeze_when",
    "per_occurrence",
    "wait_until",
]

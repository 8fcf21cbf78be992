"""`careloop bench`: runs a workload in a scratch database, reports it, and cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.bench import harness, registry, reminders


def backend() -> str:
    engine = settings.DATABASES["default"]["ENGINE"]
    return "postgres" if "postgresql" in engine else "sqlite"


def postgres_server_url() -> str:
    """The server the test run uses, with the maintenance database."""
    db = settings.DATABASES["default"]
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/postgres"


def postgres_has(name: str) -> bool:
    with psycopg.connect(postgres_server_url(), autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


@pytest.fixture
def bench_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a `careloop bench` subprocess: scratch space under tmp_path."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), DJANGO_SETTINGS_MODULE="careloop.settings")
    if backend() == "postgres":
        env["CARELOOP_BENCH_POSTGRES_URL"] = postgres_server_url()
    return env


def test_registry_tiny_end_to_end(tmp_path: Path, bench_env: dict[str, str]) -> None:
    kind = backend()
    out = tmp_path / "result.json"
    # The user's own configuration: a var dir (and, on SQLite, its database file in it).
    user_var = tmp_path / "user-var"
    env = dict(bench_env, CARELOOP_VAR_DIR=str(user_var))
    if kind == "sqlite":
        env.pop("CARELOOP_DATABASE_URL", None)
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [
            sys.executable,
            "-m",
            "careloop.cli",
            "bench",
            "registry",
            "--size",
            "tiny",
            "--database",
            kind,
            "--json",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]

    result = json.loads(out.read_text())
    for key in harness.REQUIRED_KEYS:
        assert key in result, key
    assert (result["workload"], result["size"], result["database"]) == ("registry", "tiny", kind)
    assert result["correct"] is True, result["checks"]
    assert result["n"] == registry.SIZES["tiny"].patients
    assert result["searches"] == registry.SIZES["tiny"].searches
    assert result["seconds"] > 0 and result["rate_per_s"] > 0
    assert result["search_p99_ms"] >= result["search_p50_ms"] > 0
    assert set(result["floors"]) == {
        "executemany_patients",
        "executemany_record",
        "raw_select_search",
    }
    assert all(v > 0 for v in result["floors"].values())
    assert all(v > 0 for v in result["ratios"].values())
    # Every check ran, including the tenancy ones, and found what it expected.
    assert {
        "counts",
        "phone_tail_own_department",
        "phone_tail_not_other_department",
        "other_organisation_finds_nothing",
        "audit_chain",
    } <= set(result["checks"])
    assert result["checks"]["counts"]["counted"]["patients"] == result["n"]
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["python"]
    assert result["versions"]["django"] and result["versions"]["database_server"]
    assert result["versions"]["database_settings"]
    if kind == "postgres":
        assert "PostgreSQL" in result["versions"]["database_server"]
        assert result["statistics"].startswith("ANALYZE")

    # It said how far it had got while working, and summed up at the end.
    assert "created: 100/100 patients (100%)" in stderr
    assert stderr.count("created: ") >= 5
    assert "correct: True" in stdout

    # The scratch database is gone, and the user's own database was never opened.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (user_var / "careloop.sqlite3").exists()
    if kind == "postgres":
        assert not postgres_has(f"careloop_bench_{proc.pid}")


@pytest.mark.skipif(backend() != "sqlite", reason="runs once, in the SQLite pass of the suite")
def test_reminders_tiny_end_to_end_on_sqlite(tmp_path: Path, bench_env: dict[str, str]) -> None:
    out = tmp_path / "result.json"
    env = dict(bench_env, CARELOOP_VAR_DIR=str(tmp_path / "user-var"))
    env.pop("CARELOOP_DATABASE_URL", None)
    proc = subprocess.run(  # noqa: S603 - our own interpreter and command
        [
            sys.executable,
            "-m",
            "careloop.cli",
            "bench",
            "reminders",
            "--size",
            "tiny",
            "--database",
            "sqlite",
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in harness.REQUIRED_KEYS:
        assert key in result, key
    size = reminders.SIZES["tiny"]
    assert (result["workload"], result["size"], result["database"]) == (
        "reminders",
        "tiny",
        "sqlite",
    )
    # The day was planned right: four reminders per patient at the plan's local times.
    assert result["correct"] is True, result["checks"]
    assert result["n"] == 4 * size.patients
    assert result["checks"]["day"]["local_times"] == ["08:00", "08:30", "14:00", "20:00"]
    assert result["checks"]["day"]["utc_mismatches"] == 0
    # Every reminder of both bursts reached the provider exactly once, the crash included.
    for run in ("burst_delivery", "crash_delivery"):
        check = result["checks"][run]
        assert (check["reminders"], check["duplicates"], check["losses"]) == (size.burst, 0, 0)
        assert check["statuses"] == {"sent": size.burst}
    assert result["checks"]["crash_in_flight"]["in_doubt_at_kill"] > 0
    assert result["metrics"]["crash"]["exit_codes"][0] == -9  # really killed, not stopped
    assert result["duplicates"] == 0 and result["losses"] == 0
    # Rates, lateness, floors and ratios were measured.
    assert result["rate_per_s"] > 0 and result["dispatch_per_s"] > 0
    assert 0 < result["burst_p50_s"] <= result["burst_p99_s"]
    assert set(result["floors"]) == {"executemany_occurrences", "noop_claim_loop"}
    assert all(v > 0 for v in result["floors"].values())
    assert all(v > 0 for v in result["ratios"].values())
    assert {"materialise_vs_floor", "burst_p99", "duplicates", "losses"} <= set(result["targets"])
    assert "correct: True" in proc.stdout
    # Nothing is left behind: the scratch directory is gone with its database and logs.
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("fail", [False, True])
def test_scratch_database_is_dropped_even_on_failure(
    fail: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = backend()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    if kind == "postgres":
        monkeypatch.setenv("CARELOOP_BENCH_POSTGRES_URL", postgres_server_url())
    name = f"careloop_bench_{os.getpid()}"
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError) if fail else nullcontext():
        with harness.scratch_database(kind) as env:
            seen = env
            var_dir = Path(env["CARELOOP_VAR_DIR"])
            assert var_dir.is_dir() and var_dir.parent == tmp_path
            assert env[harness.SCRATCH_MARKER] == "1"
            if kind == "postgres":
                assert env["CARELOOP_DATABASE_URL"].endswith(f"/{name}")
                assert postgres_has(name)
            else:
                assert env["CARELOOP_DATABASE_URL"] == f"sqlite:///{var_dir / 'bench.sqlite3'}"
            if fail:
                raise RuntimeError("the workload broke")
    assert seen
    assert not Path(seen["CARELOOP_VAR_DIR"]).exists()
    if kind == "postgres":
        assert not postgres_has(name)


def test_scratch_environment_drops_the_users_database_and_keys(tmp_path: Path) -> None:
    users = {
        "CARELOOP_DATABASE_URL": "postgres://prod/careloop",
        "CARELOOP_FIELD_KEYS": "real-key",
        "CARELOOP_INDEX_KEY": "real-index",
        "CARELOOP_SECRET_KEY": "x" * 40,
        "CARELOOP_PRODUCTION": "1",
        "CARELOOP_DEBUG": "1",
        "CARELOOP_LOG_LEVEL": "WARNING",
        "PATH": "/usr/bin",
    }
    env = harness.scratch_environment(users, tmp_path, "sqlite:////scratch/bench.sqlite3")
    assert env["CARELOOP_DATABASE_URL"] == "sqlite:////scratch/bench.sqlite3"
    assert env["CARELOOP_VAR_DIR"] == str(tmp_path)
    for name in ("FIELD_KEYS", "INDEX_KEY", "SECRET_KEY", "PRODUCTION", "DEBUG"):
        assert f"CARELOOP_{name}" not in env
    assert env["CARELOOP_LOG_LEVEL"] == "WARNING" and env["PATH"] == "/usr/bin"


def test_child_mode_refuses_to_run_outside_a_scratch_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--child` would fill whatever database is configured; only the parent may start it."""
    monkeypatch.delenv(harness.SCRATCH_MARKER, raising=False)
    with pytest.raises(CommandError, match="internal"):
        call_command(
            "bench",
            "registry",
            "--size",
            "tiny",
            "--database",
            backend(),
            "--child",
            "--json",
            str(tmp_path / "out.json"),
        )
    assert not (tmp_path / "out.json").exists()


def test_json_path_in_a_missing_directory_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a directory"):
        call_command(
            "bench", "registry", "--size", "tiny", "--json", str(tmp_path / "missing" / "out.json")
        )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert harness.percentile(values, 50) == 50
    assert harness.percentile(values, 99) == 99
    assert harness.percentile(values, 100) == 100
    assert harness.percentile([7.0], 99) == 7.0
    summary = harness.latency_summary([0.001, 0.002, 0.010])
    assert summary["p50_ms"] == 2.0 and summary["p99_ms"] == 10.0 and summary["n"] == 3


def test_generated_people_are_reproducible_and_distinct() -> None:
    a = registry.generate_people(2000, seed=5)
    b = registry.generate_people(2000, seed=5)
    assert [(p.name, p.national_id, p.phone) for p in a] == [
        (p.name, p.national_id, p.phone) for p in b
    ]
    assert len({p.national_id for p in a}) == 2000  # the ID serial repeats every 500
    assert len({p.phone for p in a}) == 2000
    assert registry.generate_people(50, seed=6)[0].national_id != a[0].national_id
    assert {p.department for p in a} == {"cardiology", "endocrinology"}
    assert all(p.born < date(2025, 1, 1) for p in a)


def _search(kind: str, dept: str, target_pk: int) -> registry.Search:
    person = registry.generate_people(1, seed=1)[0]
    person.pk = target_pk
    actor = SimpleNamespace(user="nurse")
    return registry.Search(kind=kind, actor=actor, department=dept, target=person)  # type: ignore[arg-type]


def test_search_check_flags_wrong_answers() -> None:
    """The per-search verdict really fails when scoping or matching is wrong."""
    dept_of = {1: "cardiology", 2: "cardiology", 3: "endocrinology"}
    ok = registry.search_problem
    # Right answers pass.
    assert ok(_search("phone_tail", "cardiology", 1), 2, [1, 2], dept_of) is None
    assert ok(_search("national_id", "cardiology", 1), 1, [1], dept_of) is None
    assert ok(_search("other_department", "cardiology", 3), 0, [], dept_of) is None
    # A patient of another department in the results fails, whatever the kind.
    assert "outside the department" in ok(_search("name", "cardiology", 1), 2, [1, 3], dept_of)
    # Another department's patient found by ID number fails.
    assert "expected none" in ok(_search("other_department", "cardiology", 3), 1, [], dept_of)
    # An ID number search must find exactly its patient.
    assert ok(_search("national_id", "cardiology", 1), 1, [2], dept_of)
    assert ok(_search("national_id", "cardiology", 1), 2, [1, 2], dept_of)
    # A search for someone who exists must find something.
    assert "found nothing" in ok(_search("condition", "cardiology", 1), 0, [], dept_of)


@pytest.mark.parametrize("workload", ["ingest", "rules", "worklist", "fhir", "export"])
def test_data_in_workloads_tiny_end_to_end(
    workload: str, tmp_path: Path, bench_env: dict[str, str]
) -> None:
    kind = backend()
    out = tmp_path / "result.json"
    env = dict(bench_env, CARELOOP_VAR_DIR=str(tmp_path / "user-var"))
    if kind == "sqlite":
        env.pop("CARELOOP_DATABASE_URL", None)
    proc = subprocess.run(  # noqa: S603 - our own interpreter and command
        [
            sys.executable, "-m", "careloop.cli", "bench", workload, "--size", "tiny",
            "--database", kind, "--json", str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    # Targets may be missed on a tiny, busy run (they are reported); the work must be right.
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in harness.REQUIRED_KEYS:
        assert key in result, key
    assert result["correct"] is True, result.get("checks")
    assert all("measured" in t and "met" in t for t in result["targets"].values())

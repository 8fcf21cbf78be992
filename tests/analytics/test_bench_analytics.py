"""`careloop bench analytics` (tiny) end to end, and its floor computing what pdc.py computes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings

from careloop.analytics import pdc
from careloop.bench import analytics, harness


def backend() -> str:
    return "postgres" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"


def postgres_server_url() -> str:
    db = settings.DATABASES["default"]
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/postgres"


def test_analytics_tiny_end_to_end(tmp_path: Path) -> None:
    kind = backend()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(
        os.environ,
        TMPDIR=str(scratch),
        DJANGO_SETTINGS_MODULE="careloop.settings",
        CARELOOP_VAR_DIR=str(tmp_path / "user-var"),
    )
    if kind == "postgres":
        env["CARELOOP_BENCH_POSTGRES_URL"] = postgres_server_url()
    else:
        env.pop("CARELOOP_DATABASE_URL", None)
    out = tmp_path / "result.json"
    proc = subprocess.run(  # noqa: S603 - our own interpreter and command
        [
            sys.executable, "-m", "careloop.cli", "bench", "analytics", "--size", "tiny",
            "--database", kind, "--json", str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in harness.REQUIRED_KEYS:
        assert key in result, key
    assert (result["workload"], result["size"], result["database"]) == ("analytics", "tiny", kind)
    # The floor and the naive ORM loop found the same PDC for every patient and class.
    assert result["correct"] is True, result["checks"]
    assert result["checks"]["floor_same_answers"]["pairs"] > analytics.SIZES["tiny"].patients
    assert result["n"] >= 6 * analytics.SIZES["tiny"].patients and result["seconds"] > 0
    assert set(result["floors"]) == {"python_loop_pregrouped_per_s"}
    assert result["floors"]["python_loop_pregrouped_per_s"] > 0 and result["floor_seconds"] > 0
    assert result["ratios"]["speed_vs_python_loop"] > 0
    assert len(result["pdc"]["runs_s"]) == analytics.RUNS
    assert result["naive_orm"]["same_answers"] is True and result["naive_orm"]["seconds"] > 0
    for metric in ("cascade", "completion", "pdc_metric"):
        assert result[metric]["one_month_ms"] > 0 and result[metric]["twelve_months_ms"] > 0
    assert all("measured" in t and "met" in t for t in result["targets"].values())
    assert "correct: True" in proc.stdout
    assert list(scratch.iterdir()) == []  # the scratch database went away


def test_the_floor_computes_what_pdc_computes() -> None:
    # Same drug shifted (Jan 16 → Jan 31), another drug of the class not shifted, supply
    # truncated at the end, a patient with one fill: the loop and numpy agree on each.
    rows = [
        (1, date(2025, 1, 1), 30, "", "C09AA03", "赖诺普利片"),
        (1, date(2025, 1, 16), 30, "", "C09AA03", "赖诺普利片"),
        (1, date(2025, 1, 16), 30, "", "C09CA01", "氯沙坦钾片"),
        (1, date(2025, 3, 20), 90, "", "C09CA01", "氯沙坦钾片"),
        (2, date(2025, 2, 1), 30, "statins", "", "阿托伐他汀"),
    ]
    first, last = date(2025, 1, 1), date(2025, 3, 31)
    fills = pdc.fills_from_rows(rows)
    result = pdc.compute(fills, first, last)
    loop = analytics.loop_pdc(
        analytics.group(fills), fills.classes, pdc.day_number(first), pdc.day_number(last)
    )
    assert loop == analytics._answers(result)
    # Jan 1–30, Jan 31–Mar 1 (shifted), Jan 16–Feb 14 (losartan), Mar 20–31: 60 + 12 = 72.
    assert loop[(1, "rasa")] == (72, 90, 8000)
    assert loop[(2, "statins")] == (30, 59, 5085)


@pytest.mark.parametrize("size", ["small", "full"])
def test_sizes_are_those_of_the_issue(size: str) -> None:
    assert analytics.SIZES[size].patients == {"small": 10_000, "full": 100_000}[size]
    assert analytics.SIZES[size].naive is (size == "small")

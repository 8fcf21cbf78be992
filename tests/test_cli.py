"""The `careloop` console script, run for real in throwaway SQLite databases."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password

from careloop.cli import COMMANDS

CARELOOP = Path(sys.executable).with_name("careloop")
LOGIN_LINE = re.compile(
    r"^\s+(\S+)\s+(\S+)\s+(org_admin|auditor|dept_head|doctor|nurse)\s*$", re.MULTILINE
)
ROLES = {"org_admin", "auditor", "dept_head", "doctor", "nurse"}


def cli_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELOOP_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["CARELOOP_VAR_DIR"] = str(var_dir)
    return env


def careloop(
    var_dir: Path, *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(CARELOOP), *args],
        env=cli_env(var_dir),
        cwd=var_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def logins(output: str) -> dict[str, tuple[str, str]]:
    return {user: (password, role) for user, password, role in LOGIN_LINE.findall(output)}


def query(var_dir: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(var_dir / "careloop.sqlite3") as db:
        return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """An empty database after `careloop migrate`, copied for each fresh database below."""
    var_dir = tmp_path_factory.mktemp("migrated")
    careloop(var_dir, "migrate", "-v", "0")
    assert query(var_dir, "SELECT COUNT(*) FROM patients_patient") == [(0,)]
    return var_dir / "careloop.sqlite3"


def demo_database(migrated: Path, var_dir: Path) -> str:
    var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated, var_dir / "careloop.sqlite3")
    return careloop(var_dir, "demo", "--patients", "20", "--seed", "3").stdout


@pytest.fixture(scope="module")
def demo(migrated, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("demo-a")
    return var_dir, demo_database(migrated, var_dir)


def test_help_lists_every_command(tmp_path):
    out = careloop(tmp_path, "--help").stdout
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", out, re.MULTILINE), name
    unknown = careloop(tmp_path, "frobnicate", check=False)
    assert unknown.returncode == 2
    assert "unknown command" in unknown.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_explains_itself(tmp_path, name):
    out = careloop(tmp_path, name, "--help").stdout
    assert f"usage: careloop {name}" in out


def test_demo_is_reproducible_and_prints_fresh_logins(migrated, demo, tmp_path):
    var_a, out_a = demo
    var_b = tmp_path / "demo-b"
    out_b = demo_database(migrated, var_b)

    people = "SELECT name, date_of_birth, sex FROM patients_patient ORDER BY id"
    assert query(var_a, people) == query(var_b, people)
    assert len(query(var_a, people)) == 20

    first, second = logins(out_a), logins(out_b)
    assert {role for _, role in first.values()} == ROLES
    assert "nurse.cardiology" in first and first["nurse.cardiology"][1] == "nurse"
    assert set(first) == set(second)
    for user, (password, _role) in first.items():
        assert second[user][0] != password, f"{user} has a fixed password"
        (stored,) = query(var_a, "SELECT password FROM accounts_staff WHERE username = ?", user)[0]
        assert check_password(password, stored), user
    assert re.search(r"search \d{4}", out_a)  # tells the nurse what to try first


def test_some_demo_patients_belong_to_both_departments(demo):
    var_dir, _ = demo
    shared = query(
        var_dir,
        "SELECT patient_id FROM patients_patientdepartment GROUP BY patient_id HAVING COUNT(*) = 2",
    )
    assert 0 < len(shared) < 20


def test_demo_if_empty_prints_the_logins_again_and_adds_nothing(demo):
    var_dir, out = demo
    before = query(var_dir, "SELECT COUNT(*) FROM patients_patient")
    again = careloop(var_dir, "demo", "--patients", "20", "--seed", "3", "--if-empty").stdout
    assert logins(again) == logins(out)
    assert query(var_dir, "SELECT COUNT(*) FROM patients_patient") == before
    refused = careloop(var_dir, "demo", "--patients", "5", check=False)
    assert refused.returncode != 0 and "empty database" in refused.stderr
    assert query(var_dir, "SELECT COUNT(*) FROM patients_patient") == before


def test_audit_verify_on_an_intact_trail(demo):
    var_dir, _ = demo
    out = careloop(var_dir, "audit", "verify").stdout
    assert "intact" in out
    result = json.loads(careloop(var_dir, "audit", "verify", "--json").stdout)
    assert result["ok"] is True and result["problems"] == [] and result["checked"] > 20


def test_createstaff(demo):
    var_dir, _ = demo
    out = careloop(
        var_dir,
        "createstaff",
        "nurse.new",
        "--org",
        "demo",
        "--role",
        "nurse",
        "--department",
        "cardiology",
        "--name",
        "新护士",
    ).stdout
    username, password = out.split()
    assert username == "nurse.new" and len(password) >= 12
    (row,) = query(
        var_dir,
        "SELECT s.id, s.role, s.display_name, s.password, d.code "
        "FROM accounts_staff s JOIN accounts_membership m ON m.staff_id = s.id "
        "JOIN accounts_department d ON d.id = m.department_id "
        "WHERE s.username = ?",
        "nurse.new",
    )
    assert row[1:3] == ("nurse", "新护士") and row[4] == "cardiology"
    assert check_password(password, row[3])

    twice = careloop(var_dir, "createstaff", "nurse.new", "--org", "demo", check=False)
    assert twice.returncode != 0 and "exists" in twice.stderr
    weak = careloop(
        var_dir, "createstaff", "nurse.weak", "--org", "demo", "--password", "123", check=False
    )
    assert weak.returncode != 0
    assert not query(var_dir, "SELECT id FROM accounts_staff WHERE username = 'nurse.weak'")

    reset = careloop(var_dir, "createstaff", "nurse.new", "--reset-password").stdout.split()[1]
    (stored,) = query(
        var_dir, "SELECT password FROM accounts_staff WHERE username = ?", "nurse.new"
    )[0]
    assert check_password(reset, stored) and not check_password(password, stored)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_apitoken_works_against_the_running_server(demo):
    var_dir, _ = demo
    token = careloop(var_dir, "apitoken", "nurse.cardiology", "--label", "test").stdout.strip()
    assert token.startswith("cl_") and "\n" not in token
    assert careloop(var_dir, "apitoken", "nobody", check=False).returncode != 0

    port = _free_port()
    server = subprocess.Popen(  # noqa: S603
        [str(CARELOOP), "serve", "--port", str(port)],
        env=cli_env(var_dir),
        cwd=var_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for the server to accept connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        status, me = _get(f"{base}/api/me", token)
        assert status == 200 and me["username"] == "nurse.cardiology" and me["role"] == "nurse"
        status, page = _get(f"{base}/api/patients?size=100", token)
        visible = query(
            var_dir,
            "SELECT COUNT(DISTINCT pd.patient_id) FROM "
            "patients_patientdepartment pd JOIN accounts_department d "
            "ON d.id = pd.department_id WHERE d.code = 'cardiology'",
        )[0][0]
        assert status == 200 and page["total"] == visible > 0
        status, error = _get(f"{base}/api/me", token[:-2] + "xx")
        assert status == 401 and error["code"] == "unauthenticated"
    finally:
        server.terminate()
        server.wait(timeout=30)

"""Health checks for the load balancer, and the refusal to run production on weak secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from careloop.web import views

STRONG_SECRET = "9v2QeL7kR4mZ8tW1xY6bN3cH5jD0fG2sA7pU4oI9"  # 40 characters, not a default


class TestHealth:
    def test_healthz_needs_no_login(self, client):
        r = client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}

    def test_readyz_is_ok_on_a_migrated_database(self, client, db):
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "database": "ok"}

    def test_readyz_reports_pending_migrations(self, client, db, monkeypatch):
        class Pending(views.MigrationExecutor):
            def migration_plan(self, targets, clean_start=False):
                return [("patients", "9999_future")]

        monkeypatch.setattr(views, "MigrationExecutor", Pending)
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "ok", "pending_migrations": 1}

    def test_readyz_reports_an_unreachable_database(self, client, db, monkeypatch):
        class Down:
            def __init__(self, connection):
                raise OSError("connection refused")

        monkeypatch.setattr(views, "MigrationExecutor", Down)
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "unreachable"}
        assert b"refused" not in r.content  # no internals leak to the caller

    def test_health_checks_only_answer_get(self, client, db):
        assert client.post("/healthz").status_code == 405
        assert client.post("/readyz").status_code == 405


def load_settings(tmp_path: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELOOP_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "careloop.settings",
            "CARELOOP_PRODUCTION": "1",
            "CARELOOP_VAR_DIR": str(tmp_path / "var"),
        }
    )
    env.update({f"CARELOOP_{k}": v for k, v in env_vars.items()})
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    return subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


KEYS = {"FIELD_KEYS": "f" * 12 + "Qx8Lm2Pz7Rk4Vn9Tb3Wc6Yd1", "INDEX_KEY": "i" * 12 + "Hs5Jg8Kf2Ld7"}


class TestProductionSecrets:
    @pytest.mark.parametrize(
        "secret",
        [None, "", "changeme", "django-insecure", "secret", "CareLoop", "short-but-random-7Hq2"],
    )
    def test_weak_or_missing_secret_key_is_refused(self, tmp_path, secret):
        extra = dict(KEYS)
        if secret is not None:
            extra["SECRET_KEY"] = secret
        result = load_settings(tmp_path, **extra)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert "CARELOOP_SECRET_KEY" in result.stderr
        assert not (tmp_path / "var" / "secret_key").exists()

    def test_strong_secret_is_accepted_with_secure_cookies(self, tmp_path):
        result = load_settings(tmp_path, SECRET_KEY=STRONG_SECRET, **KEYS)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["False", "True", "True"]
        # Nothing was generated on disk: every secret came from the environment.
        assert not any((tmp_path / "var").glob("*_key"))

    def test_production_refuses_a_fake_clock(self, tmp_path):
        result = load_settings(
            tmp_path, SECRET_KEY=STRONG_SECRET, FAKE_NOW="2026-03-08T08:00:00+08:00", **KEYS
        )
        assert result.returncode != 0
        assert "CARELOOP_FAKE_NOW is refused in production" in result.stderr

    @pytest.mark.parametrize("missing", ["FIELD_KEYS", "INDEX_KEY"])
    def test_production_does_not_generate_encryption_keys(self, tmp_path, missing):
        extra = {k: v for k, v in KEYS.items() if k != missing}
        result = load_settings(tmp_path, SECRET_KEY=STRONG_SECRET, **extra)
        assert result.returncode != 0
        assert f"CARELOOP_{missing}" in result.stderr
        assert not any((tmp_path / "var").glob("*_key"))

    def test_development_mode_generates_keys_once(self, tmp_path):
        first = load_settings(tmp_path, PRODUCTION="0")
        assert first.returncode == 0, first.stderr
        generated = {p.name: p.read_text() for p in (tmp_path / "var").glob("*_key")}
        assert set(generated) == {"secret_key", "field_key", "index_key"}
        assert all(oct((tmp_path / "var" / n).stat().st_mode)[-3:] == "600" for n in generated)
        again = load_settings(tmp_path, PRODUCTION="0")
        assert again.returncode == 0
        assert {p.name: p.read_text() for p in (tmp_path / "var").glob("*_key")} == generated

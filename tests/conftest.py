"""Shared fixtures: a two-organisation world with staff of every role."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation, Staff
from careloop.accounts.roles import Role
from careloop.patients import services as patient_services

# Shared fixtures of other areas: a clinic with plans and a fake SMS provider.
pytest_plugins = ["tests.support.clinic"]

PASSWORD = "Correct-Horse-42"  # noqa: S105 - test accounts only

# A valid resident ID (GB 11643 check character X) for a woman born 1949-12-31.
VALID_ID = "11010519491231002X"


@dataclass
class World:
    org: Organisation
    other_org: Organisation
    cardio: Department
    endo: Department
    other_dept: Department
    staff: dict[str, Staff] = field(default_factory=dict)

    def actor(self, username: str, source: str = "127.0.0.1") -> Actor:
        return Actor(user=Staff.objects.get(username=username), source=source)


def _person(
    world: World,
    username: str,
    role: Role,
    depts: list[Department],
    org: Organisation | None = None,
) -> Staff:
    user = accounts.create_staff(
        organisation_id=(org or world.org).pk,
        username=username,
        password=PASSWORD,
        role=role,
        department_ids=[d.pk for d in depts],
        display_name=username,
    )
    world.staff[username] = user
    return user


@pytest.fixture
def world(db: Any) -> World:
    org = Organisation.objects.create(name="Test Hospital", code="test")
    other = Organisation.objects.create(name="Other Hospital", code="other")
    w = World(
        org=org,
        other_org=other,
        cardio=Department.objects.create(
            organisation=org, code="cardiology", name="心内科", name_en="Cardiology"
        ),
        endo=Department.objects.create(
            organisation=org, code="endocrinology", name="内分泌科", name_en="Endocrinology"
        ),
        other_dept=Department.objects.create(
            organisation=other, code="cardiology", name="心内科", name_en="Cardiology"
        ),
    )
    _person(w, "admin", Role.ORG_ADMIN, [])
    _person(w, "auditor", Role.AUDITOR, [])
    for dept in (w.cardio, w.endo):
        _person(w, f"head.{dept.code}", Role.DEPT_HEAD, [dept])
        _person(w, f"doctor.{dept.code}", Role.DOCTOR, [dept])
        _person(w, f"nurse.{dept.code}", Role.NURSE, [dept])
    _person(w, "nurse.other", Role.NURSE, [w.other_dept], org=other)
    _person(w, "admin.other", Role.ORG_ADMIN, [], org=other)
    return w


_counter = {"n": 0}


def patient_data(**overrides: Any) -> dict[str, Any]:
    """Valid input for a new patient; each call gets a distinct phone."""
    _counter["n"] += 1
    n = _counter["n"]
    data = {
        "name": f"张三{n}",
        "sex": "male",
        "date_of_birth": "1960-05-01",
        "phones": [f"139{n:08d}"],
        "preferred_language": "zh-hans",
        "time_zone": "Asia/Shanghai",
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_patient(world: World):  # type: ignore[no-untyped-def]
    def make(username: str = "nurse.cardiology", **overrides: Any):  # type: ignore[no-untyped-def]
        actor = world.actor(username)
        return patient_services.create_patient(actor, patient_data(**overrides))

    return make


@pytest.fixture
def token(world: World):  # type: ignore[no-untyped-def]
    def issue(username: str) -> str:
        return accounts.issue_token(Staff.objects.get(username=username))

    return issue


@pytest.fixture
def api(client: Any, token: Any):  # type: ignore[no-untyped-def]
    """Call the JSON API as a user: api("nurse.cardiology").get("/api/patients")."""

    class As:
        def __init__(self, username: str) -> None:
            self.headers = {
                "HTTP_AUTHORIZATION": f"Bearer {token(username)}",
                "HTTP_ACCEPT_LANGUAGE": "en",
            }

        def get(self, path: str, **kw: Any) -> Any:
            return client.get(path, **self.headers, **kw)

        def delete(self, path: str, **kw: Any) -> Any:
            return client.delete(path, **self.headers, **kw)

        def post(self, path: str, data: Any = None, **kw: Any) -> Any:
            return client.post(path, data, content_type="application/json", **self.headers, **kw)

        def patch(self, path: str, data: Any = None, **kw: Any) -> Any:
            return client.patch(path, data, content_type="application/json", **self.headers, **kw)

    return As


os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _fast_password_hashing(request: Any, settings: Any) -> None:
    """Argon2 is deliberately slow; tests that are not about passwords use a fast hasher."""
    if "argon2" not in request.keywords:
        # New hashes are fast; hashes made by the real settings (subprocesses) still verify.
        settings.PASSWORD_HASHERS = [
            "django.contrib.auth.hashers.MD5PasswordHasher",
            "django.contrib.auth.hashers.Argon2PasswordHasher",
        ]


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "uploads")

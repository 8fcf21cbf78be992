"""Fixtures of the appointment tests: a frozen clock, a cardiology clinic schedule, a database
that threads really share."""

from __future__ import annotations

import importlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection, connections

from careloop.appointments import models as am
from careloop.appointments import services
from careloop.kit import clock
from careloop.patients import models as pm
from tests.conftest import World

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 9 March 2026, 08:00 in Shanghai.
MONDAY_8AM = datetime(2026, 3, 9, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)


class Frozen:
    """The clock, stopped at a moment tests choose and move."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        clock.install(clock.FakeClock(start=at.astimezone(UTC), speed=0.0, anchor=time.time()))
        self.now = at.astimezone(UTC)

    def local(self, day: date, hh: int, mm: int = 0) -> datetime:
        at = datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI)
        self.set(at)
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.set(self.now + timedelta(**delta))
        return self.now


@pytest.fixture
def frozen() -> Iterator[Frozen]:
    previous = clock.fake()
    f = Frozen(MONDAY_8AM)
    yield f
    clock.install(previous)


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


class Clinic:
    """Cardiology's clinic: a schedule made by its head, and helpers to find slots."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.head = world.actor("head.cardiology")
        self.nurse = world.actor("nurse.cardiology")

    def schedule(self, dept: Any = None, actor: Any = None, **overrides: Any) -> am.ClinicSchedule:
        dept = dept or self.world.cardio
        head = actor or self.world.actor(f"head.{dept.code}")
        data = {
            "name": "心内科专家门诊",
            "department": dept.pk,
            "doctor": self.world.staff[f"doctor.{dept.code}"].pk,
            "weekdays": ["1", "2", "3", "4", "5"],
            "sessions": "08:00-12:00, 13:30-16:30",
            "slot_minutes": 30,
            "capacity": 2,
            "valid_from": "2026-03-01",
            "valid_to": "",
            "active": "on",
        }
        data.update(overrides)
        return services.save_schedule(head, data)

    def slot(self, day: date, hh: int, mm: int = 0, dept: Any = None) -> am.Slot:
        dept = dept or self.world.cardio
        return am.Slot.objects.get(department=dept, starts_at=local(day, hh, mm))


@pytest.fixture
def clinic(world: World, frozen: Frozen) -> Clinic:
    return Clinic(world)


MON = date(2026, 3, 9)
TUE = date(2026, 3, 10)
WED = date(2026, 3, 11)


def race(fn: Any, count: int) -> list[Any]:
    """Run fn(i) in ``count`` threads released at the same moment; each result or error."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = fn(i)
        except Exception as exc:  # handed to the caller, which asserts on it
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


# --- a database shared by threads -------------------------------------------------------------
#
# Race tests run threads, each with its own database connection, so they need committed data
# (a transactional test) and a database that behaves as deployed:
#
# * The audit table refuses DELETE and TRUNCATE (triggers); the flush that ends a transactional
#   test needs both, so the triggers are dropped just before it and put back after it, together
#   with the terminology the migrations load.
# * The SQLite test database lives in memory with a shared cache, whose table locks fail at once
#   instead of waiting. A deployed SQLite database is a file (WAL, busy timeout, writers begin
#   IMMEDIATE); the race runs on a file copy of the test database, which works exactly so.

_triggers = importlib.import_module("careloop.audit.migrations.0002_append_only")
_concepts = importlib.import_module("careloop.patients.migrations.0002_load_concepts")


def _audit_triggers(up: bool) -> None:
    vendor = connection.vendor
    down = {"sqlite": _triggers.SQLITE_DOWN, "postgresql": _triggers.PG_DOWN}.get(vendor, [])
    up_sql = {"sqlite": _triggers.SQLITE_UP, "postgresql": _triggers.PG_UP}.get(vendor, [])
    with connection.cursor() as cursor:
        for sql in down + (up_sql if up else []):
            cursor.execute(sql)


class _FileCopy:
    """Point the default connection at a file copy of the in-memory SQLite test database."""

    def __init__(self, path: Path) -> None:
        self.name = connection.settings_dict["NAME"]
        connection.ensure_connection()
        # The in-memory database lives while a connection to it is open.
        self.keepalive = sqlite3.connect(self.name, uri=True)
        target = sqlite3.connect(path)
        connection.connection.backup(target)  # type: ignore[union-attr]
        target.close()
        connection.settings_dict["NAME"] = str(path)
        connection.close()

    def restore(self) -> None:
        connection.close()
        connection.settings_dict["NAME"] = self.name
        connection.ensure_connection()
        self.keepalive.close()


@pytest.fixture
def racing_db(transactional_db: Any, tmp_path: Path) -> Iterator[None]:
    _audit_triggers(up=True)
    if not pm.Concept.objects.exists():  # an earlier flush emptied the terminology
        _concepts.load(apps, None)
    copy = None
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        copy = _FileCopy(tmp_path / "race.sqlite3")
    yield
    if copy is not None:
        copy.restore()
    _audit_triggers(up=False)  # the flush comes next


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After a race test's flush, put the audit triggers and the terminology back."""
    try:
        return (yield)
    finally:
        if nextitem is not None and "racing_db" in getattr(item, "fixturenames", ()):
            from pytest_django.plugin import blocking_manager_key

            with item.config.stash[blocking_manager_key].unblock():
                _audit_triggers(up=True)
                _concepts.load(apps, None)

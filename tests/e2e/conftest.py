"""Browser tests: one Chromium per session, a fresh context (cookies, storage) per test.

The live server runs against the transactional test database. Two things make that work here:

* Data loaded by migrations (the terminology) is loaded again when a flush has emptied it.
* The audit table refuses DELETE and TRUNCATE (database triggers). The flush that ends a
  transactional test needs both, so the triggers are dropped just before the flush and put
  back right after it; during every test they are in place.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.servers.basehttp import WSGIServer
from django.db import connection
from django.test import Client
from django.test.testcases import LiveServerThread

from careloop.accounts.models import CareTeam, Staff
from careloop.kit.clock import utc_now
from careloop.patients import models as m
from careloop.patients import services as patient_services
from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class _OneRequestAtATime(WSGIServer):
    """The in-memory SQLite test database is a single connection that the live server's
    request threads share: two requests at once (a page's htmx panels load together) would
    interleave their transactions on it. This server answers them one after the other, each
    under ``BUSY``, which a test's teardown holds from before its flush until after it so that
    a request still in flight from the closed browser cannot interleave with the flush."""

    BUSY = threading.Lock()

    def __init__(self, *args: Any, connections_override: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections_override = connections_override

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.BUSY:
            super().process_request(request, client_address)


if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    LiveServerThread.server_class = _OneRequestAtATime

CHROMIUM = os.environ.get("CARELOOP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

_triggers = importlib.import_module("careloop.audit.migrations.0002_append_only")
_concepts = importlib.import_module("careloop.patients.migrations.0002_load_concepts")


_flushing = threading.Lock()


def _hold_the_live_server() -> None:
    """Wait for the request the live server is answering, if any, and keep it from starting
    another until the flush is over (released in pytest_runtest_teardown)."""
    if LiveServerThread.server_class is _OneRequestAtATime and not _flushing.locked():
        _OneRequestAtATime.BUSY.acquire()
        _flushing.acquire()


def _audit_triggers(up: bool) -> None:
    vendor = connection.vendor
    down_sql = {"sqlite": _triggers.SQLITE_DOWN, "postgresql": _triggers.PG_DOWN}.get(vendor, [])
    up_sql = {"sqlite": _triggers.SQLITE_UP, "postgresql": _triggers.PG_UP}.get(vendor, [])
    with connection.cursor() as cursor:
        for sql in down_sql + (up_sql if up else []):
            cursor.execute(sql)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After a browser test's flush has run, put the audit triggers and terminology back."""
    try:
        return (yield)
    finally:
        if _flushing.locked():
            _flushing.release()
            _OneRequestAtATime.BUSY.release()  # the live server may answer requests again
        # After the last test the session teardown has already dropped the test database.
        if nextitem is not None and {"site", "demo_site"} & set(getattr(item, "fixturenames", ())):
            from pytest_django.plugin import blocking_manager_key

            with item.config.stash[blocking_manager_key].unblock():
                _audit_triggers(up=True)
                _concepts.load(apps, None)  # leave the database as migrations made it


@pytest.fixture
def site(live_server: Any, transactional_db: Any, world: Any) -> Iterator[str]:
    """The live server's base URL, with the two-organisation world in its database."""
    _audit_triggers(up=True)
    if not m.Concept.objects.exists():  # an earlier flush emptied the terminology
        _concepts.load(apps, None)
    yield live_server.url
    _hold_the_live_server()
    _audit_triggers(up=False)  # the flush comes next


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, site: str) -> Iterator[Any]:
    """Open pages in a fresh browser context: new_page(viewport=PHONE, locale="en-GB")."""
    contexts: list[Any] = []
    problems: list[str] = []  # console errors (a CSP refusal is one) and uncaught exceptions

    def open_page(viewport: dict[str, int] | None = None, locale: str = "zh-CN") -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, locale=locale, base_url=site)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        # Pages may answer 404 or 422 on purpose; a stylesheet or script never may.
        page.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and "/static/" in r.url
                else None
            ),
        )
        return page

    yield open_page
    for context in contexts:
        context.close()
    # Expected HTTP errors (404 pages, 401 on a wrong password) log "Failed to load resource";
    # a missing static file is caught by the response listener above.
    unexpected = [p for p in problems if not p.startswith("Failed to load resource")]
    assert not unexpected, f"browser console errors: {unexpected}"


@pytest.fixture
def page(new_page: Any) -> Any:
    return new_page()


def login(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()


@pytest.fixture
def sign_in(site: str) -> Any:
    """Start a signed-in session without the login form (for tests about other pages)."""

    def sign_in_as(page: Any, username: str) -> None:
        client = Client()
        client.force_login(Staff.objects.get(username=username))
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": site}])

    return sign_in_as


@pytest.fixture
def rich_patient(site: str, world: Any, make_patient: Any) -> Any:
    """A cardiology patient with something in every part of the record and a care team."""
    nurse = world.actor("nurse.cardiology")
    today = utc_now().date()
    patient = make_patient(
        name="王建国",
        sex="male",
        date_of_birth="1956-03-14",
        phones=["13812345678", "01065551234"],
        record_number="MRN-0042",
    )
    team = CareTeam.objects.create(
        department=world.cardio,
        name="高血压随访组",
        responsible_doctor=world.staff["doctor.cardiology"],
    )
    m.PatientDepartment.objects.filter(patient=patient).update(care_team=team)
    add = patient_services.add_record
    add(
        nurse,
        patient.pk,
        "conditions",
        {"icd10_code": "I10", "status": "active", "onset_date": "2015-06-01"},
    )
    add(
        nurse,
        patient.pk,
        "conditions",
        {"icd10_code": "E11.9", "status": "active", "onset_date": "2019-09-01"},
    )
    add(
        nurse,
        patient.pk,
        "allergies",
        {"substance": "青霉素", "category": "medication", "reaction": "皮疹", "severity": "severe"},
    )
    add(
        nurse,
        patient.pk,
        "lifestyle",
        {
            "recorded_on": today.isoformat(),
            "smoking": "former",
            "alcohol": "occasional",
            "exercise": "light",
        },
    )
    add(
        nurse,
        patient.pk,
        "history",
        {"kind": "family", "description": "高血压", "relation": "父亲"},
    )
    add(
        nurse,
        patient.pk,
        "caregivers",
        {"name": "王丽", "relation": "女儿", "phone": "13900001111", "is_emergency_contact": "on"},
    )
    add(
        nurse,
        patient.pk,
        "medications",
        {
            "name": "氨氯地平片",
            "dose": "5",
            "unit": "mg",
            "route": "po",
            "frequency": "qd",
            "start_date": (today - timedelta(days=90)).isoformat(),
            "status": "active",
            "prescriber": "doctor.cardiology",
        },
    )
    add(
        nurse,
        patient.pk,
        "visits",
        {
            "kind": "outpatient",
            "department": str(world.cardio.pk),
            "attending": "李医生",
            "diagnoses": "原发性高血压",
            "admitted_on": (today - timedelta(days=30)).isoformat(),
        },
    )
    add(
        nurse,
        patient.pk,
        "reports",
        {
            "kind": "lab",
            "title": "血脂四项",
            "reported_on": (today - timedelta(days=29)).isoformat(),
        },
    )
    add(
        nurse,
        patient.pk,
        "consents",
        {
            "purpose": "care_reminders",
            "channel": "sms",
            "granted": "on",
            "decided_on": today.isoformat(),
            "source": "paper",
        },
    )
    return patient

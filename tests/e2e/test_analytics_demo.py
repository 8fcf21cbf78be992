"""The department head of cardiology, on the demo hospital, in a real Chromium: the dashboard
shows 12 months of cascade, adherence, overdue and engagement figures; "uncontrolled" leads to
the list of patients behind it, which downloads; the monthly PDF downloads.

The demo is built small (40 patients) in the live server's database, with its own staff, so the
two-organisation world of the other browser tests is not used here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from playwright.sync_api import expect

from careloop.demo.build import DemoResult, build
from careloop.patients import models as m
from tests.e2e.conftest import DESKTOP, _audit_triggers, _concepts, _hold_the_live_server, login

pytestmark = pytest.mark.e2e

SHOWN = ("htn_cascade", "pdc", "dose_adherence", "overdue_return", "reminder_engagement")


@pytest.fixture
def demo_site(live_server: Any, transactional_db: Any) -> Iterator[tuple[str, DemoResult]]:
    _audit_triggers(up=True)
    if not m.Concept.objects.exists():  # an earlier flush emptied the terminology
        _concepts.load(apps, None)
    result = build(patients=40, seed=11)
    yield live_server.url, result
    _hold_the_live_server()
    _audit_triggers(up=False)  # the flush comes next


@pytest.fixture
def head_page(browser: Any, demo_site: tuple[str, DemoResult]) -> Iterator[Any]:
    url, result = demo_site
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN", base_url=url)
    context.set_default_timeout(20_000)
    problems: list[str] = []
    page = context.new_page()
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    password = next(p for user, p, _role in result.logins if user == "head.cardiology")
    login(page, "head.cardiology", password)
    yield page
    context.close()
    assert not [p for p in problems if not p.startswith("Failed to load resource")], problems


def months_drawn(page: Any, key: str) -> int:
    """How many months the metric's trend chart shows, once Chart.js has drawn it."""
    selector = f"[data-metric={key}] canvas[data-analytics-chart]"
    page.wait_for_function(
        """(selector) => {
            const canvas = document.querySelector(selector);
            return !!(canvas && window.Chart && window.Chart.getChart(canvas));
        }""",
        arg=selector,
    )
    return int(
        page.evaluate(
            "(s) => window.Chart.getChart(document.querySelector(s)).data.labels.length", selector
        )
    )


def test_head_of_cardiology_reads_drills_exports_and_downloads_the_report(
    head_page: Any, tmp_path: Any
) -> None:
    page = head_page
    page.goto("/analytics/")
    expect(page.locator("[data-testid=analytics-scope]")).to_contain_text("心内科")
    expect(page.locator(".metric-card.loading")).to_have_count(0, timeout=120_000)
    for key in SHOWN:
        card = page.locator(f"[data-metric={key}][data-testid=metric-card]")
        expect(card).to_be_visible()
        figure = card.locator("[data-testid=headline-figure]").inner_text()
        # A share, or a dash when this month has no denominator yet (nobody called so far).
        assert re.fullmatch(r"\d+(\.\d)?%", figure) or (key == "overdue_return" and figure == "—")
        assert months_drawn(page, key) == 12, key

    # From "uncontrolled" of the hypertension cascade to the patients behind it.
    cascade = page.locator("[data-metric=htn_cascade][data-testid=metric-card]")
    links = cascade.locator("[data-testid=drill-link][data-part=uncontrolled]")
    count = int(links.last.inner_text())
    assert count > 0
    links.last.click()
    page.wait_for_url("**/analytics/htn_cascade/uncontrolled/?*")
    rows = page.locator("[data-testid=drill-row]")
    expect(rows).to_have_count(min(count, 25))

    with page.expect_download() as caught:
        page.locator("[data-testid=drill-export-csv]").click()
    path = tmp_path / "uncontrolled.csv"
    caught.value.save_as(path)
    lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert len(lines) - 1 == count

    # The monthly PDF of the department.
    page.goto("/analytics/")
    # The cards load one after the other; the live server's SQLite serves one request at a time.
    expect(page.locator(".metric-card.loading")).to_have_count(0, timeout=120_000)
    report = page.locator("[data-testid=monthly-report]")
    href = report.get_attribute("href")
    assert href
    response = page.context.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")

"""A department head reads the analytics dashboard in a real Chromium: a chart is drawn, a
figure leads to the patients behind it, and the list downloads as CSV.

The test registers a metric of its own ("flagged" patients: record number starting with F) so
the figures are known: cardiology has 2 flagged of 3 patients (66.7%); endocrinology's flagged
patient is not the head's to see. The new_page fixture fails the test on any console error (a
CSP refusal is one).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.analytics import registry
from careloop.analytics.registry import Cohort, Metric, Part, Value
from tests.e2e.conftest import PHONE

pytestmark = pytest.mark.e2e


def _split(cohort: Cohort) -> tuple[list[int], list[int]]:
    rows = list(cohort.patients().values_list("pk", "record_number"))
    return (
        [pk for pk, rn in rows if rn.startswith("F")],
        [pk for pk, rn in rows if not rn.startswith("F")],
    )


def _compute(cohort: Cohort, months: Any) -> registry.Computed:
    flagged, other = _split(cohort)
    n = len(flagged) + len(other)
    return {m: {"flagged": Value(len(flagged), n), "other": Value(len(other), n)} for m in months}


def _patients(cohort: Cohort, month: date, part: str) -> list[int]:
    flagged, other = _split(cohort)
    return flagged if part == "flagged" else other


E2E_PROBE = Metric(
    key="e2e_probe",
    title="Flagged patients",
    definition="Flagged patients ÷ patients of the cohort, as of the end of the month.",
    kind="share",
    parts=(Part("flagged", "Flagged", colour="#D55E00"), Part("other", "Other", colour="#009E73")),
    compute=_compute,
    patients=_patients,
    group="care",
    headline="flagged",
    target=0.5,
)


@pytest.fixture
def probe(site: str, world: Any, make_patient: Any) -> Iterator[dict[str, Any]]:
    registry.register(E2E_PROBE)
    people = {
        "a": make_patient(name="王建国", record_number="F100"),
        "b": make_patient(name="=cmd|' /C calc'!A0", record_number="F200"),
        "c": make_patient(name="李四海", record_number="R300"),
        "d": make_patient("nurse.endocrinology", name="赵内分", record_number="F400"),
    }
    yield people
    registry.METRICS.pop(E2E_PROBE.key, None)


def chart_drawn(page: Any, selector: str) -> None:
    page.wait_for_function(
        """(selector) => {
            const canvas = document.querySelector(selector);
            return !!(canvas && window.Chart && window.Chart.getChart(canvas));
        }""",
        arg=selector,
    )


def test_head_reads_a_chart_drills_into_a_figure_and_downloads_the_list(
    new_page: Any, sign_in: Any, probe: dict[str, Any], tmp_path: Any
) -> None:
    page = new_page()
    sign_in(page, "head.cardiology")
    page.goto("/patients/")
    page.locator("[data-testid=nav-analytics]").click()
    card = page.locator("[data-metric=e2e_probe][data-testid=metric-card]")
    expect(card).to_be_visible(timeout=30_000)
    expect(card.locator("[data-testid=headline-figure]")).to_have_text("66.7%")
    chart_drawn(page, "[data-metric=e2e_probe] canvas[data-analytics-chart]")
    expect(card.locator(".footnote")).to_contain_text("Flagged patients ÷ patients of the cohort")

    # Every card has arrived (they load one after the other) before leaving the page.
    expect(page.locator(".metric-card.loading")).to_have_count(0, timeout=60_000)
    card.locator("[data-testid=headline-figure]").click()
    page.wait_for_url("**/analytics/e2e_probe/flagged/?*")
    rows = page.locator("[data-testid=drill-row]")
    expect(rows).to_have_count(2, timeout=15_000)
    table = page.locator("[data-testid=drill-table]")
    expect(table).to_contain_text("王建国")
    expect(table).not_to_contain_text("李四海")  # not flagged
    expect(table).not_to_contain_text("赵内分")  # another department

    with page.expect_download() as caught:
        page.locator("[data-testid=drill-export-csv]").click()
    download = caught.value
    assert download.suggested_filename.startswith("e2e_probe-flagged-")
    path = tmp_path / "list.csv"
    download.save_as(path)
    lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    names = sorted(line[1] for line in lines[1:])
    assert names == ["'=cmd|' /C calc'!A0", "王建国"]

    # Searching the list by name narrows it as one types.
    page.locator("[data-testid=drill-search]").press_sequentially("王")
    expect(rows).to_have_count(1)


def test_the_dashboard_fits_a_phone(new_page: Any, sign_in: Any, probe: dict[str, Any]) -> None:
    page = new_page(viewport=PHONE)
    sign_in(page, "head.cardiology")
    page.goto("/analytics/")
    card = page.locator("[data-metric=e2e_probe][data-testid=metric-card]")
    expect(card).to_be_visible(timeout=30_000)
    chart_drawn(page, "[data-metric=e2e_probe] canvas[data-analytics-chart]")
    expect(page.locator(".metric-card.loading")).to_have_count(0, timeout=60_000)
    wider = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wider == 0
    box = card.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]

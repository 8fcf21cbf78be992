"""A nurse opens a patient's vitals tab, enters a blood pressure, and sees it in the chart and
the table without the page reloading; the crisis reading shows up on the alerts tab. Through a
real Chromium, at desktop and phone widths.

Screenshots go to test-artifacts/screenshots/ as vitals-*.png.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from careloop.accounts.models import CareTeam
from careloop.kit.clock import utc_now
from careloop.observations import services
from careloop.patients import models as pm
from tests.e2e.conftest import ARTIFACTS, PHONE

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"


def snap(page: Any, name: str) -> None:
    """A screenshot of the page's top; and the page is no wider than its window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    page.screenshot(
        path=str(SHOTS / f"{name}.png"),
        full_page=True,
        caret="initial",  # hiding the caret leaves style="" on inputs, which htmx then copies
        clip={"x": 0, "y": 0, "width": width, "height": min(height, 3000)},
    )
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


def chart_points(page: Any, kind: str, dataset: int = 0) -> list[float]:
    """The y values Chart.js is drawing for one dataset of one chart."""
    return list(
        page.evaluate(
            """([kind, i]) => {
                const canvas = document.querySelector(`canvas[data-vitals-chart=${kind}]`);
                const chart = canvas && window.Chart && window.Chart.getChart(canvas);
                return chart ? chart.data.datasets[i].data.map((d) => d.y) : [];
            }""",
            [kind, dataset],
        )
    )


def wait_for_chart(page: Any, kind: str) -> None:
    page.wait_for_function(
        """(kind) => {
            const canvas = document.querySelector(`canvas[data-vitals-chart=${kind}]`);
            return !!(canvas && window.Chart && window.Chart.getChart(canvas));
        }""",
        arg=kind,
    )


@pytest.fixture
def monitored(site: str, world: Any, make_patient: Any) -> pm.Patient:
    """A cardiology patient with three weeks of home readings."""
    patient = make_patient(name="李秀英", sex="female", date_of_birth="1950-02-11")
    team = CareTeam.objects.create(
        department=world.cardio,
        name="高血压随访组",
        responsible_doctor=world.staff["doctor.cardiology"],
    )
    pm.PatientDepartment.objects.filter(patient=patient).update(care_team=team)
    nurse = world.actor("nurse.cardiology")
    now = utc_now()
    items = []
    for day in range(20, 0, -1):
        morning = now - timedelta(days=day, hours=2)
        items.append(
            {
                "code": "bp",
                "systolic": 128 + (day * 7) % 19,
                "diastolic": 78 + (day * 5) % 11,
                "effective": morning.isoformat(),
                "device": "omron-hem-7136",
            }
        )
        items.append(
            {"code": "heart_rate", "value": 66 + day % 9, "effective": morning.isoformat()}
        )
        if day % 2 == 0:
            items.append(
                {
                    "code": "glucose",
                    "value": 5.8 + (day % 5) * 0.4,
                    "context": "fasting",
                    "effective": morning.isoformat(),
                }
            )
            items.append(
                {
                    "code": "glucose",
                    "value": 8.4 + (day % 3) * 0.9,
                    "context": "postprandial",
                    "effective": (morning + timedelta(hours=4)).isoformat(),
                }
            )
        if day % 5 == 0:
            items.append(
                {"code": "weight", "value": 61.5 + day * 0.05, "effective": morning.isoformat()}
            )
    report = services.ingest(nurse, items, patient_id=patient.pk, source="device", origin="test")
    assert report.rejected == 0, report.problems
    services.record_symptom(nurse, patient.pk, symptom="头晕", severity=4)
    return patient


def test_a_nurse_enters_a_blood_pressure_and_the_chart_shows_it(
    new_page: Any, sign_in: Any, monitored: pm.Patient
) -> None:
    p = monitored
    page = new_page()
    sign_in(page, "nurse.cardiology")
    page.goto(f"/patients/{p.pk}/?tab=overview")
    # The tab arrives by htmx; Chart.js is fetched when the first chart needs it.
    page.locator("[data-tab=vitals]").click()
    expect(page.locator("[data-testid=vitals-tab]")).to_be_visible()
    wait_for_chart(page, "bp")
    wait_for_chart(page, "glucose")
    before = chart_points(page, "bp")
    assert len(before) == 20
    expect(page.locator("[data-testid=reading-row]")).to_have_count(20)
    # The reading form shows the blood pressure fields only.
    expect(page.locator("#id_systolic")).to_be_visible()
    expect(page.locator("#id_value")).to_be_hidden()
    snap(page, "vitals-desktop-tab")

    # An impossible value is refused next to its field, and nothing reloads.
    page.locator("#id_systolic").fill("400")
    page.locator("#id_diastolic").fill("90")
    page.locator("[data-testid=save-reading]").click()
    expect(page.locator("[data-testid=error-systolic]")).to_contain_text("40")
    assert len(chart_points(page, "bp")) == 20

    # A crisis reading: saved, in the table and the chart at once.
    page.locator("#id_systolic").fill("186")
    page.locator("#id_diastolic").fill("116")
    page.locator("[data-testid=save-reading]").click()
    expect(page.locator("[data-testid=reading-saved]")).to_contain_text("186/116")
    expect(page.locator("[data-testid=reading-row]").first).to_contain_text("186/116")
    page.wait_for_function(
        """() => {
            const c = document.querySelector('canvas[data-vitals-chart=bp]');
            const chart = c && window.Chart.getChart(c);
            return chart && chart.data.datasets[0].data.length === 21;
        }"""
    )
    after = chart_points(page, "bp")
    assert after[-1] == 186.0 and chart_points(page, "bp", 1)[-1] == 116.0
    expect(page.locator("[data-testid=error-systolic]")).to_have_count(0)
    snap(page, "vitals-desktop-saved")

    # Choosing glucose shows its value, unit and context fields.
    page.locator("#id_kind").select_option("glucose")
    expect(page.locator("#id_value")).to_be_visible()
    expect(page.locator("#id_unit")).to_be_visible()
    expect(page.locator("#id_systolic")).to_be_hidden()

    # The range picker redraws the charts with a week of readings.
    page.locator("[data-testid=range-7d]").click()
    expect(page.locator("[data-testid=range-7d]")).to_have_attribute("aria-current", "true")
    page.wait_for_function(
        """() => {
            const c = document.querySelector('canvas[data-vitals-chart=bp]');
            const chart = c && window.Chart && window.Chart.getChart(c);
            return chart && chart.data.datasets[0].data.length < 21;
        }"""
    )
    week = chart_points(page, "bp")
    assert 6 <= len(week) <= 8 and week[-1] == 186.0

    # A reaction to a drug, reported from the same tab.
    page.locator("[data-testid=add-reaction]").click()
    page.locator("#reaction-medication").select_option("other")
    page.locator("#reaction-drug").fill("阿司匹林肠溶片")
    page.locator("#reaction-symptom").fill("黑便")
    page.locator("#reaction-severity").select_option("3")
    page.locator("[data-testid=save-reaction]").click()
    expect(page.locator("[data-testid=reaction-saved]")).to_be_visible()
    expect(page.locator("[data-testid=reactions]")).to_contain_text("阿司匹林肠溶片")

    # A personal blood pressure target moves the chart's band.
    page.locator("[data-testid=edit-thresholds]").click()
    expect(page.locator("[data-testid=threshold-rule]")).to_have_value("ph-bp-followup")
    page.locator("#threshold-p_sys").fill("150")
    page.locator("#threshold-p_dia").fill("95")
    page.locator("#threshold-reason").fill("高龄，目标放宽")
    page.locator("[data-testid=save-threshold]").click()
    expect(page.locator("[data-testid=threshold-saved]")).to_be_visible()
    expect(page.locator("[data-testid=thresholds-set]")).to_contain_text("150")
    expect(page.locator("[data-testid=chart-caption-bp]")).to_contain_text("150/95")
    wait_for_chart(page, "bp")
    snap(page, "vitals-desktop-forms")

    # The crisis reading raised an alert; it is on the alerts tab, linked to its page.
    page.locator("[data-tab=alerts]").click()
    expect(page.locator("[data-testid=alert-row]").first).to_be_visible()
    expect(page.locator("[data-testid=alerts-tab]")).to_contain_text("186/116")
    expect(page.locator("[data-testid=alerts-tab]")).to_contain_text("阿司匹林肠溶片")
    link = page.locator("[data-testid=alert-link]").first
    assert (link.get_attribute("href") or "").startswith("/alerts/")
    expect(page.locator("[data-tab=alerts]")).to_have_attribute("aria-selected", "true")
    snap(page, "vitals-desktop-alerts")


def test_the_vitals_tab_fits_a_phone(new_page: Any, sign_in: Any, monitored: pm.Patient) -> None:
    p = monitored
    page = new_page(viewport=PHONE)
    sign_in(page, "nurse.cardiology")
    page.goto(f"/patients/{p.pk}/?tab=vitals")
    wait_for_chart(page, "bp")
    wait_for_chart(page, "weight")
    widths = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-vitals-chart]')]
                   .map((c) => c.getBoundingClientRect().right)"""
    )
    assert widths and max(widths) <= PHONE["width"]
    snap(page, "vitals-phone-tab")
    zone = ZoneInfo(p.time_zone)
    today = utc_now().astimezone(zone).strftime("%Y-%m-%d")
    page.locator("#id_systolic").fill("181")
    page.locator("#id_diastolic").fill("112")
    page.locator("[data-testid=save-reading]").click()
    expect(page.locator("[data-testid=reading-row]").first).to_contain_text("181/112")
    expect(page.locator("[data-testid=reading-row]").first).to_contain_text(today)
    snap(page, "vitals-phone-saved")
    page.locator("[data-tab=alerts]").click()
    expect(page.locator("[data-tab=alerts]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("[data-testid=alert-row]").first).to_contain_text("181/112")
    snap(page, "vitals-phone-alerts")

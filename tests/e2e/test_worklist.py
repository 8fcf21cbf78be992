"""A nurse works her day from the worklist in a real Chromium: she acknowledges and resolves an
urgent blood-pressure alert, records "agreed to visit" for an overdue patient (who then leaves
the list), and dismisses a routine alert after confirming. Screenshots at 1280 and 360 px go to
test-artifacts/screenshots/ as worklist-*.png.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.alerts import models as am
from careloop.appointments import models as apm
from tests.alerts.conftest import Work
from tests.e2e.conftest import ARTIFACTS, PHONE

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"


def snap(page: Any, name: str) -> None:
    """A screenshot of the top of the page; and no page is wider than its window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    limit = 2400 if width < 600 else 2000
    page.screenshot(
        path=str(SHOTS / f"{name}.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, limit)},
    )
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


def settle(page: Any) -> None:
    """Let the counts refresh an action set off finish before the next page load (the SQLite
    test database is shared in memory, where two writing requests at once lock each other out)."""
    page.wait_for_load_state("networkidle")


@pytest.fixture
def day(site: str, world: Any) -> dict[str, Any]:
    """A crisis reading from a patient's device, a call due today and an overdue patient."""
    work = Work(world)
    crisis = work.patient(name="王建国", sex="male", date_of_birth="1952-06-01")
    work.diagnose(crisis, "I10")
    work.bp(crisis, 148, 92, ago=timedelta(days=3))
    work.bp(crisis, 156, 94, ago=timedelta(days=1))
    work.bp(crisis, 186, 114)
    caller = work.patient(name="李秀英", sex="female", date_of_birth="1958-09-12")
    work.task(caller, reason="no acknowledgement")
    overdue = work.patient(name="张伟", date_of_birth="1949-01-20")
    work.overdue(overdue, days=21)
    trend = work.alert(
        work.patient(name="刘芳", sex="female", date_of_birth="1961-03-08"),
        priority="routine",
        rule="bp-trend-up",
        due_in=timedelta(hours=20),
        text="7-day mean systolic up 12 mmHg",
    )
    return {
        "crisis": crisis,
        "alert": am.Alert.objects.get(patient=crisis, rule="bp-crisis"),
        "overdue": overdue,
        "routine": trend,
    }


def test_a_nurse_works_her_day_from_the_worklist(
    new_page: Any, sign_in: Any, day: dict[str, Any], world: Any
) -> None:
    page = new_page()
    sign_in(page, "nurse.cardiology")
    page.goto("/patients/")
    page.locator("[data-testid=nav-worklist]").click()
    expect(page.locator("[data-testid=section-urgent]")).to_be_visible()
    alert = day["alert"]

    # The crisis is the first row, with the reading, a sparkline and who it is for.
    first = page.locator("[data-testid=work-row]").first
    expect(first).to_have_attribute("data-id", str(alert.pk))
    expect(first.locator("[data-testid=row-patient]")).to_have_text("王建国")
    expect(first.locator("[data-testid=row-reason]")).to_contain_text("186/114")
    expect(first.locator("svg.spark polyline")).to_have_count(1)
    expect(first.locator("[data-testid=row-owner]")).to_contain_text("doctor.cardiology")
    expect(page.locator("[data-testid=count-overdue] strong")).to_have_text("1")
    snap(page, "worklist-desktop")

    # Acknowledge: the row is swapped in place and shows who took it on.
    row = page.locator(f"#row-alert-{alert.pk}")
    row.locator("[data-testid=acknowledge]").click()
    expect(row.locator("[data-testid=row-status]")).to_be_visible()
    expect(row.locator("[data-testid=acknowledge]")).to_have_count(0)
    alert.refresh_from_db()
    assert alert.status == am.Alert.Status.ACKNOWLEDGED

    # Resolve with an outcome and a note.
    row.locator("[data-testid=resolve-open]").click()
    snap(page, "worklist-desktop-resolve")
    row.locator("[data-testid=resolve-outcome]").select_option("medication_changed")
    row.locator("[data-testid=resolve-note]").fill("电话联系，氨氯地平加量，明早复测")
    row.locator("[data-testid=resolve]").click()
    done = page.locator(f"#row-alert-{alert.pk}[data-testid=work-done]")
    expect(done).to_be_visible()
    alert.refresh_from_db()
    assert (alert.status, alert.outcome, alert.note) == (
        "resolved",
        "medication_changed",
        "电话联系，氨氯地平加量，明早复测",
    )
    assert alert.closed_by == world.staff["nurse.cardiology"]

    # The overdue patient agreed to come: the row is done, and after a reload they are gone.
    patient = day["overdue"]
    overdue_row = page.locator(f"#row-overdue-{patient.pk}")
    expect(overdue_row.locator("[data-testid=row-days]")).to_contain_text("21")
    overdue_row.locator("[data-testid=agreed-to-visit]").click()
    expect(page.locator(f"#row-overdue-{patient.pk}[data-testid=work-done]")).to_be_visible()
    result = apm.CallResult.objects.get(patient=patient)
    assert result.outcome == "agreed_to_visit"
    assert result.remind_on == result.called_on + timedelta(days=30)
    expect(page.locator("[data-testid=count-overdue] strong")).to_have_text("0")
    settle(page)
    page.reload()
    expect(page.locator(f"#row-overdue-{patient.pk}")).to_have_count(0)
    expect(page.locator(f"#row-alert-{alert.pk}")).to_have_count(0)

    # Dismissing asks first; saying no leaves the alert alone, yes dismisses it.
    routine = day["routine"]
    row = page.locator(f"#row-alert-{routine.pk}")
    row.locator("[data-testid=dismiss-open]").click()
    row.locator("[data-testid=dismiss-reason]").select_option("known_condition")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("[data-testid=dismiss]").click()
    routine.refresh_from_db()
    assert routine.status == "open"
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("[data-testid=dismiss]").click()
    expect(page.locator(f"#row-alert-{routine.pk}[data-testid=work-done]")).to_be_visible()
    routine.refresh_from_db()
    assert (routine.status, routine.outcome) == ("dismissed", "known_condition")

    # The alert's own page tells the story.
    settle(page)
    page.goto(f"/alerts/{alert.pk}/")
    expect(page.locator("[data-testid=alert-closing]")).to_contain_text("电话联系，氨氯地平加量")
    snap(page, "worklist-desktop-alert")


def test_the_worklist_on_a_phone(new_page: Any, sign_in: Any, day: dict[str, Any]) -> None:
    phone = new_page(viewport=PHONE)
    sign_in(phone, "nurse.cardiology")
    phone.goto("/worklist/")
    expect(phone.locator("[data-testid=work-row]").first).to_be_visible()
    snap(phone, "worklist-phone")
    alert = day["alert"]
    row = phone.locator(f"#row-alert-{alert.pk}")
    row.locator("[data-testid=resolve-open]").click()
    snap(phone, "worklist-phone-resolve")
    phone.goto(f"/alerts/{alert.pk}/")
    snap(phone, "worklist-phone-alert")
    phone.goto("/alerts/")
    snap(phone, "worklist-phone-alerts")

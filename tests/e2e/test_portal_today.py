"""A patient clears today's tasks on a phone (Chromium at 360×740): confirms a dose and enters a
blood pressure at crisis level; the nurse then finds the alert at the top of her worklist.
Screenshots of Today and History at 360 px and at desktop width go to
test-artifacts/screenshots/ as portal-today-*.png and portal-history-*.png.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from careloop.alerts import models as am
from careloop.appointments import models as apm
from careloop.appointments import services as appointment_services
from careloop.kit.clock import utc_now
from careloop.observations import services as observation_services
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.alerts.conftest import Work
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.portal.client import portal_token

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"


def snap(page: Any, name: str) -> None:
    """A screenshot of the page; and no page is wider than its window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


@pytest.fixture
def patient(site: str, world: Any) -> Any:
    """A cardiology patient with two doses today and two weeks of home readings."""
    work = Work(world)
    p = work.patient(name="王建国", preferred_language="en")
    now = utc_now()
    for hours in (1, 14):
        reminder_services.schedule_one(
            organisation_id=p.organisation_id,
            patient_id=p.pk,
            kind="medication",
            source_key=f"e2e:{p.pk}:{hours}",
            due_at=now - timedelta(minutes=30) if hours == 1 else now + timedelta(minutes=1),
            time_zone=p.time_zone,
            payload={
                "title": "按时服药",
                "title_en": "Take your medicine",
                "medication": "Amlodipine" if hours == 1 else "Metformin",
                "dose": "5 mg" if hours == 1 else "500 mg",
            },  # fmt: skip
        )
    items = []
    for day in range(1, 15):
        at = (now - timedelta(days=day, hours=2)).isoformat()
        items.append({"code": "bp", "systolic": 128 + day % 5 * 3, "diastolic": 80 + day % 4,
                      "effective": at})  # fmt: skip
        items.append({"code": "glucose", "value": 5.6 + (day % 3) * 0.6, "context": "fasting",
                      "effective": at})  # fmt: skip
        if day % 3 == 0:
            items.append({"code": "weight", "value": 72.4 - day * 0.05, "effective": at})
    report = observation_services.ingest(
        None, items, organisation_id=p.organisation_id, patient_id=p.pk, source="patient"
    )
    assert report.rejected == 0, report.as_dict()
    head = world.actor("head.cardiology")
    today = utc_now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    appointment_services.save_schedule(
        head,
        {
            "name": "高血压复诊",
            "department": world.cardio.pk,
            "doctor": world.staff["doctor.cardiology"].pk,
            "weekdays": [str(d) for d in range(1, 8)],
            "sessions": "08:00-11:00",
            "slot_minutes": 60,
            "capacity": 3,
            "valid_from": (today + timedelta(days=1)).isoformat(),
            "valid_to": (today + timedelta(days=3)).isoformat(),
            "active": "on",
        },
    )
    return p


def portal_page(new_page: Any, site: str, patient: Any, viewport: dict[str, int]) -> Any:
    page = new_page(viewport=viewport, locale="en-GB")
    page.context.add_cookies(
        [{"name": "careloop_portal", "value": portal_token(patient), "url": site}]
    )
    return page


def test_a_patient_clears_today_and_the_nurse_sees_the_alert(
    new_page: Any, site: str, sign_in: Any, patient: Any
) -> None:
    phone = portal_page(new_page, site, patient, PHONE)
    phone.goto("/portal/")
    expect(phone.locator("h1")).to_have_text("Today")
    snap(phone, "portal-today-phone")

    # Confirm the dose due now: the card is swapped in place and says so.
    due = rm.Occurrence.objects.get(patient=patient, payload__medication="Amlodipine")
    card = phone.locator(f"#dose-{due.pk}")
    card.locator("[data-testid=dose-taken]").click()
    expect(card.locator("[data-testid=dose-done]")).to_contain_text("Taken")
    expect(card.locator("[data-testid=dose-taken]")).to_have_count(0)
    assert rm.IntakeEvent.objects.get(occurrence=due).status == "taken"

    # An impossible value is refused next to the field and stays in it.
    bp = phone.locator("[data-testid=reading-bp]")
    bp.locator("input[name=bp-systolic]").fill("400")
    bp.locator("input[name=bp-diastolic]").fill("90")
    bp.locator("[data-testid=reading-save]").click()
    bp = phone.locator("[data-testid=reading-bp]")
    expect(bp.locator("[data-testid=error-systolic]")).to_contain_text("not a possible reading")
    expect(bp.locator("input[name=bp-systolic]")).to_have_value("400")

    # A crisis reading: stored, judged against the target, and the care team is told.
    bp.locator("input[name=bp-systolic]").fill("182")
    bp.locator("input[name=bp-diastolic]").fill("112")
    bp.locator("[data-testid=reading-save]").click()
    feedback = phone.locator("[data-testid=reading-bp] [data-testid=reading-feedback]")
    expect(feedback).to_contain_text("above your target of 140/90")
    expect(feedback).to_contain_text("Your care team has been told.")
    snap(phone, "portal-today-phone-done")
    alert = am.Alert.objects.get(patient=patient, rule="bp-crisis")

    # History at 360 px: the charts are drawn.
    phone.goto("/portal/history")
    expect(phone.locator("canvas[data-chart=bp]")).to_be_visible()
    width = phone.evaluate(
        "document.querySelector('canvas[data-chart=bp]').getBoundingClientRect().width"
    )
    assert 250 < width <= 360
    expect(phone.locator("[data-testid=latest-readings]")).to_contain_text("182/112")
    snap(phone, "portal-history-phone")

    # Book a revisit from Today: the first free time, then it is listed with its actions.
    phone.goto("/portal/")
    phone.locator("[data-testid=book-revisit]").first.click()
    expect(phone.locator("h1")).to_have_text("Book a revisit")
    snap(phone, "portal-appointments-book-phone")
    phone.locator(".slot-grid form button").first.click()
    expect(phone.locator(".flash")).to_contain_text("Your revisit is booked for")
    booked = apm.Appointment.objects.get(patient=patient)
    expect(phone.locator(f"[data-testid=appointment-{booked.pk}]")).to_be_visible()
    snap(phone, "portal-appointments-phone")

    desktop = portal_page(new_page, site, patient, DESKTOP)
    desktop.goto("/portal/")
    snap(desktop, "portal-today-desktop")
    desktop.goto("/portal/history?days=7")
    expect(desktop.locator("canvas[data-chart=glucose]")).to_be_visible()
    snap(desktop, "portal-history-desktop")

    # The nurse finds the alert at the top of her worklist.
    nurse = new_page()
    sign_in(nurse, "nurse.cardiology")
    nurse.goto("/worklist/")
    row = nurse.locator(f"[data-testid=work-row][data-id='{alert.pk}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-testid=row-patient]")).to_have_text("王建国")
    expect(row.locator("[data-testid=row-reason]")).to_contain_text("182/112")

"""A patient reads on a phone (360×740): the Learn tab, a visit summary, an article read to the
end; the nurse sees the item's read count go up. Screenshots at 360 px and desktop go to
test-artifacts/screenshots/ as education-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.education import models as em
from careloop.kit.clock import utc_now
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.education import helpers as h
from tests.portal.client import portal_token

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"

ARTICLE = "\n\n".join(
    [
        "# Before you measure",
        "- No smoking, coffee or exercise in the 30 minutes before.\n"
        "- Empty your bladder, then sit quietly for 5 minutes.",
        "# While you measure",
        "- Sit with your back supported, feet flat, arm on a table, cuff at heart level.\n"
        "- Do not talk. Wait one minute, measure again, and write down both readings.",
        "# When to measure",
        *[
            f"Day {n}: within an hour of getting up and before bed. Enter the readings in "
            "CareLoop so your care team sees them."
            for n in range(1, 9)
        ],
        "**If it is 180/110 or higher, rest 5 minutes and measure again; if it is still that "
        "high, contact us at once.**",
    ]
)


def snap(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    page.screenshot(
        path=str(SHOTS / f"education-{name}.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, 2400)},
    )
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


@pytest.fixture
def reader(site: str, world: Any) -> dict[str, Any]:
    p = h.patient(world, "en", name="Wang Jianguo")
    h.condition(world, p, "I10", "Essential hypertension")
    h.record(
        world,
        p,
        "allergies",
        {
            "substance": "Penicillin",
            "category": "medication",
            "reaction": "rash",
            "severity": "severe",
        },
    )
    h.record(
        world,
        p,
        "medications",
        {
            "name": "Amlodipine",
            "dose": "5",
            "unit": "mg",
            "route": "po",
            "frequency": "bid",
            "status": "active",
        },
    )
    encounter = h.visit(world, p, "I10 Essential hypertension")
    article = h.item(
        world, title="Measuring your blood pressure at home", body=ARTICLE, language="en"
    )
    em.Delivery.objects.create(
        organisation=world.org, patient=p, item=article, delivered_at=utc_now()
    )
    h.item(
        world,
        title="Less salt, lower blood pressure",
        language="en",
        for_everyone=True,
        body="Keep to less than 5 g of salt a day.",
    )
    return {
        "patient": p,
        "article": article,
        "summary": em.VisitSummary.objects.get(encounter=encounter),
    }


def test_patient_reads_and_nurse_sees_the_count(
    site: str, new_page: Any, sign_in: Any, reader: dict[str, Any]
) -> None:
    article = reader["article"]
    nurse = new_page(DESKTOP, locale="en-GB")
    sign_in(nurse, "nurse.cardiology")
    nurse.goto(f"/education/{article.pk}/")
    expect(nurse.get_by_test_id("stat-read")).to_have_text("0")

    phone = new_page(PHONE, locale="en-GB")
    phone.context.add_cookies(
        [
            {"name": "careloop_portal", "value": portal_token(reader["patient"]), "url": site},
            {"name": "django_language", "value": "en", "url": site},
        ]
    )
    phone.goto("/portal/learn/")
    expect(phone.get_by_test_id("tab-learn")).to_have_attribute("aria-current", "page")
    expect(phone.get_by_test_id("summary-card")).to_have_count(1)
    expect(phone.get_by_test_id("new-badge")).to_have_count(1)
    snap(phone, "360-learn")

    phone.get_by_test_id("summary-card").click()
    expect(phone.get_by_test_id("summary-medications")).to_contain_text("Amlodipine")
    expect(phone.get_by_test_id("summary-medications")).to_contain_text("20:00")
    expect(phone.get_by_test_id("summary-warnings")).to_contain_text("120")
    snap(phone, "360-summary")

    phone.goto("/portal/learn/")
    phone.get_by_text("Measuring your blood pressure at home").click()
    expect(phone.get_by_test_id("learn-article")).to_contain_text("Before you measure")
    snap(phone, "360-article")
    phone.mouse.wheel(0, 6000)
    expect(phone.locator("[data-read-done]")).to_be_visible()

    nurse.reload()
    expect(nurse.get_by_test_id("stat-read")).to_have_text("1")
    expect(nurse.get_by_test_id("stat-opened")).to_have_text("1")
    snap(nurse, "desktop-item")
    nurse.goto("/education/")
    expect(nurse.get_by_test_id("edu-items")).to_contain_text("Less salt")
    snap(nurse, "desktop-list")
    nurse.goto(f"/education/patients/{reader['patient'].pk}/summaries/{reader['summary'].pk}/")
    expect(nurse.get_by_test_id("visit-summary")).to_contain_text("Amlodipine")
    snap(nurse, "desktop-summary")
    nurse.goto(f"/education/{article.pk}/edit/")
    nurse.get_by_test_id("preview").click()
    expect(nurse.get_by_test_id("item-preview")).to_contain_text("Before you measure")
    snap(nurse, "desktop-form")

    phone.goto("/portal/learn/")
    expect(phone.get_by_test_id("new-badge")).to_have_count(0)
    desktop_patient = new_page(DESKTOP, locale="en-GB")
    desktop_patient.context.add_cookies(phone.context.cookies())
    desktop_patient.goto("/portal/learn/")
    snap(desktop_patient, "desktop-learn")

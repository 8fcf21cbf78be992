"""A patient answers a PHQ-9 on a phone (Chromium at 360×740) with item 9 positive: the
follow-up question appears live, the result page offers support without alarming wording, and
the nurse finds the urgent alert in her worklist. Screenshots of the answer page and the
result at 360 px go to test-artifacts/screenshots/ as questionnaire-*.png.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.alerts import models as am
from careloop.kit.clock import utc_now
from careloop.questionnaires import models as qm
from careloop.questionnaires import services
from tests.alerts.conftest import Work
from tests.e2e.conftest import ARTIFACTS, PHONE
from tests.portal.client import portal_token

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"
SHIPPED = "https://careloop.dev/fhir/Questionnaire/"


def snap(page: Any, name: str) -> None:
    """A screenshot of the page; and no page is wider than its window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


@pytest.fixture
def patient(site: str, world: Any) -> Any:
    work = Work(world)
    return work.patient(name="李秀兰", preferred_language="en")


def test_phq9_item9_positive_reaches_the_nurse(
    new_page: Any, site: str, sign_in: Any, world: Any, patient: Any
) -> None:
    services.load_shipped()
    phq = qm.Questionnaire.objects.get(organisation__isnull=True, url=SHIPPED + "phq-9")
    services.assign(
        world.actor("nurse.cardiology"),
        patient_id=patient.pk,
        questionnaire_id=phq.pk,
        due_at=utc_now() + timedelta(days=2),
    )
    phone = new_page(viewport=PHONE, locale="en-GB")
    phone.context.add_cookies(
        [{"name": "careloop_portal", "value": portal_token(patient), "url": site}]
    )
    phone.goto("/portal/questionnaires/")
    phone.get_by_test_id("questionnaire-open").click()
    expect(phone.locator("h1")).to_have_text("Patient Health Questionnaire (PHQ-9)")
    expect(phone.get_by_test_id("q-progress")).to_have_text("Step 1 of 2")
    for number in range(1, 6):
        phone.get_by_test_id(f"q-phq9-{number}").get_by_text("Not at all").click()
    snap(phone, "questionnaire-answer-phone")
    phone.get_by_test_id("q-next").click()
    expect(phone.get_by_test_id("q-progress")).to_have_text("Step 2 of 2")
    difficulty = phone.get_by_test_id("q-phq9-difficulty")
    expect(difficulty).to_be_hidden()
    for number in range(6, 9):
        phone.get_by_test_id(f"q-phq9-{number}").get_by_text("Not at all").click()
    expect(difficulty).to_be_hidden()  # all "not at all" so far: the follow-up stays hidden
    phone.get_by_test_id("q-phq9-9").get_by_text("Several days").click()
    expect(difficulty).to_be_visible()  # enableWhen applied live
    difficulty.get_by_text("Somewhat difficult").click()
    snap(phone, "questionnaire-answer-phone-2")
    phone.get_by_test_id("q-submit").click()
    result = phone.get_by_test_id("q-result")
    expect(result).to_be_visible()
    expect(phone.get_by_test_id("q-crisis")).to_contain_text("12356")
    expect(result).to_contain_text("Your care team has been told and will contact you soon")
    expect(result).not_to_contain_text("severe")
    expect(result).not_to_contain_text("few signs")  # item 9 outweighs a low total
    snap(phone, "questionnaire-result-phone")

    alert = am.Alert.objects.get(patient=patient, rule="phq9-item9")
    assert alert.priority == "stat"
    nurse = new_page(locale="en-GB")
    sign_in(nurse, "nurse.cardiology")
    nurse.goto("/worklist/")
    link = nurse.locator(f"a[href='/alerts/{alert.pk}/']")
    expect(link).to_be_visible()
    expect(link).to_contain_text("PHQ-9")
    snap(nurse, "questionnaire-worklist-desktop")


def test_elder_mode_one_question_per_screen_with_save_and_resume(
    new_page: Any, site: str, world: Any, patient: Any
) -> None:
    services.load_shipped()
    postop = qm.Questionnaire.objects.get(
        organisation__isnull=True, url=SHIPPED + "postop-symptoms"
    )
    services.assign(
        world.actor("nurse.cardiology"), patient_id=patient.pk, questionnaire_id=postop.pk
    )
    phone = new_page(viewport=PHONE, locale="en-GB")
    phone.context.add_cookies(
        [
            {"name": "careloop_portal", "value": portal_token(patient), "url": site},
            {"name": "careloop_elder", "value": "1", "url": site},
        ]
    )
    phone.goto("/portal/questionnaires/")
    phone.get_by_test_id("questionnaire-open").click()
    expect(phone.locator(".q-item:not([hidden])")).to_have_count(1)
    phone.locator("input[name='q:pain']").fill("9")
    phone.get_by_test_id("q-next").click()
    phone.get_by_test_id("q-fever").get_by_text("Yes").click()
    snap(phone, "questionnaire-elder-phone")
    phone.get_by_test_id("q-save").click()
    expect(phone.get_by_test_id("questionnaire-open")).to_have_text("Carry on")
    phone.get_by_test_id("questionnaire-open").click()
    expect(phone.locator("input[name='q:pain']")).to_have_value("9")

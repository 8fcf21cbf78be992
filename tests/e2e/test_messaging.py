"""A patient on a phone asks the care team a question with a photo; a nurse answers from the
inbox on a desktop; the patient reads the answer. Screenshots (portal thread at 360 px, inbox
at 1280 px) go to test-artifacts/screenshots/ as messaging-*.png.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.accounts.models import CareTeam
from careloop.messaging.models import Message, ReplyTemplate, Thread
from careloop.patients import models as pm
from tests.e2e.conftest import ARTIFACTS, PHONE
from tests.messaging.support import PNG, sent_reminder
from tests.portal.client import portal_token

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"


def snap(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


@pytest.fixture
def patient(site: str, world: Any, make_patient: Any) -> pm.Patient:
    p = make_patient(name="陈桂兰", preferred_language="en")
    team = CareTeam.objects.create(
        department=world.cardio,
        name="心衰随访组",
        responsible_doctor=world.staff["doctor.cardiology"],
    )
    pm.PatientDepartment.objects.filter(patient=p).update(care_team=team)
    ReplyTemplate.objects.create(
        organisation=world.org,
        title="Keep taking",
        body="Please keep taking your medicine as prescribed.",
        language="en",
    )
    return p


def test_patient_asks_nurse_answers_patient_reads(
    new_page: Any, sign_in: Any, site: str, world: Any, patient: pm.Patient, tmp_path: Any
) -> None:
    phone = new_page(viewport=PHONE, locale="en-GB")
    phone.context.add_cookies(
        [{"name": "careloop_portal", "value": portal_token(patient), "url": site}]
    )
    phone.context.add_cookies([{"name": "django_language", "value": "en", "url": site}])
    phone.goto("/portal/messages/")
    expect(phone.get_by_test_id("new-thread-form")).to_be_visible()
    phone.get_by_test_id("subject").fill("Ankle swelling")
    phone.get_by_test_id("body").fill("My ankles are swollen since yesterday. Should I worry?")
    photo = tmp_path / "ankle.png"
    photo.write_bytes(PNG)
    phone.get_by_test_id("file").set_input_files(str(photo))
    phone.get_by_test_id("send").click()
    expect(phone.get_by_test_id("message")).to_have_count(1)
    expect(phone.get_by_test_id("urgent-notice")).to_have_count(0)
    thread = Thread.objects.get(patient=patient)
    assert thread.messages.get().attachments.count() == 1

    # A reminder the dispatcher sent meanwhile shows in the same timeline, already read.
    Thread.objects.filter(pk=thread.pk).update(created_at=thread.created_at - timedelta(hours=1))
    sent_reminder(patient, at=thread.created_at - timedelta(minutes=30))

    desk = new_page(locale="en-GB")
    nurse = world.staff["nurse.cardiology"]
    nurse.language = "en"
    nurse.save(update_fields=["language"])
    sign_in(desk, "nurse.cardiology")
    desk.goto("/inbox/")
    expect(desk.get_by_test_id("count-unassigned")).to_have_text("1")
    expect(desk.get_by_test_id("inbox-row")).to_contain_text("陈桂兰")
    snap(desk, "messaging-inbox-1280")
    desk.get_by_test_id("open-thread").click()
    expect(desk.get_by_test_id("timeline")).to_contain_text("ankles are swollen")
    desk.get_by_test_id("template-picker").select_option(label="Keep taking (English)")
    expect(desk.get_by_test_id("reply-body")).to_have_value(
        "Please keep taking your medicine as prescribed."
    )
    desk.get_by_test_id("reply-body").fill(
        "Raise your legs and weigh yourself tomorrow morning. "
        "Please keep taking your medicine as prescribed."
    )
    desk.get_by_test_id("send-reply").click()
    expect(desk.get_by_test_id("thread-status")).to_have_text("Waiting for patient")
    snap(desk, "messaging-thread-1280")

    phone.goto("/portal/messages/")
    expect(phone.get_by_test_id("thread-unread")).to_have_text("1")
    snap(phone, "messaging-portal-list-360")
    phone.get_by_test_id(f"thread-{thread.pk}").click()
    expect(phone.get_by_test_id("timeline")).to_contain_text("weigh yourself")
    expect(phone.get_by_test_id("new-mark")).to_have_count(1)
    expect(phone.get_by_test_id("reminder")).to_have_count(1)
    snap(phone, "messaging-portal-thread-360")
    assert not Message.objects.filter(
        thread=thread, author_kind="staff", read_by_patient_at__isnull=True
    ).exists()

    # An urgent follow-up shows the emergency notice at once.
    phone.get_by_test_id("body").fill("Now I have chest pain")
    phone.get_by_test_id("send").click()
    expect(phone.get_by_test_id("urgent-notice")).to_contain_text("call 120 now")
    snap(phone, "messaging-portal-urgent-360")

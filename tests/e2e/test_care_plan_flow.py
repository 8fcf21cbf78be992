"""A nurse enrols a patient in the hypertension plan; the 08:00 dose reminder goes out; the
patient answers from a phone; the nurse's calendar shows the answer. Through a real Chromium.

Screenshots (desktop and 360 px) go to test-artifacts/screenshots/ as plan-*.png.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from careloop.alerts import services as task_services
from careloop.careplans import domain
from careloop.careplans import services as plan_services
from careloop.channels.models import OutboxMessage
from careloop.kit.clock import utc_now
from careloop.patients import services as patient_services
from careloop.reminders import dispatcher
from careloop.reminders import models as rm
from tests.e2e.conftest import ARTIFACTS, PHONE, login

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"


def snap(page: Any, name: str) -> None:
    """A screenshot of the top of the page; and no page is wider than its window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    limit = 1400 if width < 600 else 2000  # long calendars are cut; the top is what matters
    page.screenshot(
        path=str(SHOTS / f"{name}.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, limit)},
    )
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


def next_local(at: time, tz_name: str) -> datetime:
    """The next moment the patient's clock reads ``at`` (UTC)."""
    tz = domain.zone(tz_name)
    now = utc_now()
    local_now = domain.local_of(now, tz)
    candidate = datetime.combine(local_now.date(), at)
    if candidate <= local_now:
        candidate += timedelta(days=1)
    return domain.to_utc(candidate, tz)


@pytest.fixture
def hypertensive(site: str, world: Any, make_patient: Any) -> Any:
    """A cardiology patient on one daily tablet, with no consent for outside channels."""
    plan_services.load_templates()
    patient = make_patient(name="赵志强", sex="male", date_of_birth="1952-08-09")
    patient_services.add_record(
        world.actor("nurse.cardiology"),
        patient.pk,
        "medications",
        {
            "name": "氨氯地平片",
            "dose": "5",
            "unit": "mg",
            "route": "po",
            "frequency": "qd",
            "status": "active",
        },
    )
    return patient


def test_enrol_remind_answer_and_see_it(new_page: Any, hypertensive: Any) -> None:
    p = hypertensive
    nurse = new_page()
    login(nurse, "nurse.cardiology")

    # The care plans tab: nothing yet, and a warning that only the in-app outbox is reachable.
    nurse.goto(f"/patients/{p.pk}/?tab=careplans")
    expect(nurse.locator("[data-testid=consent-warning]")).to_be_visible()
    snap(nurse, "plan-desktop-patient-tab")
    nurse.locator("[data-testid=enrol]").click()

    # Step 1: choose the plan.
    expect(nurse.locator("[data-testid=plan-picker]")).to_contain_text("高血压随访管理")
    snap(nurse, "plan-desktop-wizard-pick")
    nurse.locator("input[data-code=hypertension]").check()
    nurse.locator("[data-testid=next]").click()

    # Step 2: the preview has the dose at 08:00 and follows a changed measurement time.
    preview = nurse.locator("#preview")
    expect(preview).to_contain_text("08:00 按时服药")
    expect(preview).to_contain_text("08:30 测量并记录早晨血压")
    nurse.locator("[data-testid=times-bp-morning]").fill("07:45")
    nurse.locator("[data-testid=times-bp-morning]").press("Tab")
    expect(preview).to_contain_text("07:45 测量并记录早晨血压")
    expect(preview).not_to_contain_text("08:30")
    nurse.locator("[data-testid=on-diet-education]").uncheck()
    expect(preview).not_to_contain_text("低盐饮食小知识")
    snap(nurse, "plan-desktop-wizard-preview")

    # Step 3: confirm; the enrolment page shows the plan's calendar.
    nurse.locator("[data-testid=confirm-enrol]").click()
    expect(nurse).to_have_url(re.compile(r"/plans/\d+/$"))
    expect(nurse.locator("[data-testid=enrolment-status]")).to_have_text("进行中")
    calendar = nurse.locator("[data-testid=calendar]")
    expect(calendar).to_contain_text("按时服药")
    expect(calendar).to_contain_text("07:45")
    enrolment_url = nurse.url

    # The worker's turn: at 08:00 patient-local the dose reminder is due; with no consent for
    # SMS or WeChat it goes to the in-app outbox.
    eight = next_local(time(8, 0), p.time_zone)
    dispatcher.run_once("e2e-worker", now=eight)
    dose = rm.Occurrence.objects.get(patient=p, kind="medication", due_at=eight)
    assert dose.status == rm.Status.SENT
    message = OutboxMessage.objects.get(occurrence=dose)
    assert message.link and "赵志强" in message.body

    # The patient opens the link on a phone and taps "I took it".
    phone = new_page(viewport=PHONE)
    phone.goto(urlparse(message.link).path)
    expect(phone.locator("h1")).to_have_text("按时服药")
    expect(phone.locator(".when")).to_contain_text("08:00")
    snap(phone, "plan-phone-link")
    phone.locator("[data-testid=took-it]").click()
    expect(phone.locator("[data-testid=thanks]")).to_be_visible()
    snap(phone, "plan-phone-link-thanks")
    phone.goto(urlparse(message.link).path)
    expect(phone.locator("[data-testid=already]")).to_be_visible()
    expect(phone.locator("[data-testid=took-it]")).to_have_count(0)

    # The nurse's calendar shows the dose acknowledged, with the delivery attempt behind it.
    nurse.goto(enrolment_url + "?status=acknowledged")
    answered = nurse.locator("[data-testid=occurrence]")
    expect(answered).to_have_count(1)
    expect(answered.locator("[data-testid=status]")).to_have_text("已确认")
    expect(answered.locator("[data-testid=intake]")).to_contain_text("已服用")
    answered.locator("details.attempts summary").click()
    expect(answered.locator("details.attempts")).to_contain_text("站内消息")
    snap(nurse, "plan-desktop-calendar-acknowledged")
    nurse.goto(enrolment_url)
    snap(nurse, "plan-desktop-calendar")

    # Nobody measured their blood pressure: the call task is worked from the task list.
    measure = rm.Occurrence.objects.filter(patient=p, kind="measurement", status="sent").first()
    assert measure is not None
    task_services.open_task(
        organisation_id=p.organisation_id,
        patient_id=p.pk,
        kind="call_patient",
        source_key=f"e2e:{measure.pk}",
        due_at=eight + timedelta(hours=12),
        reason="no acknowledgement",
        occurrence_id=measure.pk,
    )
    small = new_page(viewport=PHONE)
    login(small, "nurse.cardiology")
    small.goto("/tasks/")
    small.locator("[data-testid=close-open]").click()
    snap(small, "plan-phone-tasks")
    nurse.locator("[data-testid=nav-tasks]").click()
    row = nurse.locator("[data-testid=task]")
    expect(row).to_have_count(1)
    expect(row.locator("[data-testid=task-patient]")).to_have_text("赵志强")
    row.locator("[data-testid=close-open]").click()
    snap(nurse, "plan-desktop-tasks")
    row.locator("[data-testid=outcome]").select_option("reached")
    row.locator("textarea").fill("已电话提醒，患者已补测")
    row.locator("[data-testid=close-task]").click()
    expect(nurse.locator(".flash")).to_contain_text("已联系到患者")
    expect(nurse.locator("[data-testid=no-tasks]")).to_be_visible()
    measure.refresh_from_db()
    assert measure.status == rm.Status.ACKNOWLEDGED

    small.goto(enrolment_url)
    expect(small.locator("[data-testid=calendar]")).to_be_visible()
    snap(small, "plan-phone-calendar")
    small.goto(f"/plans/patients/{p.pk}/enrol/?template={dose.enrolment.template_id}")
    snap(small, "plan-phone-wizard")
    small.goto(f"/patients/{p.pk}/?tab=careplans")
    snap(small, "plan-phone-patient-tab")
    small.locator("[data-testid=edit-preferences]").click()
    snap(small, "plan-phone-preferences")
    small.goto("/tasks/")
    snap(small, "plan-phone-tasks-empty")

    # Preferences on the desktop; then the enrolment ends after a confirmation step.
    nurse.goto(f"/patients/{p.pk}/?tab=careplans")
    nurse.locator("[data-testid=edit-preferences]").click()
    nurse.locator("input[name=elderly]").check()
    snap(nurse, "plan-desktop-preferences")
    nurse.locator("[data-testid=save-preferences]").click()
    expect(nurse.locator("[data-testid=section-preferences]")).to_contain_text("老年模式")
    nurse.goto(enrolment_url)
    nurse.locator("[data-testid=end-enrolment]").click()
    expect(nurse.locator("[data-testid=pending-count]")).to_be_visible()
    nurse.locator("#reason").fill("患者转至社区医院随访")
    snap(nurse, "plan-desktop-end")
    nurse.locator("[data-testid=confirm-end]").click()
    expect(nurse.locator("[data-testid=enrolment-status]")).to_have_text("已结束")
    assert not rm.Occurrence.objects.filter(patient=p, status="scheduled").exists()

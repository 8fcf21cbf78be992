"""A nurse books a revisit through the staff pages, in a real Chromium, then cancels it.

The new_page fixture also fails the test on any console error (a CSP refusal is one).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.appointments import models as am
from careloop.appointments import selectors, services
from careloop.reminders import models as rm

pytestmark = pytest.mark.e2e


def test_book_a_revisit_then_cancel_it(
    page: Any, sign_in: Any, world: Any, make_patient: Any
) -> None:
    head = world.actor("head.cardiology")
    tomorrow = selectors.today_for(head) + timedelta(days=1)
    services.save_schedule(
        head,
        {
            "name": "心内科专家门诊",
            "department": world.cardio.pk,
            "doctor": world.staff["doctor.cardiology"].pk,
            "weekdays": [str(d) for d in range(1, 8)],
            "sessions": "08:00-12:00",
            "slot_minutes": 30,
            "capacity": 2,
            "valid_from": tomorrow.isoformat(),
            "active": "on",
        },
    )
    patient = make_patient(name="王建国", phones=["13812345678"])
    make_patient(name="李四海", phones=["13711112222"])

    sign_in(page, "nurse.cardiology")
    page.goto("/patients/")
    page.locator("[data-testid=nav-appointments]").click()
    expect(page.locator("h1")).to_contain_text("门诊日程")
    page.locator("[data-testid=book]").click()

    # Tomorrow's times, picked from the date field.
    page.locator("[data-testid=book-date]").fill(tomorrow.isoformat())
    page.locator("[data-testid=show-times]").click()
    expect(page.locator("[data-testid=slot-choice]")).to_have_count(8)
    page.locator("label.slot-choice", has_text="09:00–09:30").click()

    # The patient, found by the last four digits of the phone as one types.
    page.locator("[data-testid=patient-search]").press_sequentially("5678")
    choices = page.locator("[data-testid=patient-choices]")
    expect(choices).to_contain_text("王建国")
    expect(choices).not_to_contain_text("李四海")
    choices.locator("label", has_text="王建国").click()
    page.locator("select[name=kind]").select_option("revisit")
    page.locator("input[name=reason]").fill("三个月复查血压")
    page.locator("[data-testid=book-submit]").click()

    appt = am.Appointment.objects.get(patient=patient)
    expect(page).to_have_url(re.compile(rf"/appointments/{appt.pk}/$"))
    expect(page.locator("[role=status]")).to_contain_text("已为 王建国 预约")
    expect(page.locator("[data-testid=appointment-status]")).to_have_text("已预约")
    expect(page.locator("[data-testid=appointment-time]")).to_contain_text(
        f"{tomorrow.isoformat()} 09:00"
    )
    assert (appt.status, appt.kind, appt.reason) == ("booked", "revisit", "三个月复查血压")
    # The morning reminder is always ahead (tomorrow 07:00); the evening one unless it is late.
    due = rm.Occurrence.objects.filter(ref=f"appointment:{appt.pk}", status="scheduled")
    assert due.filter(source_key__endswith=":morning").count() == 1

    # The clinic day shows the booking; cancelling asks first.
    page.goto(f"/appointments/?date={tomorrow.isoformat()}")
    row = page.locator("[data-testid=slot-row]", has_text="09:00–09:30")
    expect(row.locator("[data-testid=slot-places]")).to_contain_text("1 / 2")
    row.locator("[data-testid=slot-patient]").click()
    page.locator("[data-testid=cancel]").click()
    expect(page.locator("[data-testid=cancel-confirm]")).to_contain_text("确定取消该预约吗？")
    appt.refresh_from_db()
    assert appt.status == "booked"  # asking is not cancelling
    page.locator("input[name=reason]").fill("患者出差")
    page.locator("[data-testid=cancel-submit]").click()
    expect(page.locator("[data-testid=appointment-status]")).to_have_text("已取消")
    appt.refresh_from_db()
    assert (appt.status, appt.cancel_reason) == ("cancelled", "患者出差")
    assert not rm.Occurrence.objects.filter(ref=f"appointment:{appt.pk}", status="scheduled")
    assert am.Slot.objects.get(pk=appt.slot_id).booked == 0

"""The staff pages, through the test client: what a nurse and a department head see and do."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from careloop.accounts.models import Staff
from careloop.appointments import models as am
from careloop.appointments import services
from tests.appointments.conftest import MON, TUE, WED, local

A = am.Appointment


def signed_in(username: str, language: str = "zh-hans") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    user = Staff.objects.get(username=username)
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def text(response: Any) -> str:
    body = response.content.decode()
    # The CSP allows no inline styles or scripts.
    assert 'style="' not in body
    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    return body


@pytest.fixture
def nurse() -> Client:
    return signed_in("nurse.cardiology")


class TestClinicDay:
    def test_the_day_lists_slots_and_who_is_booked(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient(name="周一来")
        services.book(clinic.nurse, patient.pk, clinic.slot(MON, 9).pk)
        body = text(nurse.get("/appointments/"))
        assert "门诊日程" in body and "2026-03-09" in body
        assert body.count('data-testid="slot-row"') == 14
        assert "周一来" in body and "已预约" in body
        assert "1 / 2" in body

    def test_english_and_another_day(self, clinic: Any, make_patient: Any) -> None:
        clinic.schedule()
        client = signed_in("nurse.cardiology", "en")
        body = text(client.get(f"/appointments/?date={TUE}"))
        assert "Clinic day" in body and "2026-03-10" in body
        assert "Book an appointment" in body
        body = text(client.get("/appointments/?date=2026-03-14"))
        assert "No clinic on this day" in body

    def test_a_head_closes_a_slot(self, clinic: Any) -> None:
        clinic.schedule()
        slot = clinic.slot(TUE, 9)
        head = signed_in("head.cardiology")
        response = head.post(
            f"/appointments/slots/{slot.pk}/status/",
            {"status": "closed", "next": f"/appointments/?date={TUE}"},
        )
        assert response.status_code == 302
        assert response["Location"] == f"/appointments/?date={TUE}"
        slot.refresh_from_db()
        assert slot.status == "closed"
        # Only local addresses are followed after a form.
        response = head.post(
            f"/appointments/slots/{slot.pk}/status/",
            {"status": "open", "next": "https://evil.example/"},
        )
        assert not response["Location"].startswith("https://evil")


class TestBookingPages:
    def test_pick_a_time_and_a_patient_then_book(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient(name="黄预约", phones=["13912340000"])
        body = text(nurse.get(f"/appointments/book/?date={TUE}"))
        assert body.count('data-testid="slot-choice"') == 14
        found = text(nurse.get("/appointments/book/patients/?q=0000", HTTP_HX_REQUEST="true"))
        assert "黄预约" in found and f'value="{patient.pk}"' in found
        slot = clinic.slot(TUE, 9)
        response = nurse.post(
            "/appointments/book/",
            {"slot": slot.pk, "patient": patient.pk, "kind": "revisit", "reason": "复查"},
        )
        appt = A.objects.get()
        assert response.status_code == 302
        assert response["Location"] == f"/appointments/{appt.pk}/"
        body = text(nurse.get(response["Location"]))
        assert "黄预约" in body and "2026-03-10 09:00" in body and "复查" in body

    def test_missing_choices_and_a_full_slot_are_explained(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=1)
        slot = clinic.slot(TUE, 9)
        response = nurse.post("/appointments/book/", {"slot": slot.pk})
        assert response.status_code == 422
        assert "请选择患者。" in text(response)
        services.book(clinic.nurse, make_patient().pk, slot.pk)
        response = nurse.post(
            "/appointments/book/", {"slot": slot.pk, "patient": make_patient().pk}
        )
        assert response.status_code == 409
        assert "该时段已约满，请另选时间。" in text(response)
        assert A.objects.count() == 1

    def test_booking_from_the_patients_page(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient(name="林病人")
        record = text(nurse.get(f"/patients/{patient.pk}/"))
        assert f'href="/appointments/patient/{patient.pk}/"' in record
        page = text(nurse.get(f"/appointments/patient/{patient.pk}/"))
        assert f"/appointments/book/?patient={patient.pk}" in page
        form = text(nurse.get(f"/appointments/book/?patient={patient.pk}&date={WED}"))
        assert 'data-testid="chosen-patient"' in form and "林病人" in form
        nurse.post("/appointments/book/", {"slot": clinic.slot(WED, 14).pk, "patient": patient.pk})
        page = text(nurse.get(f"/appointments/patient/{patient.pk}/"))
        assert "2026-03-11 14:00" in page and "已预约" in page


class TestChangingAnAppointment:
    def test_cancel_asks_first(self, clinic: Any, nurse: Client, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        body = text(nurse.get(f"/appointments/{appt.pk}/cancel/"))
        assert "确定取消该预约吗？" in body
        assert A.objects.get().status == "booked"
        response = nurse.post(
            f"/appointments/{appt.pk}/cancel/", {"reason": "出差", "version": appt.version}
        )
        assert response.status_code == 302
        assert A.objects.get().status == "cancelled"

    def test_reschedule_and_a_stale_form(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        body = text(nurse.get(f"/appointments/{appt.pk}/reschedule/?date={WED}"))
        assert body.count('data-testid="slot-choice"') == 14
        url = f"/appointments/{appt.pk}/reschedule/"
        response = nurse.post(url, {"slot": clinic.slot(WED, 10).pk, "version": 1})
        assert response.status_code == 302
        response = nurse.post(url, {"slot": clinic.slot(WED, 11).pk, "version": 1})
        assert response.status_code == 409
        assert A.objects.get().starts_at == local(WED, 10)


class TestQueuePage:
    def test_check_in_call_and_finish(self, clinic: Any, nurse: Client, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(
            clinic.nurse, make_patient(name="吴排队").pk, clinic.slot(MON, 9).pk
        ).appointment
        body = text(nurse.get("/appointments/queue/"))
        assert "吴排队" in body and 'data-testid="queue-check-in"' in body
        response = nurse.post(
            f"/appointments/{appt.pk}/check-in/", {"next": "/appointments/queue/"}
        )
        assert response.status_code == 302
        body = text(nurse.get(response["Location"]))
        assert "吴排队 已签到，排队号 1。" in body
        response = nurse.post("/appointments/queue/call-next/", {"department": appt.department_id})
        body = text(nurse.get(response["Location"]))
        assert "请 1 号 吴排队 进诊室。" in body
        nurse.post(f"/appointments/{appt.pk}/complete/")
        assert A.objects.get().status == "completed"

    def test_checking_in_on_the_wrong_day_explains(
        self, clinic: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        response = nurse.post(f"/appointments/{appt.pk}/check-in/")
        assert "患者请在预约当天签到。" in text(nurse.get(response["Location"]))


class TestOverduePage:
    def test_list_and_record_a_call(
        self, clinic: Any, frozen: Any, nurse: Client, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient(name="郑失约")
        services.book(clinic.nurse, patient.pk, clinic.slot(MON, 9).pk)
        frozen.set(local(WED, 9))
        services.sweep_no_shows()
        body = text(nurse.get("/appointments/overdue/"))
        assert "郑失约" in body and "未按约就诊" in body
        assert re.search(r'data-testid="days-overdue">2<', body)
        partial = text(nurse.get("/appointments/overdue/?q=王", HTTP_HX_REQUEST="true"))
        assert "郑失约" not in partial and "<html" not in partial
        response = nurse.post(
            f"/appointments/overdue/{patient.pk}/result/", {"outcome": "removed:moved"}
        )
        assert response.status_code == 302
        assert "郑失约" not in text(nurse.get("/appointments/overdue/"))
        assert am.CallResult.objects.get().remove_reason == "moved"


class TestSchedulePages:
    def test_a_head_creates_a_schedule(self, clinic: Any) -> None:
        head = signed_in("head.cardiology")
        assert "新建排班" in text(head.get("/appointments/schedules/"))
        form = {
            "name": "周六上午门诊",
            "department": clinic.world.cardio.pk,
            "weekdays": ["6"],
            "sessions": "08:00-10:00",
            "slot_minutes": "20",
            "capacity": "3",
            "valid_from": "2026-03-01",
            "active": "on",
        }
        bad = head.post("/appointments/schedules/new/", {**form, "sessions": "10:00-08:00"})
        assert bad.status_code == 422
        assert "出诊时段的结束时间必须晚于开始时间。" in text(bad)
        response = head.post("/appointments/schedules/new/", form)
        assert response.status_code == 302
        schedule = am.ClinicSchedule.objects.get()
        assert am.Slot.objects.filter(schedule=schedule).count() == 4 * 6
        body = text(head.get(f"/appointments/schedules/{schedule.pk}/"))
        assert "周六上午门诊" in body and "08:00-10:00" in body

    def test_nurses_do_not_manage_schedules(self, clinic: Any, nurse: Client) -> None:
        assert nurse.get("/appointments/schedules/").status_code == 403
        assert 'data-testid="subnav-schedules"' not in text(nurse.get("/appointments/"))

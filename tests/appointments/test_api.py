"""The JSON API: slots, booking with Idempotency-Key, reschedule, cancel, the queue."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.appointments import models as am
from careloop.appointments import services
from tests.appointments.conftest import MON, TUE, WED, local, race

A = am.Appointment


@pytest.fixture
def nurse(api: Any) -> Any:
    return api("nurse.cardiology")


class TestSlots:
    def test_a_days_slots_with_places_left(
        self, clinic: Any, nurse: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk)
        response = nurse.get(
            f"/api/appointments/slots?department={clinic.world.cardio.pk}&day={TUE}"
        )
        assert response.status_code == 200
        slots = response.json()
        assert len(slots) == 14
        nine = next(s for s in slots if s["starts_at"].startswith("2026-03-10T01:00"))
        assert (nine["capacity"], nine["booked"], nine["available"], nine["status"]) == (
            2,
            1,
            1,
            "open",
        )
        three_days = nurse.get(f"/api/appointments/slots?day={MON}&days=3").json()
        assert len(three_days) == 3 * 14


class TestBooking:
    def test_book_then_read_it_back(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        patient = make_patient(name="陈接口")
        slot = clinic.slot(TUE, 9)
        response = nurse.post(
            "/api/appointments",
            {
                "patient_id": patient.pk,
                "slot_id": slot.pk,
                "kind": "consultation",
                "reason": "胸闷",
            },
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["patient"], body["patient_name"], body["slot"], body["status"]) == (
            patient.pk,
            "陈接口",
            slot.pk,
            "booked",
        )
        assert (body["kind"], body["reason"], body["version"]) == ("consultation", "胸闷", 1)
        again = nurse.get(f"/api/appointments/{body['id']}").json()
        assert again == body

    def test_a_full_slot_is_a_clear_409(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule(capacity=1)
        slot = clinic.slot(TUE, 9)
        assert (
            nurse.post(
                "/api/appointments", {"patient_id": make_patient().pk, "slot_id": slot.pk}
            ).status_code
            == 201
        )
        response = nurse.post(
            "/api/appointments", {"patient_id": make_patient().pk, "slot_id": slot.pk}
        )
        assert response.status_code == 409
        assert response.json() == {
            "code": "slot_full",
            "message": "This time is fully booked. Choose another one.",
            "details": {},
        }

    def test_bad_input_is_422(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        response = nurse.post(
            "/api/appointments",
            {"patient_id": make_patient().pk, "slot_id": clinic.slot(TUE, 9).pk, "kind": "x"},
        )
        assert response.status_code == 422
        assert "kind" in response.json()["details"]
        assert nurse.post("/api/appointments", {"slot_id": 1}).status_code == 422


class TestIdempotency:
    def _post(self, client: Any, body: dict[str, Any], key: str) -> Any:
        return client.post("/api/appointments", body, HTTP_IDEMPOTENCY_KEY=key)

    def test_a_retry_gets_the_same_answer_and_books_once(
        self, clinic: Any, nurse: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        body = {"patient_id": make_patient().pk, "slot_id": clinic.slot(TUE, 9).pk}
        first = self._post(nurse, body, "booking-7f3a")
        second = self._post(nurse, body, "booking-7f3a")
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second["Idempotent-Replayed"] == "true"
        assert not first.has_header("Idempotent-Replayed")
        assert A.objects.count() == 1
        assert clinic.slot(TUE, 9).booked == 1

    def test_the_same_key_with_another_body_is_refused(
        self, clinic: Any, nurse: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        patient = make_patient()
        self._post(nurse, {"patient_id": patient.pk, "slot_id": clinic.slot(TUE, 9).pk}, "k1")
        response = self._post(
            nurse, {"patient_id": patient.pk, "slot_id": clinic.slot(TUE, 10).pk}, "k1"
        )
        assert response.status_code == 409
        assert response.json()["code"] == "idempotency_key_reused"
        assert A.objects.count() == 1

    def test_keys_belong_to_their_user(self, clinic: Any, api: Any, make_patient: Any) -> None:
        clinic.schedule(capacity=3)
        body = {"patient_id": make_patient().pk, "slot_id": clinic.slot(TUE, 9).pk}
        assert self._post(api("nurse.cardiology"), body, "k1").status_code == 201
        # Another user's identical key is a new request: here, the same patient and slot again.
        response = self._post(api("doctor.cardiology"), body, "k1")
        assert response.json()["code"] == "already_booked"

    def test_an_unusable_key_is_422(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        body = {"patient_id": make_patient().pk, "slot_id": clinic.slot(TUE, 9).pk}
        response = self._post(nurse, body, "x" * 101)
        assert response.status_code == 422
        assert "Idempotency-Key" in response.json()["details"]


class TestChanges:
    def test_reschedule_with_if_match_then_stale(
        self, clinic: Any, nurse: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        url = f"/api/appointments/{appt.pk}/reschedule"
        response = nurse.post(url, {"slot_id": clinic.slot(WED, 9).pk}, HTTP_IF_MATCH='W/"1"')
        assert response.status_code == 200, response.content
        assert (response.json()["version"], response.json()["local_date"]) == (2, str(WED))
        stale = nurse.post(url, {"slot_id": clinic.slot(WED, 10).pk, "version": 1})
        assert stale.status_code == 409
        assert stale.json()["code"] == "stale_version"
        assert stale.json()["details"]["current_version"] == 2

    def test_cancel(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        response = nurse.post(f"/api/appointments/{appt.pk}/cancel", {"reason": "出差"})
        assert response.status_code == 200
        assert (response.json()["status"], response.json()["cancel_reason"]) == (
            "cancelled",
            "出差",
        )
        assert clinic.slot(TUE, 9).booked == 0


class TestQueue:
    def test_check_in_queue_and_call_next(self, clinic: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        a = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 9).pk).appointment
        b = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 9).pk).appointment
        assert nurse.post(f"/api/appointments/{b.pk}/check-in").json()["queue_number"] == 1
        queue = nurse.get("/api/appointments/queue").json()
        assert (queue["day"], [x["id"] for x in queue["waiting"]]) == (str(MON), [b.pk])
        assert [x["id"] for x in queue["expected"]] == [a.pk]
        called = nurse.post("/api/appointments/queue/call-next", {}).json()["called"]
        assert (called["id"], called["queue_number"]) == (b.pk, 1)
        assert nurse.post("/api/appointments/queue/call-next", {}).json() == {"called": None}
        done = nurse.post(f"/api/appointments/{b.pk}/complete").json()
        assert done["status"] == "completed"
        missed = nurse.post(f"/api/appointments/{a.pk}/no-show").json()
        assert missed["status"] == "no_show"

    def test_checking_in_on_another_day_is_409(
        self, clinic: Any, nurse: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(TUE, 9).pk).appointment
        response = nurse.post(f"/api/appointments/{appt.pk}/check-in")
        assert (response.status_code, response.json()["code"]) == (409, "not_today")

    def test_overdue(self, clinic: Any, frozen: Any, nurse: Any, make_patient: Any) -> None:
        clinic.schedule()
        appt = services.book(clinic.nurse, make_patient().pk, clinic.slot(MON, 9).pk).appointment
        frozen.set(local(WED, 9))
        services.sweep_no_shows()
        page = nurse.get("/api/appointments/overdue").json()
        assert page["total"] == 1
        item = page["items"][0]
        assert (item["patient"], item["source"], item["days_overdue"]) == (
            appt.patient_id,
            "appointment",
            2,
        )


@pytest.mark.django_db(transaction=True)
class TestRaces:
    def test_ten_clients_race_for_the_last_place_one_gets_it_nine_get_409(
        self, racing_db: Any, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=2)
        slot = clinic.slot(TUE, 9)
        services.book(clinic.nurse, make_patient().pk, slot.pk)
        patients = [make_patient().pk for _ in range(10)]
        token = accounts.issue_token(Staff.objects.get(username="nurse.cardiology"))

        def book(i: int) -> tuple[int, str]:
            response = Client().post(
                "/api/appointments",
                {"patient_id": patients[i], "slot_id": slot.pk},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
                HTTP_ACCEPT_LANGUAGE="en",
            )
            return response.status_code, response.json().get("code", "")

        results = race(book, 10)
        assert sorted(results) == [(201, "")] + [(409, "slot_full")] * 9
        slot.refresh_from_db()
        assert slot.booked == slot.capacity == 2
        assert A.objects.filter(slot=slot, status="booked").count() == 2

    def test_five_retries_of_one_request_at_once_book_once(
        self, racing_db: Any, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        body = {"patient_id": make_patient().pk, "slot_id": clinic.slot(TUE, 9).pk}
        token = accounts.issue_token(Staff.objects.get(username="nurse.cardiology"))

        def book(i: int) -> tuple[int, int]:
            response = Client().post(
                "/api/appointments",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
                HTTP_IDEMPOTENCY_KEY="same-request",
            )
            return response.status_code, response.json().get("id", response.json())

        results = race(book, 5)
        assert {status for status, _ in results} == {201}, results
        assert len({pk for _, pk in results}) == 1
        assert A.objects.count() == 1
        assert clinic.slot(TUE, 9).booked == 1

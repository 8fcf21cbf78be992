"""JSON API of reminders: a patient's reminders, preferences, phone confirmations, operations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.kit.clock import utc_now
from careloop.reminders import models as rm
from tests.reminders.factories import attempt, occurrence

pytestmark = pytest.mark.django_db
S = rm.Status


def at(day: int, hour: int) -> datetime:
    """A UTC instant in March 2026 (Shanghai is UTC+8)."""
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)


@pytest.fixture
def put(client: Any, token: Any) -> Any:
    def call(username: str, path: str, data: Any) -> Any:
        return client.put(
            path,
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token(username)}",
            HTTP_ACCEPT_LANGUAGE="en",
        )

    return call


def query(url: str, **params: Any) -> str:
    return f"{url}?{urlencode(params)}"


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    return make_patient("nurse.cardiology")


@pytest.fixture
def week(patient: Any) -> dict[str, Any]:
    """Reminders over three local days; the first was sent twice."""
    first = occurrence(patient, at(1, 0), "delivered")  # 2026-03-01 08:00 Shanghai
    attempt(first, "sms", "transient", at(1, 0), error_code="timeout")
    attempt(first, "sms", "delivered", at(1, 0) + timedelta(minutes=1))
    return {
        "first": first,
        "evening": occurrence(patient, at(1, 12), "acknowledged"),  # 03-01 20:00
        "next_day": occurrence(patient, at(2, 0), "dead", reason="no_address"),  # 03-02
        # 03-02 23:30 UTC is 03-03 07:30 in Shanghai: the third local day.
        "third": occurrence(patient, at(2, 23) + timedelta(minutes=30), "scheduled"),
    }


class TestPatientReminders:
    def test_lists_with_attempts(self, world: Any, patient: Any, week: Any, api: Any) -> None:
        response = api("nurse.cardiology").get(f"/api/patients/{patient.pk}/occurrences")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["total"] == 4
        first = body["items"][0]
        assert (first["id"], first["local_due"], first["status"]) == (
            week["first"].pk,
            "2026-03-01T08:00",
            "delivered",
        )
        assert [(a["try_no"], a["outcome"], a["error_code"]) for a in first["attempts"]] == [
            (1, "transient", "timeout"),
            (1, "delivered", ""),
        ]
        assert first["attempts"][0]["address_hint"] == "139****0000"
        event = AuditEvent.objects.filter(action="reminder.read").latest("id")
        assert (event.actor, event.patient_id) == ("nurse.cardiology", patient.pk)

    def test_dates_are_the_patients_own_days(
        self, world: Any, patient: Any, week: Any, api: Any
    ) -> None:
        url = f"/api/patients/{patient.pk}/occurrences"
        one_day = api("nurse.cardiology").get(
            query(url, **{"from": "2026-03-01", "to": "2026-03-01"})
        )
        assert [i["id"] for i in one_day.json()["items"]] == [week["first"].pk, week["evening"].pk]
        third = api("nurse.cardiology").get(query(url, **{"from": "2026-03-03"}))
        assert [i["id"] for i in third.json()["items"]] == [week["third"].pk]

    def test_filter_by_status_and_paginate(
        self, world: Any, patient: Any, week: Any, api: Any
    ) -> None:
        url = f"/api/patients/{patient.pk}/occurrences"
        dead = api("nurse.cardiology").get(query(url, status="dead")).json()
        assert [i["id"] for i in dead["items"]] == [week["next_day"].pk]
        page2 = api("nurse.cardiology").get(query(url, size=3, page=2)).json()
        assert (page2["total"], page2["page"], len(page2["items"])) == (4, 2, 1)

    def test_bad_filters_are_field_errors(self, world: Any, patient: Any, api: Any) -> None:
        url = f"/api/patients/{patient.pk}/occurrences"
        bad_status = api("nurse.cardiology").get(query(url, status="lost"))
        assert bad_status.status_code == 422 and "status" in bad_status.json()["details"]
        backwards = api("nurse.cardiology").get(
            query(url, **{"from": "2026-03-02", "to": "2026-03-01"})
        )
        assert backwards.status_code == 422 and "to" in backwards.json()["details"]
        bad_date = api("nurse.cardiology").get(query(url, **{"from": "yesterday"}))
        assert bad_date.status_code == 422 and "from" in bad_date.json()["details"]


class TestPreferences:
    def test_put_replaces_and_checks_the_version(self, world: Any, patient: Any, put: Any) -> None:
        url = f"/api/patients/{patient.pk}/reminder-preferences"
        first = put(
            "nurse.cardiology",
            url,
            {"dose_times": {"bid": ["07:30", "19:30"]}, "daily_cap": 4, "elderly": True},
        )
        assert first.status_code == 200, first.content
        assert first.json()["dose_times"] == {"bid": ["07:30", "19:30"]}
        assert (first.json()["version"], first.json()["elderly"]) == (1, True)
        second = put("nurse.cardiology", url, {"daily_cap": 6, "version": 1})
        assert second.status_code == 200
        pref = cm.ReminderPreference.objects.get(patient=patient)
        # PUT replaces: what the second request left out is back to its default.
        assert (pref.daily_cap, pref.dose_times, pref.elderly, pref.version) == (6, {}, False, 2)
        stale = put("nurse.cardiology", url, {"daily_cap": 3, "version": 1})
        assert stale.status_code == 409 and stale.json()["code"] == "stale_version"

    def test_invalid_values_are_field_errors(self, world: Any, patient: Any, put: Any) -> None:
        response = put(
            "nurse.cardiology",
            f"/api/patients/{patient.pk}/reminder-preferences",
            {"daily_cap": 99, "dose_times": {"bid": ["25:00"]}},
        )
        assert response.status_code == 422
        assert {"daily_cap", "dose_times"} <= set(response.json()["details"])
        assert not cm.ReminderPreference.objects.filter(patient=patient).exists()


class TestPhoneConfirmation:
    def test_staff_record_a_confirmation(self, world: Any, patient: Any, api: Any) -> None:
        occ = occurrence(patient, utc_now() - timedelta(minutes=30), "sent")
        response = api("nurse.cardiology").post(
            f"/api/occurrences/{occ.pk}/acknowledge", {"intake": "taken"}
        )
        assert response.status_code == 200, response.content
        assert (response.json()["status"], response.json()["ack_source"]) == (
            "acknowledged",
            "staff_call",
        )
        intake = rm.IntakeEvent.objects.get(occurrence=occ)
        assert (intake.status, intake.source) == ("taken", "staff_call")
        event = AuditEvent.objects.filter(action="reminder.acknowledge").latest("id")
        assert (event.actor, event.patient_id, event.detail["via"]) == (
            "nurse.cardiology",
            patient.pk,
            "api",
        )

    def test_a_skipped_dose_needs_a_reason(self, world: Any, patient: Any, api: Any) -> None:
        occ = occurrence(patient, utc_now(), "sent")
        url = f"/api/occurrences/{occ.pk}/acknowledge"
        refused = api("nurse.cardiology").post(url, {"intake": "skipped"})
        assert refused.status_code == 422 and "reason" in refused.json()["details"]
        done = api("nurse.cardiology").post(url, {"intake": "skipped", "reason": "side_effect"})
        assert done.status_code == 200
        assert rm.IntakeEvent.objects.get(occurrence=occ).reason == "side_effect"

    def test_a_withdrawn_reminder_cannot_be_confirmed(
        self, world: Any, patient: Any, api: Any
    ) -> None:
        occ = occurrence(patient, utc_now(), "cancelled", reason="enrolment_ended")
        response = api("nurse.cardiology").post(f"/api/occurrences/{occ.pk}/acknowledge", {})
        assert response.status_code == 409

    @pytest.mark.parametrize(
        ("username", "status"),
        [("nurse.endocrinology", 404), ("nurse.other", 404), ("auditor", 403), ("admin", 403)],
    )
    def test_scope_and_role(
        self, world: Any, patient: Any, api: Any, username: str, status: int
    ) -> None:
        occ = occurrence(patient, utc_now(), "sent")
        response = api(username).post(f"/api/occurrences/{occ.pk}/acknowledge", {})
        assert response.status_code == status
        assert patient.name not in response.content.decode()
        occ.refresh_from_db()
        assert occ.status == S.SENT
        assert AuditEvent.objects.filter(actor=username, outcome="denied").exists()


class TestOperations:
    def test_figures_and_dead_letters(self, world: Any, patient: Any, week: Any, api: Any) -> None:
        response = api("head.cardiology").get("/api/operations")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["dead_letters"] == 1
        assert body["queue_depth"] == 1  # the scheduled one, long overdue
        assert body["oldest_due_at"].startswith("2026-03-02T23:30")
        assert body["dispatch_paused"] is False
        [dead] = body["dead_letter_list"]
        assert (dead["id"], dead["patient"], dead["reason"]) == (
            week["next_day"].pk,
            patient.pk,
            "no_address",
        )
        assert AuditEvent.objects.filter(
            action="reminders.operations.read", actor="head.cardiology"
        ).exists()

    def test_retry_a_dead_letter(self, world: Any, patient: Any, week: Any, api: Any) -> None:
        dead = week["next_day"]
        response = api("admin").post(f"/api/operations/dead-letters/{dead.pk}/retry")
        assert response.status_code == 200, response.content
        assert response.json() == {"id": dead.pk, "status": "retrying"}
        again = api("admin").post(f"/api/operations/dead-letters/{dead.pk}/retry")
        assert again.status_code == 409 and again.json()["code"] == "conflict"

    @pytest.mark.parametrize(
        ("username", "status"),
        [
            ("head.endocrinology", 404),
            ("admin.other", 404),
            ("nurse.cardiology", 403),
            ("auditor", 403),
        ],
    )
    def test_retry_scope_and_role(
        self, world: Any, patient: Any, week: Any, api: Any, username: str, status: int
    ) -> None:
        dead = week["next_day"]
        response = api(username).post(f"/api/operations/dead-letters/{dead.pk}/retry")
        assert response.status_code == status
        dead.refresh_from_db()
        assert dead.status == S.DEAD

    @pytest.mark.parametrize("username", ["nurse.cardiology", "doctor.cardiology", "auditor"])
    def test_figures_are_for_operators(self, world: Any, api: Any, username: str) -> None:
        response = api(username).get("/api/operations")
        assert response.status_code == 403 and response.json()["code"] == "forbidden"

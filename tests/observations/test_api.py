"""The readings JSON API: one reading, a batch, a patient's readings, reactions and symptoms."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from careloop.alerts import models as alm
from careloop.audit.models import AuditEvent
from careloop.observations import models as om
from careloop.observations.api import BATCH_MAX_ITEMS
from tests.observations.support import care_team, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    p = make_patient(record_number="MRN-0042")
    join(p, care_team(world))
    return p


@pytest.fixture
def nurse(api: Any) -> Any:
    return api("nurse.cardiology")


def bp(patient: Any, systolic: Any, diastolic: Any, at: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": "85354-9",
        "systolic": systolic,
        "diastolic": diastolic,
        "effective": at,
        **extra,
    }


class TestOneReading:
    def test_stored_and_answered_201(self, nurse: Any, patient: Any) -> None:
        response = nurse.post(
            "/api/observations", bp(patient, 142, 91, "2026-01-06T07:30", device="omron-1")
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["kind"], body["code"], body["display"], body["unit"]) == (
            "bp",
            "85354-9",
            "142/91",
            "mm[Hg]",
        )
        assert (body["device"], body["source"], body["duplicate"]) == ("omron-1", "staff", False)
        # A time without an offset is on the patient's clock (Asia/Shanghai).
        assert body["effective"].startswith("2026-01-05T23:30")
        assert om.Observation.objects.filter(patient=patient).count() == 1

    def test_sending_it_again_stores_nothing_and_says_so(self, nurse: Any, patient: Any) -> None:
        reading = bp(patient, 142, 91, "2026-01-06T07:30+08:00", source="device", device="d1")
        first = nurse.post("/api/observations", reading)
        again = nurse.post("/api/observations", reading, HTTP_IDEMPOTENCY_KEY="retry-1")
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["duplicate"] is True
        assert again.json()["id"] == first.json()["id"]
        assert again["Idempotent-Replayed"] == "true"
        assert om.Observation.objects.filter(patient=patient).count() == 1

    def test_the_older_panel_code_is_accepted(self, nurse: Any, patient: Any) -> None:
        response = nurse.post(
            "/api/observations", {**bp(patient, 128, 82, "2026-01-06T08:00"), "code": "55284-4"}
        )
        assert response.status_code == 201
        assert (response.json()["kind"], response.json()["code"]) == ("bp", "85354-9")

    def test_glucose_in_mg_dl_is_stored_in_mmol_l_exactly(self, nurse: Any, patient: Any) -> None:
        response = nurse.post(
            "/api/observations",
            {"patient": patient.pk, "code": "glucose", "value": 126, "unit": "mg/dL",
             "context": "空腹", "effective": "2026-01-06T07:00"},
        )  # fmt: skip
        assert response.status_code == 201
        body = response.json()
        assert (body["value"], body["unit"], body["context"]) == (7.0, "mmol/L", "fasting")
        assert body["original"] == "126 mg/dL"

    def test_patient_by_record_number(self, nurse: Any, patient: Any) -> None:
        reading = {**bp(patient, 130, 80, "2026-01-06T09:00"), "patient": "#MRN-0042"}
        response = nurse.post("/api/observations", reading)
        assert response.status_code == 201
        assert response.json()["patient"] == patient.pk

    @pytest.mark.parametrize(
        ("change", "field", "words"),
        [
            ({"systolic": 400}, "systolic", "systolic 400 mm[Hg] is not possible"),
            ({"diastolic": 120, "systolic": 110}, "diastolic", "lower than systolic"),
            ({"code": "0000-0"}, "code", "unknown code"),
            ({"effective": "yesterday"}, "effective", "not an ISO 8601 time"),
            ({"effective": "2999-01-01T08:00"}, "effective", "in the future"),
            ({"unit": "kg"}, "unit", "does not fit blood pressure"),
        ],
    )
    def test_impossible_values_are_refused_with_the_field(
        self, nurse: Any, patient: Any, change: dict[str, Any], field: str, words: str
    ) -> None:
        response = nurse.post(
            "/api/observations", {**bp(patient, 140, 90, "2026-01-06T07:30"), **change}
        )
        assert response.status_code == 422, response.content
        body = response.json()
        assert body["code"] == "invalid"
        assert words in body["details"][field][0]
        assert not om.Observation.objects.exists()

    def test_negative_glucose_is_refused(self, nurse: Any, patient: Any) -> None:
        response = nurse.post(
            "/api/observations",
            {
                "patient": patient.pk,
                "code": "glucose",
                "value": -2,
                "effective": "2026-01-06T07:00",
            },
        )
        assert response.status_code == 422
        assert response.json()["details"]["value"] == ["glucose -2 mmol/L is not possible"]

    def test_a_crisis_reading_raises_an_alert_for_the_doctor(
        self, nurse: Any, world: Any, patient: Any
    ) -> None:
        response = nurse.post(
            "/api/observations", bp(patient, 185, 115, "2026-01-06T07:30", source="device")
        )
        assert response.status_code == 201
        alert = alm.Alert.objects.get(patient=patient, rule="bp-crisis")
        assert alert.owner == world.staff["doctor.cardiology"]


class TestScope:
    def test_another_departments_patient_is_not_found(self, api: Any, patient: Any) -> None:
        for username in ("nurse.endocrinology", "nurse.other"):
            response = api(username).post(
                "/api/observations", bp(patient, 140, 90, "2026-01-06T07:30")
            )
            assert response.status_code == 404
            assert response.json()["code"] == "not_found"
            assert AuditEvent.objects.filter(
                actor=username, patient_id=patient.pk, outcome="denied"
            ).exists()
        by_number = {**bp(patient, 140, 90, "2026-01-06T07:30"), "patient": "#MRN-0042"}
        assert api("nurse.endocrinology").post("/api/observations", by_number).status_code == 404
        assert not om.Observation.objects.exists()

    def test_a_batch_reports_the_outside_patient_and_stores_nothing_for_them(
        self, api: Any, patient: Any, make_patient: Any
    ) -> None:
        own = make_patient("nurse.endocrinology")
        response = api("nurse.endocrinology").post(
            "/api/observations/batch",
            [bp(patient, 140, 90, "2026-01-06T07:30"), bp(own, 140, 90, "2026-01-06T07:30")],
        )
        assert response.status_code == 200
        report = response.json()
        assert (report["accepted"], report["rejected"]) == (1, 1)
        assert report["problems"] == [{"line": 1, "field": "patient", "reason": "no such patient"}]
        assert not om.Observation.objects.filter(patient=patient).exists()

    def test_reading_another_departments_list_is_not_found(self, api: Any, patient: Any) -> None:
        for path in ("observations", "adverse-reactions", "symptoms"):
            response = api("doctor.endocrinology").get(f"/api/patients/{patient.pk}/{path}")
            assert response.status_code == 404, path

    def test_an_auditor_may_not_write(self, api: Any, patient: Any) -> None:
        response = api("auditor").post("/api/observations/batch", [bp(patient, 1, 1, "x")])
        assert response.status_code == 403
        assert not om.Observation.objects.exists()


class TestBatch:
    def test_good_lines_kept_bad_lines_reported(self, nurse: Any, patient: Any) -> None:
        items = [
            bp(patient, 128, 82, "2026-01-06T08:00"),
            bp(patient, 400, 82, "2026-01-06T09:00"),
            {"patient": patient.pk, "code": "2339-0", "value": 126, "unit": "mg/dL",
             "context": "fasting", "effective": "2026-01-06T07:00"},
            "not an object",
        ]  # fmt: skip
        response = nurse.post("/api/observations/batch", {"items": items})
        assert response.status_code == 200
        report = response.json()
        assert (report["received"], report["accepted"], report["rejected"]) == (4, 2, 2)
        assert [(p["line"], p["field"]) for p in report["problems"]] == [(2, "systolic"), (4, "")]
        assert len(report["ids"]) == 2

    def test_the_same_batch_twice_stores_nothing_new(self, nurse: Any, patient: Any) -> None:
        items = [bp(patient, 120 + n, 80, f"2026-01-0{n + 1}T08:00") for n in range(5)]
        first = nurse.post("/api/observations/batch", items).json()
        second = nurse.post("/api/observations/batch", items).json()
        assert (first["accepted"], first["duplicates"]) == (5, 0)
        assert (second["accepted"], second["duplicates"]) == (0, 5)
        assert om.Observation.objects.count() == 5

    def test_ndjson_body(self, client: Any, token: Any, patient: Any) -> None:
        lines = [json.dumps(bp(patient, 130, 85, "2026-01-06T08:00")), "{oops", ""]
        response = client.post(
            "/api/observations/batch",
            "\n".join(lines),
            content_type="application/x-ndjson",
            HTTP_AUTHORIZATION=f"Bearer {token('nurse.cardiology')}",
            HTTP_ACCEPT_LANGUAGE="en",
        )
        assert response.status_code == 200, response.content
        report = response.json()
        assert (report["accepted"], report["rejected"]) == (1, 1)
        assert report["problems"][0]["line"] == 2
        assert report["problems"][0]["reason"].startswith("not valid JSON")

    def test_too_many_readings_are_refused_whole(self, nurse: Any, patient: Any) -> None:
        item = bp(patient, 130, 85, "2026-01-06T08:00")
        response = nurse.post("/api/observations/batch", [item] * (BATCH_MAX_ITEMS + 1))
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert not om.Observation.objects.exists()

    @pytest.mark.parametrize("body", ['{"readings": []}', "[1,", "42"])
    def test_a_body_that_is_not_a_list_is_refused(self, nurse: Any, body: str) -> None:
        response = nurse.post("/api/observations/batch", body)
        assert response.status_code == 422
        assert "__all__" in response.json()["details"]


class TestPatientReadings:
    def test_filtered_and_paginated_newest_first(self, nurse: Any, patient: Any) -> None:
        items = [bp(patient, 120 + d, 80, f"2026-01-{d:02d}T08:00") for d in range(1, 11)]
        items.append({"patient": patient.pk, "code": "heart_rate", "value": 70,
                      "effective": "2026-01-05T08:00"})  # fmt: skip
        assert nurse.post("/api/observations/batch", items).json()["accepted"] == 11
        url = f"/api/patients/{patient.pk}/observations"
        page = nurse.get(f"{url}?kind=bp&size=4&page=2").json()
        assert (page["total"], page["page"], page["size"]) == (10, 2, 4)
        assert [i["display"] for i in page["items"]] == ["126/80", "125/80", "124/80", "123/80"]
        window = nurse.get(f"{url}?since=2026-01-04T00:00&until=2026-01-05T23:59").json()
        assert sorted(i["kind"] for i in window["items"]) == ["bp", "bp", "heart_rate"]
        loinc = nurse.get(f"{url}?kind=8867-4").json()
        assert [i["value"] for i in loinc["items"]] == [70]
        assert AuditEvent.objects.filter(action="observation.read", patient_id=patient.pk).exists()

    def test_unknown_kind_is_named(self, nurse: Any, patient: Any) -> None:
        response = nurse.get(f"/api/patients/{patient.pk}/observations?kind=bogus")
        assert response.status_code == 422
        assert "kind" in response.json()["details"]


class TestReactionsAndSymptoms:
    def test_report_a_reaction_and_list_it(self, nurse: Any, world: Any, patient: Any) -> None:
        url = f"/api/patients/{patient.pk}/adverse-reactions"
        response = nurse.post(
            url, {"drug": "氨氯地平", "symptom": "脚踝水肿", "severity": 2, "onset": "2026-01-05"}
        )
        assert response.status_code == 201, response.content
        assert response.json()["severity_label"] == "Moderate"
        listed = nurse.get(url).json()
        assert [(r["drug"], r["symptom"]) for r in listed] == [("氨氯地平", "脚踝水肿")]
        # The reaction is routed to the attending doctor.
        assert alm.Alert.objects.filter(
            patient=patient, owner=world.staff["doctor.cardiology"]
        ).exists()

    def test_a_reaction_needs_a_symptom_and_a_known_severity(
        self, nurse: Any, patient: Any
    ) -> None:
        response = nurse.post(
            f"/api/patients/{patient.pk}/adverse-reactions",
            {"drug": "x", "symptom": " ", "severity": 9, "onset": "2026-01-05"},
        )
        assert response.status_code == 422
        assert {"symptom", "severity"} <= set(response.json()["details"])

    def test_symptom_diary(self, nurse: Any, patient: Any) -> None:
        url = f"/api/patients/{patient.pk}/symptoms"
        response = nurse.post(
            url, {"symptom": "头晕", "severity": 4, "effective": "2026-01-06T08:00"}
        )
        assert response.status_code == 201, response.content
        at = datetime.fromisoformat(response.json()["effective"])
        assert at == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)  # 08:00 on the patient's clock
        bad = nurse.post(url, {"symptom": "头晕", "severity": 11})
        assert bad.status_code == 422 and "severity" in bad.json()["details"]
        assert [s["symptom"] for s in nurse.get(url).json()] == ["头晕"]

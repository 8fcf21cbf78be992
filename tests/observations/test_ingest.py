"""One ingest service for every way readings come in: stored once, scoped, rules evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.audit.models import AuditEvent
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.observations import models as om
from careloop.observations import services
from tests.observations.support import care_team, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    p = make_patient()
    join(p, care_team(world))
    return p


def bp(patient: Any, systolic: int, diastolic: int, at: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": "85354-9",
        "systolic": systolic,
        "diastolic": diastolic,
        "effective": at,
        **extra,
    }


class TestStoring:
    def test_good_lines_kept_bad_lines_reported(self, world: Any, patient: Any) -> None:
        actor = world.actor("nurse.cardiology")
        report = services.ingest(
            actor,
            [
                bp(patient, 128, 82, "2026-11-20T08:00"),
                bp(patient, 400, 82, "2026-11-20T09:00"),
                {"patient": patient.pk, "code": "glucose", "value": -2,
                 "effective": "2026-11-20T07:00"},
                {"patient": patient.pk, "code": "0000-0", "value": 1,
                 "effective": "2026-11-20T07:00"},
                {"patient": patient.pk, "code": "2339-0", "value": 126, "unit": "mg/dL",
                 "context": "fasting", "effective": "2026-11-20T07:00"},
                "not an object",  # type: ignore[list-item]
            ],
            source="device",
        )  # fmt: skip
        assert (report.accepted, report.rejected) == (2, 4)
        assert [(p.line, p.field) for p in report.problems] == [
            (2, "systolic"),
            (3, "value"),
            (4, "code"),
            (6, ""),
        ]
        glucose = om.Observation.objects.get(patient=patient, kind="glucose")
        assert glucose.value == pytest.approx(7.0) and glucose.original == "126 mg/dL"

    def test_resending_the_same_reading_stores_it_once(self, world: Any, patient: Any) -> None:
        actor = world.actor("nurse.cardiology")
        items = [bp(patient, 128, 82, "2026-11-20T08:00", device="omron-1")] * 2
        first = services.ingest(actor, items, source="device")
        second = services.ingest(actor, items[:1], source="device")
        assert (first.accepted, first.duplicates) == (1, 1)
        assert (second.accepted, second.duplicates) == (0, 1)
        assert om.Observation.objects.filter(patient=patient).count() == 1
        # Another device at the same time is another reading.
        other = services.ingest(actor, [bp(patient, 128, 82, "2026-11-20T08:00", device="x")])
        assert other.accepted == 1

    def test_latest_keeps_the_newest(self, world: Any, patient: Any) -> None:
        actor = world.actor("nurse.cardiology")
        services.ingest(actor, [bp(patient, 150, 95, "2026-11-21T08:00")])
        services.ingest(actor, [bp(patient, 120, 80, "2026-11-19T08:00")])
        latest = om.Latest.objects.get(patient=patient, kind="bp")
        assert (latest.value, latest.value2) == (150, 95)

    def test_audited(self, world: Any, patient: Any) -> None:
        services.ingest(world.actor("nurse.cardiology"), [bp(patient, 128, 82, "2026-11-20T08:00")])
        event = AuditEvent.objects.filter(action="observation.create").latest("seq")
        assert event.patient_id == patient.pk and event.detail["readings"] == 1


class TestScope:
    def test_other_departments_patient_is_not_found_and_nothing_stored(
        self, world: Any, patient: Any
    ) -> None:
        report = services.ingest(
            world.actor("nurse.endocrinology"), [bp(patient, 128, 82, "2026-11-20T08:00")]
        )
        assert report.accepted == 0 and report.problems[0].field == "patient"
        with pytest.raises(NotFound):
            services.ingest(world.actor("nurse.other"), [{}], patient_id=patient.pk)
        assert not om.Observation.objects.exists()

    def test_auditor_cannot_write(self, world: Any, patient: Any) -> None:
        from careloop.kit.errors import Forbidden

        with pytest.raises(Forbidden):
            services.ingest(world.actor("auditor"), [bp(patient, 128, 82, "2026-11-20T08:00")])

    def test_record_one_names_the_field(self, world: Any, patient: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            services.record_one(
                world.actor("nurse.cardiology"),
                patient.pk,
                {"code": "bp", "systolic": 400, "diastolic": 80, "effective": "2026-11-20T08:00"},
            )
        assert "systolic" in caught.value.details


class TestRules:
    def test_crisis_reading_raises_one_urgent_alert_for_the_doctor(
        self, world: Any, patient: Any
    ) -> None:
        actor = world.actor("nurse.cardiology")
        report = services.ingest(
            actor, [bp(patient, 185, 115, "2026-11-20T08:00")], source="device"
        )
        assert report.alerts >= 1
        alert = am.Alert.objects.get(patient=patient, rule="bp-crisis")
        assert alert.priority in ("urgent", "asap", "stat")
        assert alert.owner == world.staff["doctor.cardiology"]
        assert alert.department == world.cardio
        assert "185" in alert.text_zh and "185" in alert.text_en
        # Another high reading folds into the open alert instead of opening a second one.
        services.ingest(actor, [bp(patient, 190, 118, "2026-11-20T20:00")], source="device")
        assert am.Alert.objects.filter(patient=patient, rule="bp-crisis").count() == 1

    def test_late_reading_replays_without_raising_the_past_twice(
        self, world: Any, patient: Any
    ) -> None:
        actor = world.actor("nurse.cardiology")
        services.ingest(actor, [bp(patient, 185, 115, "2026-11-20T08:00")])
        services.ingest(actor, [bp(patient, 120, 80, "2026-11-19T08:00")])
        assert am.Alert.objects.filter(patient=patient, rule="bp-crisis").count() == 1

    def test_adverse_reaction_goes_to_the_attending_doctor(self, world: Any, patient: Any) -> None:
        from datetime import date

        services.report_adverse_reaction(
            world.actor("nurse.cardiology"),
            patient.pk,
            drug="氨氯地平",
            symptom="脚踝水肿",
            severity=3,
            onset=date(2026, 11, 20),
        )
        alert = am.Alert.objects.get(patient=patient, rule="adr-reported")
        assert alert.owner == world.staff["doctor.cardiology"]
        assert alert.focus_type == "adverse_reaction"

    def test_recompute_agrees_on_readings_a_breath_before_a_whole_second(
        self, world: Any, patient: Any
    ) -> None:
        from careloop.alerts import evaluation

        # SQLite rounds fractions to milliseconds: 37.9996 s must still count as second 37.
        services.ingest(
            world.actor("nurse.cardiology"),
            [bp(patient, 185, 115, "2026-11-20T08:00:37.999600+08:00")],
        )
        fire = am.AlertFire.objects.get(alert__rule="bp-crisis")
        assert fire.key.endswith(":1795132837")
        assert evaluation.recompute(world.org.pk)["identical"]

"""The worker's sweeps: readings a plan expects that did not come, and alerts past their SLA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.alerts import sweeps
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.patients import services as patient_services
from tests.alerts.support import Clock, device, glucose, in_team, on_call


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock()
    yield c
    c.restore()


@pytest.fixture
def diabetic(world: Any, clinic: Any, clock: Clock, make_patient: Any) -> Any:
    """An endocrinology patient enrolled today in the type-2 diabetes plan (daily fasting
    glucose), who measured at 07:00 this morning."""
    patient = in_team(world, make_patient("nurse.endocrinology"), world.endo)
    template = cm.PlanTemplate.objects.get(code="type2-diabetes", organisation__isnull=True)
    plan_services.enrol(world.actor("nurse.endocrinology"), patient.pk, template.pk, now=clock.now)
    device(world, glucose(patient, 6.4, clock.now - timedelta(hours=1)))
    return patient


def absence_alerts(patient: Any) -> list[am.Alert]:
    return list(am.Alert.objects.filter(patient=patient, rule="glucose-absent-3d"))


class TestNoGlucoseForThreeDays:
    def test_one_alert_for_the_nurse(self, world: Any, diabetic: Any, clock: Clock) -> None:
        clock.advance(days=2, hours=23)
        assert sweeps.absence() == 0
        clock.advance(hours=1, minutes=1)
        assert sweeps.absence() == 1
        (alert,) = absence_alerts(diabetic)
        assert alert.owner == world.staff["nurse.endocrinology"]
        assert (alert.performer_role, alert.priority, alert.department) == (
            "nurse",
            "routine",
            world.endo,
        )
        assert "3" in alert.text_en and "glucose" in alert.text_en.lower()

    def test_sweeping_again_raises_nothing_new(self, diabetic: Any, clock: Clock) -> None:
        clock.advance(days=3, minutes=1)
        assert sweeps.absence() == 1
        assert sweeps.absence() == 0
        clock.advance(hours=6)
        assert sweeps.absence() == 0
        clock.advance(days=2)
        assert sweeps.absence() == 0  # the same gap, however long it grows
        assert len(absence_alerts(diabetic)) == 1

    def test_a_reading_arriving_raises_nothing_and_a_new_gap_folds_into_the_open_alert(
        self, world: Any, diabetic: Any, clock: Clock
    ) -> None:
        clock.advance(days=3, minutes=1)
        sweeps.absence()
        (alert,) = absence_alerts(diabetic)
        device(world, glucose(diabetic, 6.1, clock.now - timedelta(minutes=1)))
        assert sweeps.absence() == 0
        assert absence_alerts(diabetic) == [alert]
        # The rule has no resolve condition: the nurse closes the alert. Until she does, a
        # new gap adds to it instead of raising a second one.
        clock.advance(days=3, minutes=1)
        assert sweeps.absence() == 0
        (same,) = absence_alerts(diabetic)
        assert same.pk == alert.pk and same.repeats == 1

    def test_after_the_alert_is_closed_a_new_gap_raises_a_new_one(
        self, world: Any, diabetic: Any, clock: Clock
    ) -> None:
        clock.advance(days=3, minutes=1)
        sweeps.absence()
        am.Alert.objects.filter(patient=diabetic).update(status=am.Alert.Status.RESOLVED)
        device(world, glucose(diabetic, 6.1, clock.now))
        clock.advance(days=3, minutes=1)
        assert sweeps.absence() == 1
        assert len(absence_alerts(diabetic)) == 2

    def test_the_gap_counts_from_enrolment_when_nothing_came(
        self, world: Any, clinic: Any, clock: Clock, make_patient: Any
    ) -> None:
        patient = in_team(world, make_patient("nurse.endocrinology"), world.endo)
        template = cm.PlanTemplate.objects.get(code="type2-diabetes", organisation__isnull=True)
        plan_services.enrol(
            world.actor("nurse.endocrinology"), patient.pk, template.pk, now=clock.now
        )
        # Expected from the start of the enrolment day (00:00 local, 8 hours ago).
        clock.advance(days=2, hours=16, minutes=1)
        assert sweeps.absence() == 1
        assert len(absence_alerts(patient)) == 1

    def test_patients_not_asked_to_measure_daily_are_left_alone(
        self, world: Any, clinic: Any, clock: Clock, make_patient: Any
    ) -> None:
        patient = in_team(world, make_patient())
        device(world, glucose(patient, 6.0, clock.now - timedelta(hours=1)))
        clock.advance(days=10)
        sweeps.absence()
        assert absence_alerts(patient) == []

    def test_the_dead_are_left_alone(self, world: Any, diabetic: Any, clock: Clock) -> None:
        actor = world.actor("nurse.endocrinology")
        diabetic.refresh_from_db()
        patient_services.update_patient(
            actor, diabetic.pk, {"deceased_on": "2026-03-10"}, diabetic.version
        )
        clock.advance(days=4)
        sweeps.absence()
        assert absence_alerts(diabetic) == []


class TestEscalation:
    def test_an_alert_past_its_sla_moves_to_the_on_call_person(
        self, world: Any, diabetic: Any, clock: Clock
    ) -> None:
        clock.advance(days=3, minutes=1)
        sweeps.absence()
        (alert,) = absence_alerts(diabetic)
        on_call(world, "doctor.endocrinology", department=world.endo, hours=72)
        clock.advance(hours=23)
        assert sweeps.escalate() == 0  # the SLA is a day
        clock.advance(hours=2)
        assert sweeps.escalate() == 1
        alert.refresh_from_db()
        assert alert.escalated_to == world.staff["doctor.endocrinology"]
        assert alert.business_status == "escalated"
        assert alert.owner == world.staff["nurse.endocrinology"]  # the owner keeps it
        assert AuditEvent.objects.filter(action="alert.escalate", object_id=str(alert.pk)).exists()
        # A routine alert escalates silently (no SMS); only once.
        assert not am.Notification.objects.filter(alert=alert).exists()
        assert sweeps.escalate() == 0

    def test_without_a_rota_the_department_head(
        self, world: Any, diabetic: Any, clock: Clock
    ) -> None:
        clock.advance(days=3, minutes=1)
        sweeps.absence()
        clock.advance(days=1, hours=1)
        assert sweeps.escalate() == 1
        (alert,) = absence_alerts(diabetic)
        assert alert.escalated_to == world.staff["head.endocrinology"]

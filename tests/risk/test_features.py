"""The risk model's inputs and target: hand-checked values, no leakage past as-of, time split."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from careloop.appointments.models import Appointment, Slot
from careloop.kit.clock import utc_now
from careloop.patients.models import Condition
from careloop.reminders import models as rem
from careloop.risk import features, services
from tests.risk import generator
from tests.risk.generator import midnight


def row(found: features.Features, patient_id: int) -> dict[str, float]:
    i = int(np.flatnonzero(found.ids == patient_id)[0])
    return dict(zip(found.names, found.X[i].tolist(), strict=True))


class TestHandChecked:
    def test_acknowledgements_latency_readings_and_blood_pressure(self, world: Any) -> None:
        as_of = midnight(utc_now()) - timedelta(days=3)
        p = generator.patient(world.org, world.cardio)
        for k in range(1, 31):
            acked = k <= 7 or k % 2 == 0
            generator.reminder(p, as_of - timedelta(days=k), ack_after_hours=1.0 if acked else None)
        # Not sent: never counts.
        generator.reminder(p, as_of - timedelta(days=2, hours=3), sent=False)
        for days in (1, 5, 13):
            generator.reading(p, as_of - timedelta(days=days), 140)
        for days in (20, 29):
            generator.reading(p, as_of - timedelta(days=days, hours=1), 150)
        generator.reading(p, as_of - timedelta(days=40), 160)

        got = row(features.matrix(world.org.pk, as_of), p.pk)

        assert got["ack_rate_7d"] == 1.0
        assert got["ack_rate_30d"] == pytest.approx(19 / 30)
        assert got["ack_trend"] == pytest.approx(1 - 12 / 23)
        assert got["latency_30d"] == pytest.approx(1.0)
        assert got["late_day_acks_30d"] == 0
        assert got["readings_14d"] == 3
        assert got["readings_30d"] == 5
        assert got["last_sbp"] == 140
        assert got["sbp_change_30d"] == -20  # against the reading 40 days back
        assert got["sex_female"] == 1
        assert got["days_since_activity"] == pytest.approx(1.0, abs=0.05)

    def test_a_patient_never_heard_from(self, world: Any) -> None:
        as_of = midnight(utc_now())
        p = generator.patient(world.org, world.cardio, sex="male")
        got = row(features.matrix(world.org.pk, as_of), p.pk)
        assert np.isnan(got["ack_rate_30d"])
        assert got["readings_30d"] == 0
        assert got["days_since_activity"] == features.NO_ACTIVITY_DAYS
        assert features.baseline(features.matrix(world.org.pk, as_of, [p.pk]))[0] == 0.5

    def test_labels(self, world: Any) -> None:
        as_of = midnight(utc_now()) - timedelta(days=31)
        org, dept = world.org, world.cardio
        adherent, low, few, late, silent = (generator.patient(org, dept) for _ in range(5))

        def days(p: Any, acks: list[float | None]) -> None:
            for k, hours in enumerate(acks):
                generator.reminder(p, as_of + timedelta(days=k, hours=2), ack_after_hours=hours)

        days(adherent, [1.0] * 5 + [None] * 5)  # 5 of 10: exactly half is not below half
        days(low, [1.0] * 4 + [None] * 6)  # 4 of 10
        days(few, [None] * 4)  # fewer than five sent: no label
        days(late, [13.0] * 6)  # acknowledged, but after 12 hours
        days(silent, [None] * 8)
        # Before the window: does not count.
        generator.reminder(low, as_of - timedelta(hours=5), ack_after_hours=1.0)

        got = features.labels(org.pk, as_of, 30)

        assert got == {adherent.pk: 0, low.pk: 1, late.pk: 1, silent.pk: 1}

    def test_dropout_needs_no_activity_at_all(self, world: Any) -> None:
        as_of = midnight(utc_now()) - timedelta(days=31)
        p = generator.patient(world.org, world.cardio)
        for k in range(6):
            generator.reminder(p, as_of + timedelta(days=k), ack_after_hours=1.0 if k < 3 else None)
        assert features.labels(world.org.pk, as_of) == {p.pk: 0}  # 3 of 6 is half
        generator.reminder(p, as_of + timedelta(days=7))
        assert features.labels(world.org.pk, as_of) == {p.pk: 1}  # 3 of 7 is below half


class TestNoLeakage:
    def test_nothing_after_as_of_changes_the_matrix(self, history: Any) -> None:
        org = history.organisation
        as_of = history.start + timedelta(days=60)
        before = features.matrix(org.pk, as_of)

        later = as_of + timedelta(hours=1)
        # Reminders answered after as-of (late answers to earlier ones, and all later ones).
        rem.Occurrence.objects.filter(
            organisation=org, due_at__lt=as_of, acknowledged_at__isnull=True
        ).update(acknowledged_at=later)
        rem.Occurrence.objects.filter(organisation=org, due_at__gte=as_of).update(
            acknowledged_at=as_of + timedelta(days=2)
        )
        p = history.patients[0]
        # A reading taken before as-of but uploaded after it, and readings after it.
        generator.reading(p, as_of - timedelta(days=2, minutes=7), 190, uploaded=later)
        generator.reading(p, as_of + timedelta(days=1), 200)
        rem.IntakeEvent.objects.create(
            organisation=org,
            patient=p,
            status="skipped",
            reason="cost",
            recorded_at=later,
            source="sms",
        )
        Condition.objects.create(organisation=org, patient=history.patients[1], icd10_code="E11")
        generator.patient(
            org, world_dept(history), registered_on=(as_of + timedelta(days=1)).date()
        )
        after = features.matrix(org.pk, as_of)

        assert after.ids.tolist() == before.ids.tolist()
        np.testing.assert_array_equal(after.X, before.X)
        # The same changes do show once they are in the past.
        moved = features.matrix(org.pk, as_of + timedelta(days=3))
        assert not np.array_equal(
            np.nan_to_num(moved.X[: len(before.ids)]), np.nan_to_num(before.X)
        )

    def test_a_no_show_counts_only_if_marked_before_as_of(self, world: Any) -> None:
        as_of = midnight(utc_now()) - timedelta(days=1)
        p = generator.patient(world.org, world.cardio)
        slot = Slot.objects.create(
            organisation=world.org,
            department=world.cardio,
            starts_at=as_of - timedelta(days=10),
            ends_at=as_of - timedelta(days=10) + timedelta(minutes=30),
            local_date=(as_of - timedelta(days=10)).date(),
            capacity=2,
        )

        def missed(marked: Any) -> None:
            Appointment.objects.create(
                organisation=world.org,
                patient=p,
                slot=slot,
                department=world.cardio,
                starts_at=slot.starts_at,
                local_date=slot.local_date,
                status=Appointment.Status.NO_SHOW,
                updated_at=marked,
            )

        missed(as_of - timedelta(days=9))
        missed(as_of + timedelta(hours=2))  # marked after as-of: not known then
        assert row(features.matrix(world.org.pk, as_of), p.pk)["missed_appointments_90d"] == 1


def world_dept(history: Any) -> Any:
    from careloop.patients.models import PatientDepartment

    return PatientDepartment.objects.filter(patient=history.patients[0]).first().department


class TestTimeSplit:
    def test_training_windows_end_before_the_test_window(self, history: Any) -> None:
        org = history.organisation
        as_of = history.end + timedelta(hours=5)
        test, train = services.as_of_dates(org.pk, as_of, 30)
        assert test + timedelta(days=30) <= as_of
        assert test == midnight(as_of - timedelta(days=30))
        assert train == sorted(train) and len(train) >= 5
        assert all(t + timedelta(days=30) <= test for t in train)
        assert all(b - a == timedelta(days=7) for a, b in zip(train, train[1:], strict=False))
        assert train[0] >= history.start + timedelta(days=7)
        assert train[-1] == test - timedelta(days=30)

    def test_no_history_no_training_dates(self, world: Any) -> None:
        _test, train = services.as_of_dates(world.org.pk, utc_now(), 30)
        assert train == []

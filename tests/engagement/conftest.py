"""Fixtures of the engagement tests: patients with portal actors, a frozen clock, races."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.patients import services as patient_services
from careloop.portal import events
from careloop.portal.context import PortalActor

# Races and the frozen clock are the appointment tests' own; shared, not copied.
from tests.appointments.conftest import (  # noqa: F401
    Frozen,
    frozen,
    pytest_runtest_teardown,
    race,
    racing_db,
)


def actor_of(patient: Any) -> PortalActor:
    return PortalActor(
        patient_id=patient.pk, organisation_id=patient.organisation_id, session_id=0,
        source="127.0.0.1",
    )  # fmt: skip


def event(patient: Any, kind: str, ref: str, at: datetime | None = None) -> events.PatientEvent:
    return events.PatientEvent(kind, patient.pk, patient.organisation_id, ref, at or utc_now())


def give_points(patient: Any, points: int, ref: str = "gift") -> None:
    now = utc_now()
    em.PointEntry.objects.create(
        organisation_id=patient.organisation_id, patient=patient, kind="questionnaire",
        ref=ref, points=points, day=now.date(), created_at=now,
    )  # fmt: skip


def diagnose(world: Any, patient: Any, code: str, display: str = "") -> None:
    patient_services.add_record(
        world.actor("nurse.cardiology"), patient.pk, "conditions",
        {"icd10_code": code, "display": display or code, "status": "active"},
    )  # fmt: skip


@pytest.fixture
def patient(make_patient: Any) -> Any:
    return make_patient(name="王秀英")


@pytest.fixture
def other(make_patient: Any) -> Any:
    return make_patient(name="赵建国")


@pytest.fixture
def delivered(django_capture_on_commit_callbacks: Any) -> Any:
    """``with delivered():`` runs what was emitted inside it (events go out after commit)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


SHANGHAI_NOON = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai

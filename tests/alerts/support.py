"""Helpers of the alert tests: a settable clock, care teams, on-call shifts, readings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.accounts.models import CareTeam
from careloop.alerts import models as am
from careloop.kit import clock
from careloop.observations import services as observation_services
from tests.observations.support import care_team, join

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 9 March 2026, 08:00 in Shanghai.
NOW = datetime(2026, 3, 9, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)


class Clock:
    """The clock, stopped at a moment the test chooses and moves."""

    def __init__(self, at: datetime = NOW) -> None:
        self.previous = clock.fake()
        self.set(at)

    def set(self, at: datetime) -> datetime:
        self.now = at.astimezone(UTC)
        clock.install(clock.FakeClock(start=self.now, speed=0.0, anchor=time.time()))
        return self.now

    def advance(self, **delta: float) -> datetime:
        return self.set(self.now + timedelta(**delta))

    def restore(self) -> None:
        clock.install(self.previous)


def in_team(world: Any, patient: Any, department: Any = None) -> Any:
    """Put the patient in the department's care team (responsible doctor and nurse)."""
    department = department or world.cardio
    team = CareTeam.objects.filter(department=department).first() or care_team(world, department)
    join(patient, team)
    return patient


def on_call(
    world: Any,
    username: str,
    *,
    phone: str = "",
    email: str = "",
    department: Any = None,
    starts: datetime | None = None,
    hours: float = 12,
) -> am.OnCall:
    starts = starts or clock.utc_now() - timedelta(hours=1)
    return am.OnCall.objects.create(
        department=department or world.cardio,
        staff=world.staff[username],
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        phone=phone,
        email=email,
    )


def device(world: Any, *items: dict[str, Any]) -> Any:
    """Readings sent by the organisation's device gateway (no staff actor)."""
    return observation_services.ingest(
        None, list(items), organisation_id=world.org.pk, source="device", origin="api"
    )


def bp(patient: Any, systolic: float, diastolic: float, at: datetime) -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": "85354-9",
        "systolic": systolic,
        "diastolic": diastolic,
        "unit": "mm[Hg]",
        "effective": at.isoformat(),
        "device": "omron-1",
    }


def glucose(patient: Any, mmol: float, at: datetime, context: str = "fasting") -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": "glucose",
        "value": mmol,
        "unit": "mmol/L",
        "context": context,
        "effective": at.isoformat(),
        "device": "meter-1",
    }

"""Small builders for analytics tests: patients registered on a given day, readings by staff,
prescriptions, refills, appointments, tasks and call results on given days.

Everything happens in the test organisation of tests/conftest.py (`world`, zone Asia/Shanghai).
Days are the organisation's calendar days; TODAY is the reference "today" the tests pass to
`state.refresh(..., today=TODAY)` and to `Cohort(today=TODAY)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.alerts import models as alm
from careloop.analytics import state
from careloop.analytics.registry import Cohort
from careloop.appointments import models as apm
from careloop.observations import models as om
from careloop.patients import models as pm

TODAY = date(2026, 9, 15)
ZONE = ZoneInfo("Asia/Shanghai")


def at(day: date, hour: int = 9) -> datetime:
    """A moment of `day` in the organisation's zone, in UTC."""
    return datetime.combine(day, time(hour), ZONE).astimezone(UTC)


@dataclass
class Clinic:
    """Builders bound to the test organisation."""

    world: Any

    @property
    def org_id(self) -> int:
        return int(self.world.org.pk)

    def patient(
        self,
        registered_on: date,
        *,
        conditions: tuple[str, ...] = ("I10",),
        department: Any = None,
        deceased_on: date | None = None,
        name: str = "",
    ) -> pm.Patient:
        from careloop.patients import services
        from tests.conftest import patient_data

        dept = department or self.world.cardio
        actor = self.world.actor("admin")
        data = patient_data(registered_on=registered_on.isoformat())
        if name:
            data["name"] = name
        p = services.create_patient(actor, data, department_id=dept.pk)
        for code in conditions:
            pm.Condition.objects.create(
                organisation_id=self.org_id, patient=p, icd10_code=code, status="active"
            )
        if deceased_on:
            pm.Patient.objects.filter(pk=p.pk).update(deceased_on=deceased_on)
        return p

    def reading(
        self,
        p: pm.Patient,
        day: date,
        kind: str,
        value: float,
        value2: float | None = None,
        *,
        context: str = "",
        source: str = "staff",
        hour: int = 9,
    ) -> om.Observation:
        units = {"bp": "mm[Hg]", "glucose": "mmol/L", "hba1c": "%"}
        codes = {"bp": "85354-9", "glucose": "15074-8", "hba1c": "4548-4"}
        return om.Observation.objects.create(
            organisation_id=self.org_id,
            patient=p,
            kind=kind,
            code=codes[kind],
            value=value,
            value2=value2,
            unit=units[kind],
            context=context,
            source=source,
            effective_at=at(day, hour),
            time_zone="Asia/Shanghai",
            local_day=day.toordinal(),
            local_hour=hour,
        )

    def bp(self, p: pm.Patient, day: date, sys: float, dia: float, **kw: Any) -> om.Observation:
        return self.reading(p, day, "bp", sys, dia, **kw)

    def glucose(self, p: pm.Patient, day: date, mmol: float, context: str = "random") -> Any:
        return self.reading(p, day, "glucose", mmol, context=context)

    def hba1c(self, p: pm.Patient, day: date, percent: float) -> om.Observation:
        return self.reading(p, day, "hba1c", percent)

    def dispense(self, p: pm.Patient, day: date) -> pm.Dispense:
        return pm.Dispense.objects.create(
            organisation_id=self.org_id,
            patient=p,
            name="氨氯地平",
            days_supply=30,
            when_handed_over=day,
        )

    def prescription(self, p: pm.Patient, day: date) -> pm.Medication:
        return pm.Medication.objects.create(
            organisation_id=self.org_id,
            patient=p,
            name="氨氯地平",
            frequency="qd",
            start_date=day,
        )

    def appointment(
        self, p: pm.Patient, booked: date, on: date, status: str = "booked"
    ) -> apm.Appointment:
        dept = self.world.cardio
        slot = apm.Slot.objects.create(
            organisation_id=self.org_id,
            department=dept,
            starts_at=at(on),
            ends_at=at(on) + timedelta(minutes=30),
            local_date=on,
            capacity=5,
        )
        return apm.Appointment.objects.create(
            organisation_id=self.org_id,
            patient=p,
            slot=slot,
            department=dept,
            starts_at=at(on),
            local_date=on,
            status=status,
            booked_at=at(booked),
        )

    def task(self, p: pm.Patient, day: date, outcome: str = "reached") -> alm.Task:
        return alm.Task.objects.create(
            organisation_id=self.org_id,
            patient=p,
            kind="call_patient",
            status="done",
            source_key=f"test:{p.pk}:{day.isoformat()}:{outcome}:{alm.Task.objects.count()}",
            due_at=at(day),
            created_at=at(day, 8),
            closed_at=at(day, 10),
            outcome=outcome,
        )

    def call(
        self,
        p: pm.Patient,
        day: date,
        outcome: str = "agreed_to_visit",
        *,
        remind_on: date | None = None,
        reason: str = "",
    ) -> apm.CallResult:
        return apm.CallResult.objects.create(
            organisation_id=self.org_id,
            patient=p,
            outcome=outcome,
            remove_reason=reason,
            remind_on=remind_on,
            called_on=day,
        )

    def refresh(self, full: bool = True, today: date = TODAY) -> state.Result:
        return state.refresh(self.org_id, full=full, today=today)

    def cohort(self, **kw: Any) -> Cohort:
        return Cohort(organisation_id=self.org_id, today=kw.pop("today", TODAY), **kw)


@pytest.fixture
def clinic(world: Any) -> Clinic:
    return Clinic(world)


def month(year: int, m: int) -> date:
    return date(year, m, 1)

"""Hand-built patients whose facts put them into (or just outside) the shipped segments."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from careloop.kit.clock import utc_now
from careloop.observations import services as observation_services
from careloop.patients import models as pm
from careloop.patients import services as patient_services
from careloop.segments import facts as segment_facts
from careloop.segments import services
from tests.conftest import World, patient_data
from tests.reminders.factories import attempt, occurrence
from tests.support.language import english_texts  # noqa: F401 - autouse: English texts


class Builder:
    def __init__(self, world: World) -> None:
        self.world = world
        self.org_id = world.org.pk
        services.load_defaults()

    @property
    def today(self) -> date:
        return segment_facts.as_of_moment(self.org_id, None)[0]

    def patient(self, username: str = "nurse.cardiology", **overrides: Any) -> pm.Patient:
        return patient_services.create_patient(
            self.world.actor(username), patient_data(**overrides)
        )

    def condition(self, p: pm.Patient, code: str = "I10") -> None:
        patient_services.add_record(
            self.world.actor("doctor.cardiology"),
            p.pk,
            "conditions",
            {"icd10_code": code, "display": code, "status": "active"},
        )

    def bp(self, p: pm.Patient, sbp: int, dbp: int, hours_ago: float = 30) -> None:
        at = utc_now() - timedelta(hours=hours_ago)
        link = pm.PatientDepartment.objects.filter(patient=p).select_related("department").first()
        nurse = f"nurse.{link.department.code}" if link else "nurse.cardiology"
        observation_services.record_one(
            self.world.actor(nurse),
            p.pk,
            {"effective": at.isoformat(), "code": "bp", "systolic": sbp, "diastolic": dbp},
        )

    def fill(self, p: pm.Patient, days_ago: int, supply: int) -> None:
        pm.Dispense.objects.create(
            organisation_id=self.org_id,
            patient=p,
            name="阿托伐他汀钙片",
            code="C10AA05",
            drug_class="",
            status="completed",
            days_supply=supply,
            when_handed_over=self.today - timedelta(days=days_ago),
        )

    def pdc(self, p: pm.Patient, covered_of_100: int) -> None:
        """Two fills making the PDC covered/100 over the 100 days ending today."""
        self.fill(p, 99, 30)
        self.fill(p, 69, covered_of_100 - 30)

    def missed(self, p: pm.Patient, n: int) -> None:
        """n medication reminders sent yesterday and the day before, never answered."""
        for i in range(n):
            due = utc_now() - timedelta(hours=20 + 6 * i)
            occ = occurrence(p, due, status="sent")
            attempt(occ, "sms", "accepted", due)

    def acknowledged(self, p: pm.Patient, n: int, of: int) -> None:
        for i in range(of):
            due = utc_now() - timedelta(days=2, hours=i)
            occ = occurrence(p, due, status="acknowledged" if i < n else "sent", kind="measurement")
            if i < n:
                type(occ).objects.filter(pk=occ.pk).update(acknowledged_at=due)
            attempt(occ, "sms", "accepted", due)

    def surgical_discharge(self, p: pm.Patient, days_ago: int) -> None:
        from careloop.accounts.models import Department

        surgery, _ = Department.objects.get_or_create(
            organisation=self.world.org,
            code="general-surgery",
            defaults={"name": "普外科", "name_en": "General surgery"},
        )
        discharged = self.today - timedelta(days=days_ago)
        pm.Encounter.objects.create(
            organisation_id=self.org_id,
            patient=p,
            kind="inpatient",
            department=surgery,
            admitted_on=discharged - timedelta(days=5),
            discharged_on=discharged,
        )


@pytest.fixture
def build(world: World) -> Builder:
    return Builder(world)

"""Visit summaries: written from the recorded visit, in the patient's language."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.appointments import models as am
from careloop.careplans import models as cm
from careloop.education import models as em
from careloop.kit.clock import utc_now
from tests.education import helpers as h

pytestmark = pytest.mark.django_db


def _appointment(world: Any, p: Any, days: int = 14) -> am.Appointment:
    starts = (utc_now() + timedelta(days=days)).replace(hour=1, minute=30, second=0, microsecond=0)
    slot = am.Slot.objects.create(
        organisation=world.org,
        department=world.cardio,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        local_date=starts.date(),
        capacity=2,
        booked=1,
    )
    return am.Appointment.objects.create(
        organisation=world.org,
        patient=p,
        slot=slot,
        department=world.cardio,
        starts_at=starts,
        local_date=starts.date(),
    )


def _medicine(world: Any, p: Any, frequency: str = "bid") -> Any:
    return h.record(
        world,
        p,
        "medications",
        {
            "name": "氨氯地平",
            "dose": "5",
            "unit": "mg",
            "route": "po",
            "frequency": frequency,
            "status": "active",
        },
    )


def test_recording_a_visit_writes_the_summary_in_chinese(world: Any) -> None:
    p = h.patient(world, "zh-hans")
    h.record(
        world,
        p,
        "allergies",
        {"substance": "青霉素", "category": "medication", "reaction": "皮疹", "severity": "severe"},
    )
    _medicine(world, p)
    _appointment(world, p)
    encounter = h.visit(world, p, "I10 原发性高血压")
    s = em.VisitSummary.objects.get(encounter=encounter)
    c = s.content
    assert s.language == "zh-hans" and s.patient_id == p.pk
    assert c["diagnoses"][0]["code"] == "I10"
    assert "高血压" in c["diagnoses"][0]["name"]
    assert c["diagnoses"][0]["explain"].startswith("高血压")
    med = c["medications"][0]
    assert med["name"] == "氨氯地平" and med["dose"] == "5 mg"
    assert med["times"] == ["08:00", "20:00"] and med["frequency"] == "每天2次"
    assert c["allergies"] == [{"substance": "青霉素", "reaction": "皮疹"}]
    assert any("120" in w and "头痛" in w for w in c["warnings"])
    nxt = c["next_visit"]
    assert nxt["time"] == "09:30" and nxt["department"] == "心内科"


def test_english_summary_uses_the_patient_dose_times(world: Any) -> None:
    p = h.patient(world, "en")
    cm.ReminderPreference.objects.create(patient=p, dose_times={"bid": ["07:30", "19:00"]})
    h.condition(world, p, "E11.9", "2型糖尿病")
    _medicine(world, p)
    encounter = h.visit(world, p, "")
    c = em.VisitSummary.objects.get(encounter=encounter).content
    assert c["language"] == "en"
    names = {d["code"]: d["name"] for d in c["diagnoses"]}
    assert "E11.9" in names and "diabetes" in names["E11.9"].lower()
    assert c["medications"][0]["times"] == ["07:30", "19:00"]
    assert c["medications"][0]["frequency"] == "twice a day"
    assert any("Low sugar" in w for w in c["warnings"])
    assert c["next_visit"] is None


def test_a_medicine_added_after_the_visit_updates_its_summary(world: Any) -> None:
    p = h.patient(world)
    encounter = h.visit(world, p)
    assert em.VisitSummary.objects.get(encounter=encounter).content["medications"] == []
    _medicine(world, p, "qd")
    s = em.VisitSummary.objects.get(encounter=encounter)
    assert s.version == 2 and s.content["medications"][0]["times"] == ["08:00"]


def test_removing_the_visit_withdraws_its_summary(world: Any) -> None:
    from careloop.patients import services as patient_services

    p = h.patient(world)
    encounter = h.visit(world, p)
    patient_services.delete_record(
        world.actor("nurse.cardiology"), p.pk, "visits", encounter.pk, encounter.version
    )
    assert em.VisitSummary.objects.get(encounter=encounter).withdrawn_at is not None

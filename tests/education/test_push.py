"""The stage push: condition, plan day, language and consent decide; it delivers once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.education import models as em
from careloop.education import services
from careloop.kit.clock import utc_now
from careloop.reminders import models as rm
from tests.education import helpers as h

pytestmark = pytest.mark.django_db


def _delivered(p: Any) -> set[str]:
    return set(em.Delivery.objects.filter(patient=p).values_list("item__title", flat=True))


def test_delivers_by_condition_stage_and_language(world: Any) -> None:
    p = h.patient(world)
    h.condition(world, p, "I10")
    h.consent(world, p)
    h.enrol(world, p, days_ago=3)
    h.item(world, title="match")
    h.item(world, title="general", icd10_prefixes=[])
    h.item(world, title="diabetes", icd10_prefixes=["E11"])
    h.item(world, title="later stage", stage="month_3")
    h.item(world, title="english", language="en")
    h.item(world, title="draft", status=em.ContentItem.Status.DRAFT)
    h.item(world, title="other org", organisation=world.other_org)
    h.item(world, title="snomed", icd10_prefixes=[], snomed_codes=["38341003"])
    assert services.push() == 2
    assert _delivered(p) == {"match", "general"}
    d = em.Delivery.objects.get(patient=p, item__title="match")
    assert d.plan_day == 3 and d.enrolment is not None and d.opened_at is None


def test_running_twice_delivers_nothing_new(world: Any) -> None:
    p = h.patient(world)
    h.condition(world, p, "I10")
    h.consent(world, p)
    h.enrol(world, p, days_ago=1)
    h.item(world)
    assert services.push() == 1
    assert services.push() == 0
    assert em.Delivery.objects.filter(patient=p).count() == 1


def test_no_push_without_education_consent(world: Any) -> None:
    refused = h.patient(world)
    h.condition(world, refused, "I10")
    h.consent(world, refused, granted=True)
    h.consent(world, refused, granted=False)  # the latest decision is in force
    other_purpose = h.patient(world)
    h.condition(world, other_purpose, "I10")
    h.consent(world, other_purpose, purpose="care_reminders")
    for p in (refused, other_purpose):
        h.enrol(world, p, days_ago=2)
    h.item(world)
    assert services.push() == 0
    assert not em.Delivery.objects.exists()


def test_stage_follows_the_enrolment_day(world: Any) -> None:
    p = h.patient(world, language="en")
    h.condition(world, p, "E11.9", "Type 2 diabetes")
    h.consent(world, p)
    h.enrol(world, p, days_ago=9)
    h.item(world, title="week 1", icd10_prefixes=["E11"], language="en", stage="week_1")
    h.item(world, title="week 2", icd10_prefixes=["E11"], language="en", stage="week_2")
    services.push()
    assert _delivered(p) == {"week 2"}
    # A week later the patient is in weeks 3-4: nothing tagged week 1/2 arrives again.
    services.push(utc_now() + timedelta(days=7))
    assert _delivered(p) == {"week 2"}


def test_ended_enrolment_gets_nothing(world: Any) -> None:
    p = h.patient(world)
    h.condition(world, p, "I10")
    h.consent(world, p)
    e = h.enrol(world, p)
    e.status = "ended"
    e.save()
    h.item(world)
    assert services.push() == 0


def test_notification_names_no_diagnosis_and_is_daily(world: Any) -> None:
    p = h.patient(world)
    h.condition(world, p, "I10")
    h.consent(world, p)
    h.enrol(world, p)
    h.item(world, title="高血压用药须知")
    h.item(world, title="高血压饮食", icd10_prefixes=["I1"])
    services.push()
    occs = list(rm.Occurrence.objects.filter(patient=p, kind="education"))
    assert len(occs) == 1
    occ = occs[0]
    assert occ.purpose == "education"
    assert "高血压" not in str(occ.payload)
    assert occ.payload["title_en"] == "New reading for you in CareLoop"


def test_periodic_runs_once_a_day(world: Any) -> None:
    p = h.patient(world)
    h.condition(world, p, "I10")
    h.consent(world, p)
    h.enrol(world, p)
    h.item(world)
    now = utc_now()
    assert services.periodic(now) == 1
    h.item(world, title="second")
    assert services.periodic(now) == 0  # today's run is done
    assert services.periodic(now + timedelta(days=1)) == 1
    assert em.PushRun.objects.count() == 2

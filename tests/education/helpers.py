"""Building blocks of the education tests: a patient with a recorded visit, items, enrolments."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.careplans import models as cm
from careloop.education import models as em
from careloop.kit.clock import utc_now
from careloop.patients import services as patient_services
from tests.conftest import patient_data


def patient(world: Any, language: str = "zh-hans", **kw: Any) -> Any:
    nurse = world.actor("nurse.cardiology")
    return patient_services.create_patient(nurse, patient_data(preferred_language=language, **kw))


def record(world: Any, p: Any, kind: str, data: dict[str, Any]) -> Any:
    return patient_services.add_record(world.actor("nurse.cardiology"), p.pk, kind, data)


def condition(world: Any, p: Any, code: str = "I10", display: str = "原发性高血压") -> Any:
    return record(
        world, p, "conditions", {"icd10_code": code, "display": display, "status": "active"}
    )


def consent(world: Any, p: Any, granted: bool = True, purpose: str = "education") -> Any:
    return record(
        world,
        p,
        "consents",
        {
            "purpose": purpose,
            "channel": "sms",
            "granted": granted,
            "decided_on": utc_now().date().isoformat(),
            "source": "paper",
        },
    )


def visit(world: Any, p: Any, diagnoses: str = "I10 原发性高血压", **kw: Any) -> Any:
    data = {
        "kind": "outpatient",
        "department": world.cardio.pk,
        "attending": "王医生",
        "admitted_on": utc_now().date().isoformat(),
        "diagnoses": diagnoses,
        **kw,
    }
    return record(world, p, "visits", data)


def item(world: Any, **kw: Any) -> em.ContentItem:
    values: dict[str, Any] = {
        "organisation": world.org,
        "title": "在家测血压",
        "body": "坐好，休息5分钟。",
        "icd10_prefixes": ["I10"],
        "stage": "week_1",
        "language": "zh-hans",
        "status": em.ContentItem.Status.PUBLISHED,
        "published_at": utc_now(),
    }
    values.update(kw)
    return em.ContentItem.objects.create(**values)


def enrol(world: Any, p: Any, days_ago: int = 2, code: str = "edu-test") -> cm.Enrolment:
    tpl, _ = cm.PlanTemplate.objects.get_or_create(
        organisation=world.org, code=code, defaults={"name": "随访", "anchor": "enrolment"}
    )
    today: date = utc_now().astimezone(ZoneInfo(p.time_zone)).date()  # the patient's today
    return cm.Enrolment.objects.create(
        organisation=world.org,
        patient=p,
        template=tpl,
        template_version=1,
        starts_on=today - timedelta(days=days_ago),
    )

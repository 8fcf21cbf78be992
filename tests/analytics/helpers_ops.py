"""Small builders for the operations, engagement and outcome metric tests: rows made directly
with the ORM (bulk where it helps), so each test states exactly the data it counts."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from careloop.accounts.models import Department
from careloop.analytics.registry import Cohort
from careloop.patients import models as pm

SHANGHAI = ZoneInfo("Asia/Shanghai")
_seq = itertools.count(1)


def at(y: int, m: int, d: int, h: int = 10, minute: int = 0, tz: ZoneInfo = SHANGHAI) -> datetime:
    """An aware instant given as local wall time in `tz` (Shanghai unless told)."""
    return datetime(y, m, d, h, minute, tzinfo=tz).astimezone(UTC)


def make_patients(world: Any, n: int, dept: Department | None = None, **fields: Any) -> list[Any]:
    """`n` patients of the world's organisation, linked to `dept` (cardiology unless told)."""
    dept = dept or world.cardio
    rows = [
        pm.Patient(
            organisation=world.org,
            name=f"患者{next(_seq)}",
            sex=fields.get("sex", "male"),
            date_of_birth=fields.get("date_of_birth", date(1960, 5, 1)),
            deceased_on=fields.get("deceased_on"),
        )
        for _ in range(n)
    ]
    made = pm.Patient.objects.bulk_create(rows)
    if not all(p.pk for p in made):  # SQLite before RETURNING: read the ids back
        made = list(pm.Patient.objects.filter(organisation=world.org).order_by("-pk")[:n])[::-1]
    pm.PatientDepartment.objects.bulk_create(
        [pm.PatientDepartment(patient=p, department=dept) for p in made]
    )
    return made


def cohort(world: Any, today: date, **changes: Any) -> Cohort:
    return Cohort(organisation_id=world.org.pk, today=today, **changes)


def key() -> str:
    """A unique source key."""
    return f"test:{next(_seq)}"

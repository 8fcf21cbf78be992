"""Fixtures of the worklist and alert tests: alerts from real readings, tasks, overdue patients."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.alerts import models as am
from careloop.alerts import services
from careloop.kit.clock import utc_now
from careloop.observations import services as observation_services
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.observations.support import care_team, join

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Work:
    """Makes the things a worklist lists, the way the system makes them."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.teams: dict[str, Any] = {}
        self._n = 0

    def team(self, department: Any) -> Any:
        if department.code not in self.teams:
            self.teams[department.code] = care_team(self.world, department)
        return self.teams[department.code]

    def patient(self, department: str = "cardiology", **overrides: Any) -> Any:
        from tests.conftest import patient_data

        nurse = self.world.actor(f"nurse.{department}")
        p = patient_services.create_patient(nurse, patient_data(**overrides))
        dept = p.department_links.first().department
        join(p, self.team(dept))
        return p

    def diagnose(self, patient: Any, code: str, department: str = "cardiology") -> None:
        patient_services.add_record(
            self.world.actor(f"doctor.{department}"),
            patient.pk,
            "conditions",
            {"icd10_code": code, "display": code, "status": "active"},
        )

    def bp(
        self, patient: Any, systolic: float, diastolic: float, ago: timedelta | None = None
    ) -> Any:
        """A blood pressure from the patient's device (rules evaluated as in production)."""
        at = utc_now() - (ago if ago is not None else timedelta(minutes=5))
        report = observation_services.ingest(
            None,
            [
                {
                    "patient": patient.pk,
                    "code": "bp",
                    "systolic": systolic,
                    "diastolic": diastolic,
                    "unit": "mm[Hg]",
                    "effective": at.isoformat(),
                    "device": "omron-1",
                }
            ],
            organisation_id=patient.organisation_id,
            source="device",
        )
        assert report.accepted == 1, report.as_dict()
        return report

    def alert(
        self,
        patient: Any,
        *,
        priority: str = "urgent",
        rule: str | None = None,
        due_in: timedelta = timedelta(minutes=15),
        owner: Any = None,
        status: str = "open",
        text: str = "",
    ) -> am.Alert:
        """An alert row as the engine leaves it (for orders and states readings cannot set up)."""
        self._n += 1
        rule = rule or f"test-rule-{self._n}"
        now = utc_now()
        dept = patient.department_links.first().department_id
        return am.Alert.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            department_id=dept,
            rule=rule,
            key=f"{rule}:{patient.pk}:{self._n}",
            severity="high",
            priority=priority,
            priority_rank=am.PRIORITY_RANK[priority],
            performer_role=am.Alert.Route.NURSE,
            owner=owner,
            text_zh=text or f"测试提醒 {self._n}",
            text_en=text or f"Test alert {self._n}",
            values={"value": 150.0},
            triggered_at=now,
            raised_at=now,
            due_at=now + due_in,
            status=status,
        )

    def task(
        self, patient: Any, *, due_in: timedelta = timedelta(hours=-1), reason: str = ""
    ) -> am.Task:
        self._n += 1
        return services.open_task(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            kind=am.Task.Kind.CALL_PATIENT,
            source_key=f"test-task:{patient.pk}:{self._n}",
            due_at=utc_now() + due_in,
            reason=reason or "no acknowledgement",
        )

    def overdue(self, patient: Any, days: int, kind: str = "revisit") -> rm.Occurrence:
        """A plan revisit that fell due `days` days ago and was never acknowledged."""
        self._n += 1
        today = utc_now().astimezone(SHANGHAI).date()
        day = today - timedelta(days=days)
        due = datetime(day.year, day.month, day.day, 9, 0, tzinfo=SHANGHAI)
        occ = reminder_services.schedule_one(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            kind=kind,
            source_key=f"test-overdue:{patient.pk}:{self._n}",
            due_at=due,
            time_zone="Asia/Shanghai",
            payload={"title": "复诊", "title_en": "Revisit"},
        )
        rm.Occurrence.objects.filter(pk=occ.pk).update(status="sent", wake_at=None)
        return occ


@pytest.fixture
def work(world: Any) -> Work:
    return Work(world)

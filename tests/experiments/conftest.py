"""A clinic with a daily 08:00 measurement reminder, and experiments built on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from careloop.careplans import services as plan_services
from careloop.experiments.models import Experiment, Status
from careloop.reminders import models as rm
from tests.support.clinic import Clinic, utc
from tests.support.language import english_texts  # noqa: F401 - autouse: English texts

ENROLLED_AT = utc(2026, 3, 1, 16, 0)  # 00:00 on 2 March in Shanghai
BEFORE = utc(2026, 3, 1, 20, 0)  # 04:00 local: the next 08:00 reminders are 4 and 28 h away


class Lab:
    """Patients on a one-activity plan, and experiments in the clinic's organisation."""

    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.org = clinic.world.org
        self.templates: dict[tuple[str, tuple[str, ...]], Any] = {}

    def template(self, kind: str = "measurement", channels: tuple[str, ...] = ("sms",)) -> Any:
        key = (kind, channels)
        if key not in self.templates:
            spec = {
                "code": f"exp-{kind}-{'-'.join(channels)}",
                "name": "experiment plan",
                "activities": [
                    {
                        "code": "a",
                        "kind": kind,
                        "title": "测量血压",
                        "schedule": {"rrule": "FREQ=DAILY", "times": ["08:00"]},
                        "channels": list(channels),
                        "escalation": [],
                    }
                ],
            }
            self.templates[key] = plan_services.save_template(spec)[0]
        return self.templates[key]

    def patient(
        self, kind: str = "measurement", channels: tuple[str, ...] = ("sms",), **overrides: Any
    ) -> Any:
        p = self.clinic.patient(**overrides)
        plan_services.enrol(
            self.clinic.actor, p.pk, self.template(kind, channels).pk, now=ENROLLED_AT
        )
        return p

    def experiment(
        self, factor: str, arms_params: dict[str, Any] | None = None, **fields: Any
    ) -> Experiment:
        n = Experiment.objects.count() + 1
        arms = [
            {"code": "control", "name": "Control", "weight": 1, "control": True, "params": {}},
            {"code": "b", "name": "B", "weight": 1, "control": False, "params": arms_params or {}},
        ]
        values: dict[str, Any] = {
            "organisation": self.org,
            "code": f"exp{n}",
            "name": f"Experiment {n}",
            "factor": factor,
            "kinds": ["measurement"],
            "arms": arms,
            "min_per_arm": 5,
            "max_per_arm": 100,
            "looks": 4,
            "status": Status.RUNNING,
            "started_at": ENROLLED_AT,
            "seed": 7,
        }
        values.update(fields)
        return Experiment.objects.create(**values)

    def occurrences(self, patient: Any, **filters: Any) -> list[rm.Occurrence]:
        return self.clinic.occurrences(patient, **filters)

    def window(self, patient: Any, now: datetime = BEFORE) -> list[rm.Occurrence]:
        """The patient's reminders that apply(now) looks at (the next 36 hours)."""
        from datetime import timedelta

        return [
            o
            for o in self.occurrences(patient)
            if now + timedelta(minutes=5) <= o.due_at <= now + timedelta(hours=36)
        ]


@pytest.fixture
def lab(clinic: Clinic) -> Lab:
    return Lab(clinic)

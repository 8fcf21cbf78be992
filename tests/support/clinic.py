"""Fixtures for reminder tests: plans loaded, a fake SMS and voice provider, a helper world."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.channels.fakes import FakeAliyun
from careloop.channels.models import ChannelConfig
from careloop.patients import services as patient_services
from careloop.reminders import dispatcher
from careloop.reminders import models as rm


@pytest.fixture
def sms() -> Iterator[FakeAliyun]:
    fake = FakeAliyun()
    fake.start()
    yield fake
    fake.stop()


class Clinic:
    """A cardiology nurse's clinic with plans, an SMS + voice provider and helpers."""

    def __init__(self, world: Any, sms: FakeAliyun) -> None:
        self.world = world
        self.sms = sms
        self.actor = world.actor("nurse.cardiology")
        plan_services.load_templates()
        for kind, provider in (("sms", "aliyun_sms"), ("voice", "aliyun_voice")):
            cfg = ChannelConfig(organisation=world.org, kind=kind, provider=provider)
            cfg.config = sms.config()
            cfg.save()
        self.worker = "test-worker"

    def patient(self, *, consent: tuple[str, ...] = ("sms", "voice"), **overrides: Any) -> Any:
        from tests.conftest import patient_data

        p = patient_services.create_patient(self.actor, patient_data(**overrides))
        for channel in consent:
            self.consent(p, channel, True)
        return p

    def consent(self, patient: Any, channel: str, granted: bool, on: str = "2026-01-01") -> None:
        patient_services.add_record(
            self.actor,
            patient.pk,
            "consents",
            {
                "purpose": "care_reminders",
                "channel": channel,
                "granted": "on" if granted else "",
                "decided_on": on,
                "source": "paper",
            },
        )

    def prescribe(self, patient: Any, frequency: str = "qd", name: str = "氨氯地平") -> Any:
        return patient_services.add_record(
            self.actor,
            patient.pk,
            "medications",
            {
                "name": name,
                "dose": "5",
                "unit": "mg",
                "frequency": frequency,
                "route": "po",
                "status": "active",
            },
        )

    def template(self, code: str) -> cm.PlanTemplate:
        return cm.PlanTemplate.objects.get(code=code, organisation__isnull=True)

    def enrol(self, patient: Any, code: str, now: datetime, **kw: Any) -> cm.Enrolment:
        return plan_services.enrol(self.actor, patient.pk, self.template(code).pk, now=now, **kw)

    def run(self, now: datetime) -> dispatcher.Stats:
        """Run the dispatcher at ``now`` until nothing more is due."""
        total = dispatcher.Stats()
        for _ in range(20):
            stats = dispatcher.run_once(self.worker, now=now, limit=500)
            total.add(stats)
            if stats.claimed == 0:
                break
        return total

    def occurrences(self, patient: Any, **filters: Any) -> list[rm.Occurrence]:
        return list(
            rm.Occurrence.objects.filter(patient=patient, **filters).order_by("due_at", "id")
        )


@pytest.fixture
def clinic(world: Any, sms: FakeAliyun) -> Clinic:
    return Clinic(world, sms)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def day(y: int, m: int, d: int) -> date:
    return date(y, m, d)

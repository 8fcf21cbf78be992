"""The demo's home readings: sent through the ingest service, they raise a few alerts the way
real ones would, and recompute agrees with what streaming raised."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.alerts import evaluation
from careloop.alerts import models as am
from careloop.demo.build import build
from careloop.observations import models as om
from careloop.patients import models as pm

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo() -> Any:
    return build(patients=40, seed=7).organisation


class TestDemoReadings:
    def test_ninety_days_of_home_readings_and_an_on_call_rota(self, demo: Any) -> None:
        readings = om.Observation.objects.filter(organisation=demo)
        kinds = set(readings.values_list("kind", flat=True).distinct())
        assert {"bp", "glucose", "heart_rate", "weight"} <= kinds
        first = readings.order_by("effective_at").first()
        last = readings.order_by("-effective_at").first()
        assert first is not None and last is not None
        assert (last.effective_at - first.effective_at).days >= 88
        sources = set(readings.values_list("source", flat=True).distinct())
        # Staff-measured clinic readings come from the year of history (demo/history.py).
        assert {"device", "his", "staff"} <= sources <= {"device", "patient", "his", "staff"}
        rota = {(s.department.code, s.staff.username) for s in am.OnCall.objects.all()}
        assert rota == {
            ("cardiology", "head.cardiology"),
            ("endocrinology", "head.endocrinology"),
        }
        # Cardiology patients' responsible doctor is doctor.cardiology.
        teams = pm.PatientDepartment.objects.filter(department__code="cardiology")
        doctors = set(teams.values_list("care_team__responsible_doctor__username", flat=True))
        assert doctors == {"doctor.cardiology"}

    def test_a_few_alerts_raised_by_the_rules_and_recompute_agrees(self, demo: Any) -> None:
        active = am.Alert.objects.filter(organisation=demo, status__in=am.Alert.ACTIVE)
        assert 0 < active.count() < 40
        assert active.filter(priority="urgent").exists()
        # Nothing urgent waits in doctor.cardiology's list but follow-up referrals: a new
        # crisis reading shows first.
        urgent_alerts = active.filter(action="alert", priority__in=["urgent", "asap", "stat"])
        assert not urgent_alerts.filter(owner__username="doctor.cardiology").exists()
        # The crisis three weeks ago settled the next day: resolved by the rule itself.
        crisis = am.Alert.objects.filter(organisation=demo, rule="bp-crisis")
        assert [a.outcome for a in crisis] == ["auto_resolved"]
        assert evaluation.recompute(demo.pk)["identical"] is True

"""The issue's "done when", on the demo organisation, through the HTTP API and the pages.

- A device sends 185/115 for a cardiology patient: within a second an urgent alert owned by the
  patient's doctor exists and is the first row of doctor.cardiology's worklist.
- A patient on the diabetes plan sends no glucose for three days (settable clock): one alert
  for the nurse, however often the sweep runs.
- Night heart rate above the limit three nights running: one alert, not three.
- The nurse records "agreed to visit" for an overdue patient: the patient leaves the list and
  comes back after 30 days.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Exists, OuterRef, Q
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.alerts import models as am
from careloop.alerts import sweeps
from careloop.careplans import models as cm
from careloop.demo.build import build
from careloop.kit import clock
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.patients import models as pm

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Any:
    return build(patients=40, seed=11).organisation


def api(username: str) -> Client:
    token = accounts.issue_token(Staff.objects.get(username=username), "walkthrough")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def page(username: str) -> Client:
    client = Client()
    client.force_login(Staff.objects.get(username=username))
    return client


def cardiology_patient(org: Any, *, without_crisis_since: datetime | None = None) -> pm.Patient:
    """The first of doctor.cardiology's patients; optionally one without a crisis-level blood
    pressure since a moment (the demo's history is relative to now, and a crisis alert is not
    raised again within 12 hours of the last one)."""
    found = pm.Patient.objects.filter(
        organisation=org,
        deceased_on__isnull=True,
        department_links__department__code="cardiology",
        department_links__care_team__responsible_doctor__username="doctor.cardiology",
    )
    if without_crisis_since is not None:
        crisis = om.Observation.objects.filter(
            patient_id=OuterRef("pk"), kind="bp", effective_at__gte=without_crisis_since
        ).filter(Q(value__gte=180) | Q(value2__gte=110))
        found = found.exclude(Exists(crisis))
    return found.order_by("pk").first()


@pytest.fixture(autouse=True)
def real_clock() -> Any:
    yield
    clock.install(None)


class TestCrisisReading:
    def test_urgent_alert_for_the_doctor_first_on_the_worklist(self, org: Any) -> None:
        patient = cardiology_patient(org, without_crisis_since=utc_now() - timedelta(days=1))
        am.Alert.objects.filter(patient=patient).delete()
        at = (utc_now() - timedelta(minutes=2)).isoformat()
        started = time.monotonic()
        response = api("nurse.cardiology").post(
            "/api/observations",
            {
                "patient": patient.pk,
                "code": "85354-9",
                "systolic": 185,
                "diastolic": 115,
                "unit": "mm[Hg]",
                "effective": at,
                "source": "device",
                "device": "omron-walkthrough",
            },
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        alert = am.Alert.objects.get(patient=patient, rule="bp-crisis", status="open")
        assert time.monotonic() - started < 1.0
        assert alert.owner.username == "doctor.cardiology"
        assert alert.priority in ("urgent", "asap", "stat")

        worklist = api("doctor.cardiology").get("/api/worklist").json()
        first = worklist["items"][0]
        assert (first["kind"], first["id"]) == ("alert", alert.pk)
        html = page("doctor.cardiology").get("/worklist/").content.decode()
        assert patient.name in html


class TestAbsentGlucose:
    def test_three_days_without_glucose_one_alert_for_the_nurse(self, org: Any) -> None:
        enrolment = (
            cm.Enrolment.objects.filter(
                organisation=org,
                status="active",
                template__code="type2-diabetes",
                # The demo's history is relative to now: an enrolment whose plan has not asked
                # for a reading yet has no expectation to miss.
                patient__in=om.Latest.objects.filter(
                    kind="glucose", expected_since__isnull=False
                ).values("patient"),
            )
            .select_related("patient")
            .order_by("pk")
            .first()
        )
        assert enrolment is not None
        patient = enrolment.patient
        latest = om.Latest.objects.get(patient=patient, kind="glucose")
        assert latest.expected_since is not None
        # The gap starts at the last reading, or when the plan began asking for one if later.
        last = max(latest.last_at or latest.expected_since, latest.expected_since)
        am.Alert.objects.filter(patient=patient, rule="glucose-absent-3d").delete()

        # Two days and 23 hours later: nothing yet.
        clock.install(clock.FakeClock(last + timedelta(days=2, hours=23), 0.0, time.time()))
        sweeps.absence()
        assert not am.Alert.objects.filter(patient=patient, rule="glucose-absent-3d").exists()
        # Three days and an hour: one alert, for a nurse; sweeping again changes nothing.
        clock.install(clock.FakeClock(last + timedelta(days=3, hours=1), 0.0, time.time()))
        sweeps.absence()
        clock.install(clock.FakeClock(last + timedelta(days=3, hours=2), 0.0, time.time()))
        sweeps.absence()
        alerts = am.Alert.objects.filter(patient=patient, rule="glucose-absent-3d")
        assert alerts.count() == 1
        alert = alerts.get()
        assert alert.performer_role == "nurse"
        assert alert.owner is not None and alert.owner.role == "nurse"


class TestNightHeartRate:
    def test_three_high_nights_raise_one_alert(self, org: Any) -> None:
        patient = cardiology_patient(org)
        am.Alert.objects.filter(patient=patient, rule="hr-night-high-3").delete()
        zone = ZoneInfo(patient.time_zone)
        today = utc_now().astimezone(zone).date()
        items = []
        for nights_ago in (3, 2, 1):
            night = datetime.combine(today - timedelta(days=nights_ago), datetime.min.time())
            at = night.replace(hour=2, tzinfo=zone)  # 02:00 local, inside the night
            items.append(
                {
                    "patient": patient.pk,
                    "code": "8867-4",
                    "value": 118,
                    "unit": "/min",
                    "effective": at.isoformat(),
                    "source": "device",
                    "device": "watch-walkthrough",
                }
            )
        response = api("nurse.cardiology").post(
            "/api/observations/batch", json.dumps(items), content_type="application/json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["accepted"] == 3
        assert am.Alert.objects.filter(patient=patient, rule="hr-night-high-3").count() == 1


class TestOverdueCall:
    def test_agreed_to_visit_leaves_the_list_for_30_days(self, org: Any) -> None:
        nurse = api("nurse.cardiology")
        listed = nurse.get("/api/appointments/overdue?size=100").json()["items"]
        assert listed, "the demo has overdue cardiology patients"
        patient_id = listed[0]["patient"]
        response = page("nurse.cardiology").post(
            f"/appointments/overdue/{patient_id}/result/", {"outcome": "agreed_to_visit"}
        )
        assert response.status_code in (200, 302)

        def ids() -> set[int]:
            items = nurse.get("/api/appointments/overdue?size=100").json()["items"]
            return {i["patient"] for i in items}

        assert patient_id not in ids()
        now = utc_now()
        clock.install(clock.FakeClock(now + timedelta(days=29), 0.0, time.time()))
        assert patient_id not in ids()
        clock.install(clock.FakeClock(now + timedelta(days=31), 0.0, time.time()))
        assert patient_id in ids()


def test_the_clock_is_real_again() -> None:
    assert abs((utc_now() - datetime.now(UTC)).total_seconds()) < 5

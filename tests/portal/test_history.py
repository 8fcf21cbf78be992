"""History (charts JSON, latest readings, dose adherence per week), My plan and My care team:
only the signed-in patient's data, nothing staff-only, every read audited."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.observations import services as observation_services
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.observations.support import care_team, join
from tests.portal.client import portal_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(make_patient: Any, world: Any) -> Any:
    p = make_patient(name="陈国强")
    join(p, care_team(world))
    return p


def reading(patient: Any, ago: timedelta, **item: Any) -> None:
    report = observation_services.ingest(
        None,
        [{"effective": (utc_now() - ago).isoformat(), **item}],
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        source="device",
    )
    assert report.accepted == 1, report.as_dict()


def chart_json(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="history-data" type="application/json">(.*?)</script>', html)
    assert found, "no chart data on the page"
    return dict(json.loads(found.group(1)))


class TestHistory:
    def test_charts_hold_only_the_patients_own_readings(
        self, patient: Any, make_patient: Any
    ) -> None:
        reading(patient, timedelta(days=2), code="bp", systolic=138, diastolic=86)
        reading(patient, timedelta(days=1), code="glucose", value=6.2, context="fasting")
        reading(patient, timedelta(days=1), code="weight", value=71.5)
        reading(patient, timedelta(days=45), code="bp", systolic=150, diastolic=95)
        other = make_patient()
        reading(other, timedelta(days=1), code="bp", systolic=199, diastolic=119)
        response = portal_client(patient).get("/portal/history")
        assert response.status_code == 200
        data = chart_json(response.content.decode())
        charts = {c["kind"]: c for c in data["charts"]}
        assert set(charts) == {"bp", "glucose", "weight", "heart_rate"}
        assert [(p[1], p[2]) for p in charts["bp"]["points"]] == [(138.0, 86.0)]  # 30 days
        assert [p[1] for p in charts["glucose"]["points"]] == [6.2]
        assert charts["heart_rate"]["points"] == []
        assert charts["bp"]["bands"][0]["to"] == 140.0 and charts["bp"]["bands"][1]["to"] == 90.0
        assert charts["glucose"]["bands"] == [{"from": 4.4, "to": 7.0, "series": 0}]
        # The other patient's 199/119 is nowhere among the values (time stamps may hold "199").
        values = [v for c in data["charts"] for p in c["points"] for v in p[1:]]
        assert 199.0 not in values and 119.0 not in values
        longer = chart_json(portal_client(patient).get("/portal/history?days=90").content.decode())
        bp = next(c for c in longer["charts"] if c["kind"] == "bp")
        assert [p[1] for p in bp["points"]] == [150.0, 138.0]
        event = AuditEvent.objects.filter(action="portal.history.view").last()
        assert event is not None and event.patient_id == patient.pk

    def test_latest_readings_table_and_empty_states(self, patient: Any, make_patient: Any) -> None:
        client = portal_client(patient)
        empty = client.get("/portal/history").content.decode()
        assert "You have not entered any reading yet." in empty
        assert "No readings in this period." in empty
        reading(patient, timedelta(hours=3), code="glucose", value=126, unit="mg/dL",
                context="fasting")  # fmt: skip
        reading(make_patient(), timedelta(hours=1), code="weight", value=99.9)
        html = client.get("/portal/history").content.decode()
        table = html[html.index('data-testid="latest-readings"') :]
        assert "7.0" in table and "Fasting" in table
        assert "99.9" not in html
        assert '<canvas data-chart="glucose"' in html

    def test_dose_adherence_per_week(self, patient: Any) -> None:
        now = utc_now()
        made = []
        for i, hours in enumerate((2, 26, 50)):
            made.append(
                reminder_services.schedule_one(
                    organisation_id=patient.organisation_id,
                    patient_id=patient.pk,
                    kind="medication",
                    source_key=f"hist:{patient.pk}:{i}",
                    due_at=now - timedelta(hours=hours),
                    time_zone=patient.time_zone,
                    payload={"title": "按时服药", "medication": "二甲双胍"},
                )
            )
        reminder_services.acknowledge(made[0].pk, source="portal", intake="taken")
        reminder_services.acknowledge(made[1].pk, source="portal", intake="skipped", reason="cost")
        html = portal_client(patient).get("/portal/history?days=7").content.decode()
        table = html[html.index('data-testid="adherence"') :]
        rows = re.findall(r"<td>(\d+) / (\d+)</td>", table)
        assert sum(int(t) for t, _p in rows) == 1
        assert sum(int(p) for _t, p in rows) == 3

    def test_unknown_ranges_fall_back_to_30_days(self, patient: Any) -> None:
        html = portal_client(patient).get("/portal/history?days=abc").content.decode()
        assert chart_json(html)["days"] == 30


class TestPlanAndTeam:
    def test_plan_in_plain_words_without_staff_only_details(self, patient: Any, world: Any) -> None:
        doctor = world.actor("doctor.cardiology")
        patient_services.add_record(
            doctor, patient.pk, "medications",
            {"name": "氨氯地平", "dose": "5", "unit": "mg", "route": "po", "frequency": "qd",
             "status": "active"},
        )  # fmt: skip
        plan_services.load_templates()
        template = cm.PlanTemplate.objects.get(code="hypertension")
        plan_services.enrol(doctor, patient.pk, template.pk)
        client = portal_client(patient, language="en")
        html = client.get("/portal/plan").content.decode()
        assert "Hypertension follow-up" in html
        assert "Measure and log your morning blood pressure" in html
        assert "every day at 08:30" in html
        assert "氨氯地平" in html and "5 mg" in html
        assert "Nurse follow-up call" not in html  # calls are the care team's work
        assert "escalation" not in html.lower() and "voice" not in html.lower()
        assert AuditEvent.objects.filter(action="portal.plan.view", patient_id=patient.pk).exists()

    def test_team_names_the_doctor_and_nurse_and_how_to_reach_them(
        self, patient: Any, world: Any
    ) -> None:
        am.Alert.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            department=world.cardio,
            rule="bp-crisis",
            key=f"x:{patient.pk}",
            severity="critical",
            priority="urgent",
            priority_rank=am.PRIORITY_RANK["urgent"],
            performer_role=am.Alert.Route.DOCTOR,
            text_zh="内部",
            text_en="internal alert text",
            values={},
            triggered_at=utc_now(),
            raised_at=utc_now(),
            due_at=utc_now(),
        )
        html = portal_client(patient).get("/portal/team").content.decode()
        assert "doctor.cardiology" in html and "nurse.cardiology" in html
        assert "Cardiology" in html
        assert 'href="/portal/messages/"' in html
        assert "internal alert text" not in html
        assert AuditEvent.objects.filter(action="portal.team.view", patient_id=patient.pk).exists()

    def test_a_patient_without_plan_or_team_sees_empty_states(self, make_patient: Any) -> None:
        client = portal_client(make_patient())
        assert "You are not on a care plan" in client.get("/portal/plan").content.decode()
        assert "Not assigned yet" in client.get("/portal/team").content.decode()


def test_doses_of_others_never_count(patient: Any, make_patient: Any) -> None:
    other = make_patient()
    occ = reminder_services.schedule_one(
        organisation_id=other.organisation_id,
        patient_id=other.pk,
        kind="medication",
        source_key=f"other:{other.pk}",
        due_at=utc_now() - timedelta(hours=1),
        time_zone=other.time_zone,
        payload={"title": "按时服药"},
    )
    reminder_services.acknowledge(occ.pk, source="portal", intake="taken")
    html = portal_client(patient).get("/portal/history").content.decode()
    assert "No medicine reminders in this period." in html
    assert rm.IntakeEvent.objects.count() == 1

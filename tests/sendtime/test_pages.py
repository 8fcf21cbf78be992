"""Send-time pages (report, settings), the report's arithmetic and the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.patients import models as pm
from careloop.sendtime import models as m
from careloop.sendtime import services
from tests.conftest import PASSWORD
from tests.sendtime.helpers import assign, local, occurrence, settings

DAY = date(2026, 3, 2)  # a Monday


def client_for(username: str) -> Client:
    c = Client()
    assert c.login(username=username, password=PASSWORD)
    return c


def outcomes(
    patient: Any,
    arm: str,
    acked: int,
    sent: int,
    *,
    day: date = DAY,
    hour: int = 9,
    kind: str = "measurement",
) -> None:
    """``sent`` final outcomes of ``arm`` for the patient, ``acked`` of them acknowledged."""
    for i in range(sent):
        occ = occurrence(patient, day, hour, i % 60, activity=f"{arm}{kind}{i}")
        m.Outcome.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            occurrence=occ,
            arm=arm,
            kind=kind,
            hour=hour,
            channel="sms" if arm == "learn" else "",
            due_at=occ.due_at,
            sent=True,
            success=i < acked,
            counted=arm == "learn",
        )


class TestReport:
    def test_newcombe_interval_against_the_published_example(self) -> None:
        # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
        # hybrid score interval (method 10) 0.0524 to 0.3339.
        low, high = services.newcombe(56, 70, 48, 80)
        assert round(low, 4) == 0.0524
        assert round(high, 4) == 0.3339
        lo, hi = services.wilson(0, 10)
        assert lo == pytest.approx(0.0, abs=1e-12) and round(hi, 4) == 0.2775

    def test_figures_on_known_counts(self, world: Any, make_patient: Any) -> None:
        a, b = make_patient(), make_patient()
        outcomes(a, "learn", 6, 10)
        outcomes(b, "control", 3, 10, hour=8)
        outcomes(a, "learn", 1, 1, day=DAY + timedelta(days=7), hour=19)
        # Not sent (skipped): left out of every figure.
        occ = occurrence(b, DAY, 10, activity="skipped")
        m.Outcome.objects.create(
            organisation=world.org,
            patient=b,
            occurrence=occ,
            arm="control",
            kind="measurement",
            hour=10,
            due_at=occ.due_at,
            sent=False,
        )
        r = services.report(world.org.pk, DAY, DAY + timedelta(days=14))
        assert r["arms"]["learn"] == {"sent": 11, "acknowledged": 7, "rate": 7 / 11, "patients": 1}
        assert r["arms"]["control"] == {"sent": 10, "acknowledged": 3, "rate": 0.3, "patients": 1}
        lift = r["lift"]
        assert lift["absolute"] == pytest.approx(7 / 11 - 0.3)
        assert lift["relative"] == pytest.approx((7 / 11 - 0.3) / 0.3)
        assert (lift["ci_low"], lift["ci_high"]) == pytest.approx(services.newcombe(7, 11, 3, 10))
        assert lift["ci_low"] < lift["absolute"] < lift["ci_high"]
        assert r["hours"]["learn"][9] == 10 and r["hours"]["learn"][19] == 1
        assert r["hours"]["control"][8] == 10 and sum(r["hours"]["control"]) == 10
        assert r["channels"] == {"sms": 11}
        # Every outcome here is a measurement reminder: its breakdown repeats the totals.
        assert list(r["kinds"]) == ["measurement"]
        measured = r["kinds"]["measurement"]
        assert measured["learn"] == {"sent": 11, "acknowledged": 7, "rate": 7 / 11}
        assert measured["control"] == {"sent": 10, "acknowledged": 3, "rate": 0.3}
        assert measured["lift"]["absolute"] == pytest.approx(lift["absolute"])
        assert [w["week"] for w in r["weeks"]] == ["2026-03-02", "2026-03-09"]
        assert r["weeks"][0]["learn"] == {"sent": 10, "acknowledged": 6, "rate": 0.6}
        assert r["weeks"][1]["control"] == {"sent": 0, "acknowledged": 0, "rate": None}
        # The period's end is exclusive, and departments limit the patients.
        assert (
            services.report(world.org.pk, DAY, DAY + timedelta(days=7))["arms"]["learn"]["sent"]
            == 10
        )
        pm.PatientDepartment.objects.filter(patient=b).delete()
        scoped = services.report(
            world.org.pk, DAY, DAY + timedelta(days=14), department_ids=[world.cardio.pk]
        )
        assert scoped["arms"]["control"]["sent"] == 0 and scoped["lift"]["absolute"] is None


class TestPages:
    def test_report_for_analytics_viewers(self, world: Any, make_patient: Any) -> None:
        a, b = make_patient(), make_patient()
        outcomes(a, "learn", 6, 10)
        outcomes(b, "control", 3, 10)
        c = client_for("nurse.cardiology")
        page = c.get("/sendtime/", {"start": "2026-03-01", "end": "2026-03-31"})
        assert page.status_code == 200
        text = page.content.decode()
        assert 'data-testid="sendtime-lift"' in text
        assert "+30.0" in text  # 60% vs 30%
        assert "data-sendtime-chart" in text
        assert "sendtime-settings-link" not in text  # nurses do not manage the settings
        assert 'data-testid="sendtime-kinds"' not in text  # one kind: nothing to break down
        csv = c.get("/sendtime/", {"start": "2026-03-01", "end": "2026-03-31", "format": "csv"})
        assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
        body = csv.content.decode("utf-8-sig")
        assert "2026-03-02,10,6,60.0%,10,3,30.0%" in body
        assert client_for("auditor").get("/sendtime/").status_code == 403

    def test_each_kind_has_its_own_lift(self, world: Any, make_patient: Any) -> None:
        a, b = make_patient(), make_patient()
        outcomes(a, "learn", 6, 10)
        outcomes(b, "control", 3, 10)
        outcomes(a, "learn", 8, 10, kind="medication")
        outcomes(b, "control", 7, 10, kind="medication")
        page = client_for("nurse.cardiology").get(
            "/sendtime/", {"start": "2026-03-01", "end": "2026-03-31"}
        )
        text = page.content.decode()
        table = text[text.index('data-testid="sendtime-kinds"') :].split("</table>")[0]
        rows = table.split("<tr>")[2:]
        assert [("+10.0" in r, "+30.0" in r) for r in rows] == [(False, True), (True, False)]
        assert "+20.0" in text  # both kinds together: 70% vs 50%

    def test_report_empty_and_bad_period(self, world: Any) -> None:
        c = client_for("admin")
        page = c.get("/sendtime/")
        assert page.status_code == 200
        assert 'data-testid="sendtime-empty"' in page.content.decode()
        assert 'data-testid="sendtime-disabled"' in page.content.decode()
        bad = c.get("/sendtime/", {"start": "2026-13-01"})
        assert bad.status_code == 400
        backwards = c.get("/sendtime/", {"start": "2026-03-10", "end": "2026-03-01"})
        assert backwards.status_code == 400
        assert "before its start" in backwards.content.decode()

    def form(self, **overrides: str) -> dict[str, str]:
        data = {
            "enabled": "on",
            "control_percent": "25",
            "prior_strength": "6",
            "measurement_from": "07:30",
            "measurement_until": "20:00",
            "questionnaire_from": "",
            "questionnaire_until": "",
            "education_from": "09:00",
            "education_until": "18:00",
            "medication_minutes": "120",
        }
        data.update(overrides)
        return data

    def test_settings_saved_and_audited(self, world: Any) -> None:
        c = client_for("admin")
        page = c.get("/sendtime/settings/")
        assert page.status_code == 200
        assert 'value="07:00"' in page.content.decode()  # the defaults
        assert 'data-testid="sendtime-unsaved"' in page.content.decode()
        done = c.post("/sendtime/settings/", self.form())
        assert done.status_code == 302
        saved = m.Settings.objects.get(organisation=world.org)
        assert saved.enabled and saved.control_share == 0.25 and saved.prior_strength == 6
        assert saved.windows == {
            "measurement": ["07:30", "20:00"],
            "education": ["09:00", "18:00"],
            "medication": 120,
        }
        event = AuditEvent.objects.filter(action="sendtime.settings.change").get()
        assert event.detail["after"]["control_share"] == 0.25
        again = c.get("/sendtime/settings/").content.decode()
        assert 'value="07:30"' in again and 'value="120"' in again

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"measurement_from": "20:00", "measurement_until": "20:30"}, "at least one hour"),
            ({"education_until": ""}, "leave both empty"),
            ({"medication_minutes": "300"}, "180"),
            ({"control_percent": "95"}, "90"),
            ({"measurement_from": "7 o'clock"}, 'aria-invalid="true"'),
        ],
    )
    def test_bad_settings_answer_400_and_keep_the_input(
        self, world: Any, overrides: dict[str, str], message: str
    ) -> None:
        c = client_for("admin")
        page = c.post("/sendtime/settings/", self.form(**overrides))
        assert page.status_code == 400
        text = page.content.decode()
        assert message in text
        assert 'value="09:00"' in text  # what was typed is still there
        assert not m.Settings.objects.filter(organisation=world.org).exists()

    def test_settings_need_org_manage(self, world: Any) -> None:
        c = client_for("head.cardiology")
        assert c.get("/sendtime/settings/").status_code == 403
        assert c.post("/sendtime/settings/", self.form()).status_code == 403
        assert not m.Settings.objects.exists()


class TestCommand:
    def test_plan_learn_report(self, world: Any, make_patient: Any) -> None:
        settings(world.org, enabled=True, control_share=0.0)
        p = make_patient()
        assign(p, "learn")
        out = StringIO()
        call_command("sendtime", "plan", stdout=out)
        assert out.getvalue().startswith("test: 0 routed")
        call_command("sendtime", "learn", "--organisation", "test", stdout=out)
        assert "test: 0 outcomes folded" in out.getvalue()
        outcomes(p, "learn", 2, 4, day=date(2026, 3, 2))
        report = StringIO()
        call_command("sendtime", "report", "--since", "2026-03-01", stdout=report)
        data = json.loads(report.getvalue())
        assert data["organisation"] == "test"
        assert data["arms"]["learn"]["sent"] == 4

    def test_bad_arguments(self, world: Any) -> None:
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="no organisation"):
            call_command("sendtime", "plan", "--organisation", "nope")
        with pytest.raises(CommandError, match="not a date"):
            call_command("sendtime", "report", "--organisation", "test", "--since", "soon")


def test_local_helper_is_shanghai() -> None:
    assert local(DAY, 8).hour == 0

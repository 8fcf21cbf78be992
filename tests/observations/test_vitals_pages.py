"""The patient page's vitals and alerts tabs, through the test client: what a doctor and a nurse
see, what they enter, and what staff outside the patient's departments cannot reach."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from careloop.accounts.models import CareTeam, Staff
from careloop.alerts import models as am
from careloop.alerts import services as alert_services
from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.observations import services
from careloop.patients import models as pm
from careloop.patients import services as patient_services

SHANGHAI = ZoneInfo("Asia/Shanghai")


def signed_in(username: str, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    user = Staff.objects.get(username=username)
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def text(response: Any) -> str:
    body = response.content.decode()
    # The CSP allows no inline styles or scripts.
    assert 'style="' not in body
    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    return body


def local_input(at: Any, zone: ZoneInfo = SHANGHAI) -> str:
    """A moment as the datetime-local field holds it, on the patient's clock."""
    return at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def charts_of(body: str) -> dict[str, dict[str, Any]]:
    """The data of every chart on a page, by kind."""
    import html

    found = {}
    for kind, raw in re.findall(r'data-vitals-chart="(\w+)" data-series="([^"]*)"', body):
        found[kind] = json.loads(html.unescape(raw))
    return found


HX = {"HX-Request": "true"}


@pytest.fixture
def patient(world: Any, make_patient: Any) -> pm.Patient:
    """A cardiology patient on amlodipine whose care team's responsible doctor is
    doctor.cardiology."""
    p = make_patient(name="王建国")
    team = CareTeam.objects.create(
        department=world.cardio,
        name="高血压随访组",
        responsible_doctor=world.staff["doctor.cardiology"],
    )
    pm.PatientDepartment.objects.filter(patient=p).update(care_team=team)
    patient_services.add_record(
        world.actor("nurse.cardiology"),
        p.pk,
        "medications",
        {"name": "氨氯地平片", "dose": "5", "unit": "mg", "frequency": "qd", "status": "active"},
    )
    return p


def record(world: Any, p: pm.Patient, hours_ago: float, **item: Any) -> om.Observation:
    at = utc_now() - timedelta(hours=hours_ago)
    return services.record_one(
        world.actor("nurse.cardiology"), p.pk, {"effective": at.isoformat(), **item}
    )


def bp(world: Any, p: pm.Patient, hours_ago: float, sys_: int, dia: int) -> om.Observation:
    return record(world, p, hours_ago, code="bp", systolic=sys_, diastolic=dia)


class TestTheVitalsTab:
    @pytest.mark.parametrize("username", ["doctor.cardiology", "nurse.cardiology"])
    def test_clinicians_of_the_department_see_charts_and_readings(
        self, world: Any, patient: pm.Patient, username: str
    ) -> None:
        bp(world, patient, 30, 142, 91)
        record(world, patient, 20, code="glucose", value=126, unit="mg/dL", context="fasting")
        body = text(signed_in(username).get(f"/patients/{patient.pk}/tab/vitals/"))
        charts = charts_of(body)
        assert set(charts) == {"bp", "glucose"}  # heart rate and weight: empty states
        assert body.count("No readings in this period.") == 2
        assert charts["bp"]["points"][0][1:3] == [142.0, 91.0]
        assert 'data-testid="reading-form"' in body
        assert "142/91" in body and "7.0" in body and "126 mg/dL" in body

    def test_the_full_page_opens_on_the_vitals_tab(self, world: Any, patient: pm.Patient) -> None:
        bp(world, patient, 1, 135, 85)
        body = text(signed_in("doctor.cardiology").get(f"/patients/{patient.pk}/?tab=vitals"))
        assert 'data-tab="vitals" hx-get' in body or 'data-tab="vitals"' in body
        assert "observations/vitals.js" in body and "chart.umd.min.js" in body
        assert "bp" in charts_of(body)

    def test_a_patient_with_no_readings_gets_empty_states(self, patient: pm.Patient) -> None:
        body = text(signed_in("nurse.cardiology").get(f"/patients/{patient.pk}/tab/vitals/"))
        assert charts_of(body) == {}
        assert 'data-testid="vitals-empty"' in body
        assert "No readings recorded yet." in body
        assert "No symptoms recorded." in body
        assert "No adverse drug reactions reported." in body

    def test_times_are_on_the_patients_clock(self, world: Any, make_patient: Any) -> None:
        p = make_patient(time_zone="America/New_York")
        at = utc_now().replace(second=0, microsecond=0) - timedelta(hours=5)
        services.record_one(
            world.actor("nurse.cardiology"),
            p.pk,
            {"code": "heart_rate", "value": 72, "effective": at.isoformat()},
        )
        body = text(signed_in("nurse.cardiology").get(f"/patients/{p.pk}/tab/vitals/"))
        shown = at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
        assert shown in body
        assert "America/New_York" in body

    def test_the_time_range_picker_reloads_the_charts(
        self, world: Any, patient: pm.Patient
    ) -> None:
        bp(world, patient, 24 * 3, 150, 95)
        bp(world, patient, 24 * 20, 160, 100)
        bp(world, patient, 24 * 200, 170, 105)
        client = signed_in("doctor.cardiology")
        counts = {}
        for key in ("7d", "30d", "90d", "1y"):
            response = client.get(f"/vitals/{patient.pk}/charts/?range={key}", headers=HX)
            body = text(response)
            assert f'data-range="{key}"' in body and 'aria-current="true"' in body
            counts[key] = len(charts_of(body)["bp"]["points"])
        assert counts == {"7d": 1, "30d": 2, "90d": 2, "1y": 3}
        # Without htmx the address leads back to the tab; a made-up range is the default.
        response = client.get(f"/vitals/{patient.pk}/charts/?range=5y")
        assert response.status_code == 302

    def test_the_bp_chart_band_is_the_target_or_the_personal_threshold(
        self, world: Any, patient: pm.Patient
    ) -> None:
        bp(world, patient, 2, 138, 88)
        client = signed_in("doctor.cardiology")
        data = charts_of(text(client.get(f"/vitals/{patient.pk}/charts/", headers=HX)))["bp"]
        assert [(b["from"], b["to"]) for b in data["bands"]] == [(90.0, 140.0), (60.0, 90.0)]
        alert_services.set_personal_threshold(
            world.actor("doctor.cardiology"), patient.pk, "ph-bp-followup", {"sys": 150, "dia": 95}
        )
        body = text(client.get(f"/vitals/{patient.pk}/charts/", headers=HX))
        data = charts_of(body)["bp"]
        assert [b["to"] for b in data["bands"]] == [150.0, 95.0]
        assert "Target below 150/95 mmHg" in body and "personal target" in body

    def test_glucose_points_carry_their_context_and_the_mg_dl_factor(
        self, world: Any, patient: pm.Patient
    ) -> None:
        record(world, patient, 3, code="glucose", value=6.1, context="fasting")
        record(world, patient, 2, code="glucose", value=9.4, context="postprandial")
        data = charts_of(
            text(signed_in("nurse.cardiology").get(f"/vitals/{patient.pk}/charts/", headers=HX))
        )
        glucose = data["glucose"]
        assert [p[3] for p in glucose["points"]] == ["fasting", "postprandial"]
        assert glucose["mgdl"] == 18.0
        assert glucose["labels"]["postprandial"] == "After a meal"
        assert glucose["bands"] == [{"from": 3.9, "to": 7.0, "series": -1}]

    def test_spo2_is_charted_only_when_there_is_some(self, world: Any, patient: pm.Patient) -> None:
        client = signed_in("nurse.cardiology")
        assert 'data-testid="chart-spo2"' not in text(
            client.get(f"/vitals/{patient.pk}/charts/", headers=HX)
        )
        record(world, patient, 1, code="spo2", value=95)
        body = text(client.get(f"/vitals/{patient.pk}/charts/", headers=HX))
        assert charts_of(body)["spo2"]["lines"][0]["value"] == 90.0

    def test_viewing_the_tab_is_audited(self, world: Any, patient: pm.Patient) -> None:
        bp(world, patient, 1, 130, 80)
        signed_in("doctor.cardiology").get(f"/patients/{patient.pk}/tab/vitals/")
        actions = set(
            AuditEvent.objects.filter(patient_id=patient.pk, actor="doctor.cardiology").values_list(
                "action", flat=True
            )
        )
        assert "observation.read" in actions


class TestScope:
    @pytest.mark.parametrize(
        "url",
        [
            "/patients/{pid}/tab/vitals/",
            "/patients/{pid}/tab/alerts/",
            "/vitals/{pid}/charts/",
            "/vitals/{pid}/readings/",
            "/vitals/{pid}/alerts/",
            "/vitals/{pid}/readings/new/",
            "/vitals/{pid}/thresholds/",
        ],
    )
    @pytest.mark.parametrize(
        "username", ["nurse.endocrinology", "nurse.other", "doctor.endocrinology"]
    )
    def test_outside_the_patients_departments_nothing_is_found(
        self, patient: pm.Patient, url: str, username: str
    ) -> None:
        response = signed_in(username).get(url.format(pid=patient.pk), headers=HX)
        assert response.status_code == 404

    def test_nothing_is_stored_for_a_patient_out_of_scope(self, patient: pm.Patient) -> None:
        client = signed_in("nurse.endocrinology")
        response = client.post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "150",
                "diastolic": "90",
                "effective": local_input(utc_now()),
            },
        )
        assert response.status_code == 404
        response = client.post(
            f"/vitals/{patient.pk}/reactions/new/",
            {"drug": "阿司匹林", "symptom": "皮疹", "severity": "1", "onset": "2026-01-01"},
        )
        assert response.status_code == 404
        assert not om.Observation.objects.exists()
        assert not om.AdverseReaction.objects.exists()

    def test_roles_that_do_not_write_clinical_data_cannot_enter_readings(
        self, patient: pm.Patient
    ) -> None:
        response = signed_in("admin").post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "150",
                "diastolic": "90",
                "effective": local_input(utc_now()),
            },
        )
        assert response.status_code == 403
        # The admin reads the tab, without the forms.
        body = text(signed_in("admin").get(f"/patients/{patient.pk}/tab/vitals/"))
        assert 'data-testid="reading-form"' not in body
        assert signed_in("auditor").get(f"/patients/{patient.pk}/tab/vitals/").status_code == 403


class TestAddingAReading:
    def test_a_blood_pressure_is_stored_audited_and_shown_at_once(
        self, world: Any, patient: pm.Patient
    ) -> None:
        at = utc_now() - timedelta(minutes=30)
        response = signed_in("nurse.cardiology").post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "152",
                "diastolic": "96",
                "effective": local_input(at),
                "range": "7d",
            },
            headers=HX,
        )
        body = text(response)
        assert response.status_code == 200
        obs = om.Observation.objects.get(patient=patient)
        assert (obs.kind, obs.value, obs.value2, obs.source) == ("bp", 152.0, 96.0, "staff")
        assert obs.entered_by == world.staff["nurse.cardiology"]
        assert obs.time_zone == "Asia/Shanghai"
        assert obs.effective_at == at.replace(second=0, microsecond=0)
        assert "Reading saved: Blood pressure 152/96 mmHg" in body
        # The table and the charts come along, swapped in out of band.
        assert 'id="vitals-readings" hx-swap-oob="true"' in body
        assert 'id="vitals-charts" hx-swap-oob="true"' in body and 'data-range="7d"' in body
        assert charts_of(body)["bp"]["points"][0][1:3] == [152.0, 96.0]
        audited = AuditEvent.objects.filter(
            action="observation.create", patient_id=patient.pk, actor="nurse.cardiology"
        )
        assert audited.count() == 1

    def test_without_htmx_the_page_goes_back_to_the_tab(self, patient: pm.Patient) -> None:
        client = signed_in("doctor.cardiology")
        assert text(client.get(f"/vitals/{patient.pk}/readings/new/")).count("<form") >= 1
        response = client.post(
            f"/vitals/{patient.pk}/readings/new/",
            {"kind": "heart_rate", "value": "64", "effective": local_input(utc_now())},
        )
        assert response.status_code == 302
        assert response["Location"] == f"/patients/{patient.pk}/?tab=vitals"
        assert om.Observation.objects.get(patient=patient).value == 64.0

    def test_glucose_in_mg_dl_is_stored_in_mmol_l(self, patient: pm.Patient) -> None:
        client = signed_in("nurse.cardiology")
        response = client.post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "glucose",
                "value": "126",
                "unit": "mg/dL",
                "context": "postprandial",
                "effective": local_input(utc_now()),
            },
            headers=HX,
        )
        body = text(response)
        obs = om.Observation.objects.get(patient=patient)
        assert (obs.value, obs.unit, obs.context) == (7.0, "mmol/L", "postprandial")
        assert "7.0" in body and "126 mg/dL" in body and "After a meal" in body

    @pytest.mark.parametrize(
        ("data", "field", "message"),
        [
            (
                {"kind": "bp", "systolic": "400", "diastolic": "90"},
                "systolic",
                "400 mmHg is not a possible reading; enter a value from 40 to 300.",
            ),
            (
                {"kind": "bp", "systolic": "120", "diastolic": "130"},
                "diastolic",
                "The diastolic value must be lower than the systolic.",
            ),
            ({"kind": "bp", "systolic": "", "diastolic": "80"}, "systolic", "Enter a number."),
            (
                {"kind": "glucose", "value": "-2", "unit": "mmol/L", "context": "fasting"},
                "value",
                "-2 mmol/L is not a possible reading",
            ),
            (
                {"kind": "glucose", "value": "2000", "unit": "mg/dL", "context": "fasting"},
                "value",
                "2000 mg/dL is not a possible reading; enter a value from 9 to 1080.",
            ),
            ({"kind": "spo2", "value": "130"}, "value", "130 % is not a possible reading"),
            ({"kind": "weight", "value": "abc"}, "value", "Enter a number."),
        ],
    )
    def test_impossible_values_are_refused_next_to_their_field(
        self, patient: pm.Patient, data: dict[str, str], field: str, message: str
    ) -> None:
        response = signed_in("nurse.cardiology").post(
            f"/vitals/{patient.pk}/readings/new/",
            {**data, "effective": local_input(utc_now())},
            headers=HX,
        )
        body = text(response)
        assert response.status_code == 200  # htmx swaps the form with its errors in
        error = re.search(rf'data-testid="error-{field}">([^<]*)<', body)
        assert error is not None, body
        assert message in error.group(1)
        assert not om.Observation.objects.exists()

    def test_a_refusal_without_htmx_answers_422(self, patient: pm.Patient) -> None:
        response = signed_in("nurse.cardiology").post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "400",
                "diastolic": "90",
                "effective": local_input(utc_now()),
            },
        )
        assert response.status_code == 422
        assert 'data-testid="error-systolic"' in text(response)

    def test_a_time_in_the_future_is_refused(self, patient: pm.Patient) -> None:
        response = signed_in("nurse.cardiology").post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "130",
                "diastolic": "80",
                "effective": local_input(utc_now() + timedelta(hours=3)),
            },
            headers=HX,
        )
        assert "The time cannot be in the future." in text(response)
        assert not om.Observation.objects.exists()

    def test_the_same_reading_twice_is_stored_once(self, patient: pm.Patient) -> None:
        client = signed_in("nurse.cardiology")
        data = {
            "kind": "bp",
            "systolic": "130",
            "diastolic": "80",
            "effective": local_input(utc_now()),
        }
        client.post(f"/vitals/{patient.pk}/readings/new/", data, headers=HX)
        body = text(client.post(f"/vitals/{patient.pk}/readings/new/", data, headers=HX))
        assert "This reading is already recorded." in body
        assert om.Observation.objects.count() == 1

    def test_a_crisis_reading_raises_an_alert_for_the_responsible_doctor(
        self, world: Any, patient: pm.Patient
    ) -> None:
        signed_in("nurse.cardiology").post(
            f"/vitals/{patient.pk}/readings/new/",
            {
                "kind": "bp",
                "systolic": "185",
                "diastolic": "115",
                "effective": local_input(utc_now()),
            },
            headers=HX,
        )
        alert = am.Alert.objects.get(patient=patient, rule="bp-crisis")
        assert alert.owner == world.staff["doctor.cardiology"]
        assert alert.priority == "urgent"


class TestReadingsTable:
    def test_readings_are_paged_newest_first(self, world: Any, patient: pm.Patient) -> None:
        for i in range(25):
            record(world, patient, i + 1, code="heart_rate", value=60 + i)
        client = signed_in("nurse.cardiology")
        first = text(client.get(f"/patients/{patient.pk}/tab/vitals/"))
        assert first.count('data-testid="reading-row"') == 20
        assert f'hx-get="/vitals/{patient.pk}/readings/?page=2"' in first
        second = text(client.get(f"/vitals/{patient.pk}/readings/?page=2", headers=HX))
        assert second.count('data-testid="reading-row"') == 5
        values = re.findall(r"<strong>(\d+)</strong> /min", second)
        assert values == ["80", "81", "82", "83", "84"]
        assert AuditEvent.objects.filter(
            action="observation.read", patient_id=patient.pk, detail__page=2
        ).exists()
        # A page past the end shows the last one.
        last = text(client.get(f"/vitals/{patient.pk}/readings/?page=9", headers=HX))
        assert last.count('data-testid="reading-row"') == 5


class TestSymptomDiary:
    def test_a_symptom_is_recorded_and_listed(self, world: Any, patient: pm.Patient) -> None:
        at = utc_now() - timedelta(hours=2)
        body = text(
            signed_in("nurse.cardiology").post(
                f"/vitals/{patient.pk}/symptoms/new/",
                {
                    "symptom": "头晕",
                    "severity": "6",
                    "effective": local_input(at),
                    "note": "起床时",
                },
                headers=HX,
            )
        )
        entry = om.SymptomEntry.objects.get(patient=patient)
        assert (entry.symptom, entry.severity, entry.note) == ("头晕", 6, "起床时")
        assert entry.effective_at == at.replace(second=0, microsecond=0)
        assert "Symptom recorded." in body and "头晕" in body and "6/10" in body
        assert AuditEvent.objects.filter(action="symptom.create", patient_id=patient.pk).exists()

    def test_a_severity_out_of_range_is_refused(self, patient: pm.Patient) -> None:
        body = text(
            signed_in("nurse.cardiology").post(
                f"/vitals/{patient.pk}/symptoms/new/",
                {"symptom": "头晕", "severity": "11", "effective": local_input(utc_now())},
                headers=HX,
            )
        )
        assert 'data-testid="error-severity"' in body
        assert not om.SymptomEntry.objects.exists()


class TestAdverseReactions:
    def test_a_reaction_to_one_of_the_patients_medicines(
        self, world: Any, patient: pm.Patient
    ) -> None:
        medicine = pm.Medication.objects.get(patient=patient)
        client = signed_in("nurse.cardiology")
        form = text(client.get(f"/patients/{patient.pk}/tab/vitals/"))
        assert f'<option value="{medicine.pk}">氨氯地平片</option>' in form
        body = text(
            client.post(
                f"/vitals/{patient.pk}/reactions/new/",
                {
                    "medication": str(medicine.pk),
                    "symptom": "脚踝水肿",
                    "severity": "2",
                    "onset": utc_now().date().isoformat(),
                },
                headers=HX,
            )
        )
        reaction = om.AdverseReaction.objects.get(patient=patient)
        assert (reaction.drug, reaction.medication, reaction.severity) == (
            "氨氯地平片",
            medicine,
            2,
        )
        assert "脚踝水肿" in body and "Moderate" in body
        assert AuditEvent.objects.filter(
            action="adverse_reaction.create", patient_id=patient.pk
        ).exists()

    def test_a_typed_drug(self, patient: pm.Patient) -> None:
        signed_in("doctor.cardiology").post(
            f"/vitals/{patient.pk}/reactions/new/",
            {
                "medication": "other",
                "drug": "阿托伐他汀",
                "symptom": "肌肉疼痛",
                "severity": "1",
                "onset": utc_now().date().isoformat(),
            },
            headers=HX,
        )
        reaction = om.AdverseReaction.objects.get(patient=patient)
        assert (reaction.drug, reaction.medication) == ("阿托伐他汀", None)

    def test_no_drug_or_a_future_onset_is_refused(self, patient: pm.Patient) -> None:
        client = signed_in("doctor.cardiology")
        body = text(
            client.post(
                f"/vitals/{patient.pk}/reactions/new/",
                {"symptom": "皮疹", "severity": "1", "onset": utc_now().date().isoformat()},
                headers=HX,
            )
        )
        assert "Choose one of the patient&#x27;s medicines or type the drug." in body
        future = (utc_now() + timedelta(days=3)).date().isoformat()
        body = text(
            client.post(
                f"/vitals/{patient.pk}/reactions/new/",
                {"drug": "阿司匹林", "symptom": "皮疹", "severity": "1", "onset": future},
                headers=HX,
            )
        )
        assert 'data-testid="error-onset"' in body
        assert not om.AdverseReaction.objects.exists()

    def test_a_reported_reaction_alerts_the_responsible_doctor_once(
        self, world: Any, patient: pm.Patient
    ) -> None:
        client = signed_in("nurse.cardiology")
        data = {
            "drug": "阿司匹林",
            "symptom": "黑便",
            "severity": "3",
            "onset": utc_now().date().isoformat(),
        }
        client.post(f"/vitals/{patient.pk}/reactions/new/", data, headers=HX)
        alerts = am.Alert.objects.filter(patient=patient, rule="adr-reported")
        assert alerts.count() == 1
        alert = alerts.get()
        assert alert.owner == world.staff["doctor.cardiology"]
        assert alert.performer_role == "doctor"
        assert alert.priority == "asap"  # severe: escalated
        assert "阿司匹林" in alert.text_en
        # A second report within the dedupe hour folds into the open alert.
        client.post(f"/vitals/{patient.pk}/reactions/new/", data, headers=HX)
        assert am.Alert.objects.filter(patient=patient, rule="adr-reported").count() == 1


class TestPersonalThresholds:
    def test_a_doctor_sets_and_removes_a_patients_own_target(
        self, world: Any, patient: pm.Patient
    ) -> None:
        client = signed_in("doctor.cardiology")
        tab = text(client.get(f"/patients/{patient.pk}/tab/vitals/"))
        options = re.findall(
            r'<option value="([a-z0-9-]+)"[^>]*>',
            tab.split('data-testid="threshold-rule"')[1].split("</select>")[0],
        )
        # Only rules with parameters are offered.
        assert "ph-bp-followup" in options and "bp-crisis" in options
        assert "adr-reported" not in options and "bp-absent-7d" not in options
        body = text(
            client.post(
                f"/vitals/{patient.pk}/thresholds/",
                {
                    "rule": "ph-bp-followup",
                    "p_sys": "150",
                    "p_dia": "95",
                    "reason": "高龄",
                    "range": "30d",
                },
                headers=HX,
            )
        )
        row = am.PersonalThreshold.objects.get(patient=patient)
        assert (row.rule, row.params, row.set_by) == (
            "ph-bp-followup",
            {"sys": 150.0, "dia": 95.0},
            world.staff["doctor.cardiology"],
        )
        assert "Personal thresholds saved." in body
        assert "Target below 150/95 mmHg" in body  # the charts come along out of band
        body = text(
            client.post(
                f"/vitals/{patient.pk}/thresholds/",
                {"rule": "ph-bp-followup", "p_sys": "", "p_dia": ""},
                headers=HX,
            )
        )
        assert "the defaults apply" in body
        assert not am.PersonalThreshold.objects.exists()

    def test_choosing_another_rule_shows_its_parameters(self, patient: pm.Patient) -> None:
        body = text(
            signed_in("doctor.cardiology").get(
                f"/vitals/{patient.pk}/thresholds/?rule=hr-night-high-3", headers=HX
            )
        )
        assert 'name="p_hr_max"' in body and 'placeholder="100"' in body

    def test_bad_input_is_refused(self, patient: pm.Patient) -> None:
        client = signed_in("doctor.cardiology")
        body = text(
            client.post(
                f"/vitals/{patient.pk}/thresholds/",
                {"rule": "ph-bp-followup", "p_sys": "abc"},
                headers=HX,
            )
        )
        assert 'data-testid="error-p_sys"' in body
        body = text(
            client.post(
                f"/vitals/{patient.pk}/thresholds/", {"rule": "nope", "p_x": "1"}, headers=HX
            )
        )
        assert "Choose a rule." in body
        assert not am.PersonalThreshold.objects.exists()


class TestTheAlertsTab:
    def test_the_history_newest_first_in_the_users_language(
        self, world: Any, patient: pm.Patient
    ) -> None:
        bp(world, patient, 5, 185, 115)  # bp-crisis (and the public-health follow-up task)
        crisis = am.Alert.objects.get(patient=patient, rule="bp-crisis")
        alert_services.resolve_alert(
            world.actor("doctor.cardiology"), crisis.pk, outcome="medication_changed", note="加量"
        )
        services.report_adverse_reaction(
            world.actor("nurse.cardiology"),
            patient.pk,
            drug="阿司匹林",
            symptom="黑便",
            severity=2,
            onset=utc_now().date(),
        )
        english = text(signed_in("doctor.cardiology").get(f"/patients/{patient.pk}/tab/alerts/"))
        rows = english.count('data-testid="alert-row"')
        assert rows == am.Alert.objects.filter(patient=patient).count() >= 3
        assert english.index("Adverse drug reaction reported") < english.index("crisis level")
        assert f'href="/alerts/{crisis.pk}/"' in english
        assert "Resolved" in english and "Medication changed" in english and "加量" in english
        assert "doctor.cardiology" in english
        chinese = text(
            signed_in("nurse.cardiology", "zh-hans").get(f"/patients/{patient.pk}/tab/alerts/")
        )
        assert "患者报告药物不良反应" in chinese and "达到危急值" in chinese
        assert AuditEvent.objects.filter(action="alert.read", patient_id=patient.pk).exists()

    def test_no_alerts(self, patient: pm.Patient) -> None:
        body = text(signed_in("doctor.cardiology").get(f"/patients/{patient.pk}/tab/alerts/"))
        assert "No alerts for this patient." in body

    def test_the_history_is_paged(self, world: Any, patient: pm.Patient) -> None:
        now = utc_now()
        for i in range(22):
            am.Alert.objects.create(
                organisation=world.org,
                patient=patient,
                department=world.cardio,
                rule="glucose-low",
                key=f"test:{patient.pk}:{i}",
                status="dismissed" if i else "open",
                severity="high",
                priority="urgent",
                performer_role="nurse",
                text_zh=f"低血糖 {i}",
                text_en=f"Low glucose {i}",
                triggered_at=now - timedelta(hours=i),
                raised_at=now - timedelta(hours=i),
                due_at=now,
            )
        client = signed_in("doctor.cardiology")
        first = text(client.get(f"/patients/{patient.pk}/tab/alerts/"))
        assert first.count('data-testid="alert-row"') == 20
        assert first.index("Low glucose 0<") < first.index("Low glucose 1<")
        second = text(client.get(f"/vitals/{patient.pk}/alerts/?page=2", headers=HX))
        assert second.count('data-testid="alert-row"') == 2
        assert "Low glucose 21<" in second and "Page 2 of 2" in second

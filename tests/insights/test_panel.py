"""The insights panel of the 360 page: what it shows, who may see it, what it records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careloop.alerts import models as alm
from careloop.audit.models import AuditEvent
from careloop.insights import views
from careloop.kit.clock import utc_now
from careloop.patients import models as pm
from careloop.risk import models as rm
from careloop.segments import models as sm
from tests.insights import factories as f
from tests.insights.scene import scored

HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(world: Any, username: str, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    user = world.staff[username]
    user.language = language  # the staff member's own language wins over the browser's
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def panel_url(patient: pm.Patient) -> str:
    return reverse("insights:patient_panel", args=[patient.pk])


def call_url(patient: pm.Patient) -> str:
    return reverse("insights:call_task", args=[patient.pk])


@pytest.fixture
def patient(make_patient: Any) -> pm.Patient:
    return make_patient()


def segment(code: str, name: str, name_en: str) -> sm.Segment:
    return sm.Segment.objects.create(
        organisation=None,
        code=code,
        name=name,
        name_en=name_en,
        rule="pdc < 0.6",
        strategy={"kind": "high_risk", "call_task": True},
    )


class TestShown:
    def test_empty_states(self, world: Any, patient: pm.Patient) -> None:
        response = client_for(world, "nurse.cardiology").get(panel_url(patient), **HTMX)
        assert response.status_code == 200
        body = response.content.decode()
        for testid in ("risk-empty", "segments-empty", "tone-empty"):
            assert f'data-testid="{testid}"' in body
        assert "Not scored yet." in body
        assert "No messages from the patient yet." in body
        assert "no reminders sent" in body

    def test_risk_with_its_reasons_as_bars(self, world: Any, patient: pm.Patient) -> None:
        scored(patient, score=0.72, band="high")
        body = client_for(world, "nurse.cardiology").get(panel_url(patient)).content.decode()
        assert 'data-testid="risk-score">72<' in body
        assert 'data-testid="risk-band">High<' in body
        factors = body.split('data-testid="risk-factors"')[1].split("</ul>")[0]
        assert factors.count("<li>") == 2
        # The strongest reason fills its bar; the other is drawn in proportion (0.5 / 0.9).
        assert 'class="fill bad" width="100.0"' in factors
        assert 'class="fill bad" width="55.6"' in factors
        assert 'data-testid="risk-call-task"' in body

    def test_segments_now_and_before(self, world: Any, patient: pm.Patient) -> None:
        now = utc_now()
        sm.Membership.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            segment=segment("watch_closely", "重点关注", "Watch closely"),
            entered_at=now - timedelta(days=3),
        )
        sm.Membership.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            segment=segment("very_active", "积极参与", "Very active"),
            entered_at=now - timedelta(days=60),
            left_at=now - timedelta(days=20),
        )
        body = client_for(world, "nurse.cardiology", "zh-hans").get(panel_url(patient))
        text = body.content.decode()
        current = text.split('data-testid="insights-segments"')[1].split("</article>")[0]
        assert 'data-segment="watch_closely"' in current
        assert "重点关注" in current
        now_part, history = current.split('data-testid="segments-history"')
        assert "积极参与" in history and "重点关注" not in history
        assert "积极参与" not in now_part

    def test_messages_with_their_tone(self, world: Any, patient: pm.Patient) -> None:
        t = f.thread(patient)
        now = utc_now()
        f.message(t, "头晕得厉害，很难受", now - timedelta(days=3))
        f.message(t, "今天好多了，谢谢医生", now - timedelta(days=1))
        body = client_for(world, "nurse.cardiology").get(panel_url(patient)).content.decode()
        listed = body.split('data-testid="tone-messages"')[1].split("</ol>")[0]
        assert listed.index("今天好多了") < listed.index("头晕得厉害")  # newest first
        assert "tone-bad" in listed and "tone-ok" in listed
        assert "<polyline" in body

    def test_behaviour_figures(self, world: Any, patient: pm.Patient) -> None:
        now = utc_now()
        f.reminder(patient, now - timedelta(days=2), acked_at=now - timedelta(days=2, hours=-1))
        f.reminder(patient, now - timedelta(days=3))
        body = client_for(world, "nurse.cardiology").get(panel_url(patient)).content.decode()
        ack = body.split('data-testid="ack-30"')[1].split("</dd>")[0]
        assert "<strong>50%</strong>" in ack and "1/2" in ack
        assert 'data-testid="latency"><strong>1.0</strong>' in body

    def test_a_fragment_for_the_page_not_a_page(self, world: Any, patient: pm.Patient) -> None:
        body = client_for(world, "nurse.cardiology", "zh-hans").get(panel_url(patient), **HTMX)
        text = body.content.decode()
        assert text.startswith('<section class="insights" id="insights-panel"')
        assert "<html" not in text and "<script" not in text  # the CSP allows no inline script


class TestTheThreeSixtyPage:
    def test_the_page_loads_the_panel(self, world: Any, patient: pm.Patient) -> None:
        body = client_for(world, "nurse.cardiology").get(
            reverse("patients:detail", args=[patient.pk])
        )
        text = body.content.decode()
        assert 'data-testid="insights-slot"' in text
        assert panel_url(patient) in text


class TestScopeAndAudit:
    def test_viewing_is_audited(self, world: Any, patient: pm.Patient) -> None:
        since = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        client_for(world, "doctor.cardiology").get(panel_url(patient))
        event = AuditEvent.objects.get(id__gt=since, action="insights.portrait.read")
        assert event.patient_id == patient.pk
        assert event.actor == "doctor.cardiology"
        assert event.outcome == "success"
        assert event.detail["risk"] is False

    def test_another_department_gets_404_and_the_refusal_is_audited(
        self, world: Any, patient: pm.Patient
    ) -> None:
        response = client_for(world, "doctor.endocrinology").get(panel_url(patient))
        assert response.status_code == 404
        assert patient.name.encode() not in response.content
        assert AuditEvent.objects.filter(
            actor="doctor.endocrinology", patient_id=patient.pk, outcome="denied"
        ).exists()
        assert not AuditEvent.objects.filter(action="insights.portrait.read").exists()

    def test_another_organisation_gets_404(self, world: Any, patient: pm.Patient) -> None:
        response = client_for(world, "nurse.other").get(panel_url(patient))
        assert response.status_code == 404

    def test_the_auditor_may_not(self, world: Any, patient: pm.Patient) -> None:
        assert client_for(world, "auditor").get(panel_url(patient)).status_code == 403

    def test_unknown_patient_is_404(self, world: Any) -> None:
        response = client_for(world, "nurse.cardiology").get(
            reverse("insights:patient_panel", args=[999999])
        )
        assert response.status_code == 404


class TestCallTask:
    def test_opens_one_task_and_records_the_action(self, world: Any, patient: pm.Patient) -> None:
        score = scored(patient)
        client = client_for(world, "nurse.cardiology")
        response = client.post(call_url(patient), **HTMX)
        assert response.status_code == 200
        body = response.content.decode()
        assert 'data-testid="insights-notice"' in body
        assert "A call task was opened" in body
        task = alm.Task.objects.get(patient=patient)
        assert task.kind == alm.Task.Kind.CALL_PATIENT and task.status == "open"
        action = rm.Action.objects.get(patient=patient)
        assert (action.kind, action.score_id) == ("call_task", score.pk)
        assert 'data-testid="risk-actions"' in body  # the panel shows it at once
        assert AuditEvent.objects.filter(
            action="insights.call_task", patient_id=patient.pk, outcome="success"
        ).exists()

        again = client.post(call_url(patient), **HTMX).content.decode()
        assert "already open" in again
        assert alm.Task.objects.filter(patient=patient).count() == 1
        assert rm.Action.objects.filter(patient=patient).count() == 1

    def test_without_htmx_back_to_the_patient(self, world: Any, patient: pm.Patient) -> None:
        scored(patient)
        response = client_for(world, "nurse.cardiology").post(call_url(patient))
        assert response.status_code == 302
        assert response["Location"] == reverse("patients:detail", args=[patient.pk])

    def test_not_scored_says_so_and_opens_nothing(self, world: Any, patient: pm.Patient) -> None:
        response = client_for(world, "nurse.cardiology").post(call_url(patient), **HTMX)
        assert response.status_code == 200
        assert 'class="flash error"' in response.content.decode()
        assert not alm.Task.objects.filter(patient=patient).exists()
        assert AuditEvent.objects.filter(action="insights.call_task", outcome="failure").exists()

    def test_another_department_gets_404_and_nothing_opens(
        self, world: Any, patient: pm.Patient
    ) -> None:
        scored(patient)
        response = client_for(world, "nurse.endocrinology").post(call_url(patient), **HTMX)
        assert response.status_code == 404
        assert not alm.Task.objects.filter(patient=patient).exists()
        assert not rm.Action.objects.filter(patient=patient).exists()

    def test_only_for_those_who_write_clinical_records(
        self, world: Any, patient: pm.Patient
    ) -> None:
        scored(patient)
        admin = client_for(world, "admin")  # sees every patient, writes no clinical record
        body = admin.get(panel_url(patient)).content.decode()
        assert 'data-testid="risk-score"' in body
        assert 'data-testid="risk-call-task"' not in body
        assert admin.post(call_url(patient), **HTMX).status_code == 403
        assert not alm.Task.objects.filter(patient=patient).exists()

    def test_get_is_not_allowed(self, world: Any, patient: pm.Patient) -> None:
        assert client_for(world, "nurse.cardiology").get(call_url(patient)).status_code == 405


class TestDrawing:
    def test_columns_scale_to_the_tallest(self) -> None:
        cols = views.columns([0, 2, 4])
        assert [c["h"] for c in cols] == [0, views.CHART_HEIGHT / 2, views.CHART_HEIGHT]
        assert cols[2]["y"] == 0 and cols[0]["y"] == views.CHART_HEIGHT
        assert [c["x"] for c in cols] == [1.0, 11.0, 21.0]

    def test_columns_of_nothing(self) -> None:
        assert all(c["h"] == 0 for c in views.columns([0] * 24))

    def test_factor_values_as_read(self) -> None:
        assert [views.shown(v) for v in (12.0, 0.41666, 3, None, "是")] == [12, 0.42, 3, "", "是"]

    def test_spark_maps_scores_into_the_box(self) -> None:
        assert views.spark([]) == ""
        assert views.spark([1.0, -1.0]) == "0.0,2.0 100.0,28.0"
        assert views.spark([0.0]) == "0,15.0 100,15.0"

"""Readings entered on the portal's Today page: stored through ingest (so the rules run and a
crisis reaches the nurse's worklist), refused values keep the input and say why, glucose in
mg/dL is converted, and the feedback is judged against the patient's own target."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.alerts import models as am
from careloop.audit.models import AuditEvent
from careloop.observations import models as om
from careloop.portal import events
from tests.observations.support import care_team, join
from tests.portal.client import portal_client
from tests.security.scenario import client_for

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def patient(make_patient: Any, world: Any) -> Any:
    p = make_patient(name="李建华")
    join(p, care_team(world))
    return p


@pytest.fixture
def emitted() -> Any:
    seen: list[events.PatientEvent] = []
    events.on(seen.append)
    yield seen
    events._listeners.remove(seen.append)


def bp(client: Client, systolic: Any, diastolic: Any, **extra: Any) -> Any:
    data = {"measure": "bp", "bp-systolic": systolic, "bp-diastolic": diastolic}
    return client.post("/portal/readings", data, **extra)


def glucose(client: Client, value: Any, unit: str = "mmol/L", context: str = "fasting") -> Any:
    data = {"measure": "glucose", "glucose-value": value, "glucose-unit": unit,
            "glucose-context": context}  # fmt: skip
    return client.post("/portal/readings", data, **HTMX)


class TestBloodPressure:
    def test_a_crisis_reading_raises_an_alert_the_nurse_sees_in_her_worklist(
        self, patient: Any, world: Any, emitted: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            response = bp(portal_client(patient), "182", "112", **HTMX)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Your blood pressure is above your target of 140/90." in html
        assert "Your care team has been told." in html
        assert 'class="feedback bad"' in html
        reading = om.Observation.objects.get(patient=patient)
        assert (reading.kind, reading.value, reading.value2) == ("bp", 182.0, 112.0)
        assert reading.source == "patient"
        alert = am.Alert.objects.get(patient=patient)
        assert alert.rule == "bp-crisis"
        nurse = world.staff["nurse.cardiology"]
        nurse.language = "en"
        nurse.save(update_fields=["language"])
        worklist = client_for("nurse.cardiology").get("/worklist/")
        assert worklist.status_code == 200
        assert patient.name in worklist.content.decode()
        reads = [e for e in emitted if e.kind == events.READING]
        assert [e.ref for e in reads] == [f"observation:{reading.pk}"]
        audit = AuditEvent.objects.filter(action="portal.reading.create").get()
        assert (audit.patient_id, audit.actor) == (patient.pk, f"patient:{patient.pk}")

    def test_a_reading_within_target_is_praised_and_raises_nothing(self, patient: Any) -> None:
        html = bp(portal_client(patient), "126", "78", **HTMX).content.decode()
        assert "within your target (below 140/90)" in html
        assert 'class="feedback good"' in html
        assert not am.Alert.objects.filter(patient=patient).exists()

    def test_above_target_below_crisis_warns_without_alert(self, patient: Any) -> None:
        html = bp(portal_client(patient), "150", "92", **HTMX).content.decode()
        assert 'class="feedback warn"' in html
        assert "above your target of 140/90" in html
        assert "care team has been told" not in html

    def test_a_personal_target_is_the_one_shown(self, patient: Any) -> None:
        am.PersonalThreshold.objects.create(
            patient=patient, rule="ph-bp-followup", params={"sys": 130, "dia": 80}
        )
        client = portal_client(patient)
        assert "below 130/80 mmHg" in client.get("/portal/").content.decode()
        html = bp(client, "135", "78", **HTMX).content.decode()
        assert "above your target of 130/80" in html

    def test_an_impossible_value_is_refused_with_its_reason_and_kept(self, patient: Any) -> None:
        client = portal_client(patient)
        response = bp(client, "400", "90", **HTMX)
        assert response.status_code == 200  # htmx swaps the card with its errors
        html = response.content.decode()
        assert 'data-testid="error-systolic"' in html
        assert "is not a possible reading" in html
        assert 'value="400"' in html
        assert not om.Observation.objects.filter(patient=patient).exists()
        page = bp(client, "400", "90")  # without htmx: the whole page, 422
        assert page.status_code == 422
        assert 'value="400"' in page.content.decode()
        assert not om.Observation.objects.filter(patient=patient).exists()

    def test_diastolic_above_systolic_is_refused(self, patient: Any) -> None:
        html = bp(portal_client(patient), "80", "120", **HTMX).content.decode()
        assert "lower than the systolic" in html
        assert not om.Observation.objects.exists()

    def test_missing_numbers_are_asked_for(self, patient: Any) -> None:
        html = bp(portal_client(patient), "", "", **HTMX).content.decode()
        assert html.count("Enter a number.") == 2

    def test_plain_post_redirects_with_the_feedback(self, patient: Any) -> None:
        client = portal_client(patient)
        response = bp(client, "120", "80")
        assert response.status_code == 302
        assert "within your target" in client.get("/portal/").content.decode()

    def test_the_time_can_be_given(self, patient: Any) -> None:
        data = {"measure": "bp", "bp-systolic": "120", "bp-diastolic": "80",
                "bp-effective": "2024-01-02T07:30"}  # fmt: skip
        portal_client(patient).post("/portal/readings", data, **HTMX)
        reading = om.Observation.objects.get(patient=patient)
        assert reading.effective_at.isoformat() == "2024-01-01T23:30:00+00:00"  # Shanghai

    def test_an_unknown_measure_answers_404(self, patient: Any) -> None:
        response = portal_client(patient).post("/portal/readings", {"measure": "weight"})
        assert response.status_code == 404


class TestGlucose:
    def test_mg_per_dl_is_converted(self, patient: Any) -> None:
        html = glucose(portal_client(patient), "126", "mg/dL").content.decode()
        reading = om.Observation.objects.get(patient=patient)
        assert (reading.kind, reading.unit, reading.context) == ("glucose", "mmol/L", "fasting")
        assert reading.value == pytest.approx(7.0)
        assert reading.original == "126 mg/dL"
        assert "fasting glucose is within your target of 4.4–7 mmol/L" in html

    def test_a_high_fasting_value_warns(self, patient: Any) -> None:
        html = glucose(portal_client(patient), "8.4").content.decode()
        assert 'class="feedback warn"' in html
        assert "above your target of 4.4–7 mmol/L" in html

    def test_a_low_value_raises_an_alert_and_says_what_to_do(self, patient: Any) -> None:
        html = glucose(portal_client(patient), "3.1", context="random").content.decode()
        assert 'class="feedback bad"' in html
        assert "Your glucose is low." in html and "care team has been told" in html
        assert am.Alert.objects.get(patient=patient).rule == "glucose-low"

    def test_after_a_meal_has_its_own_target(self, patient: Any) -> None:
        html = glucose(portal_client(patient), "9.2", context="postprandial").content.decode()
        assert "below 10 mmol/L" in html and 'class="feedback good"' in html

    def test_an_impossible_glucose_is_refused(self, patient: Any) -> None:
        html = glucose(portal_client(patient), "2000", "mg/dL").content.decode()
        assert 'data-testid="error-value"' in html
        assert 'value="2000"' in html
        assert not om.Observation.objects.exists()

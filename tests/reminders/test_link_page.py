"""The page behind a reminder's message link: no sign-in, the patient's language, one answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.careplans import services as plan_services
from careloop.reminders import links
from careloop.reminders import models as rm
from tests.careplans.pages import frozen, text
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db
S = rm.Status
NOW = utc(2026, 3, 2, 2, 0)  # 10:00 in Shanghai


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with frozen(NOW):
        yield


def reminder(clinic: Clinic, kind: str = "medication", **patient: Any) -> rm.Occurrence:
    p = clinic.patient(**patient)
    clinic.prescribe(p, "bid")
    clinic.enrol(p, "hypertension", now=NOW)
    return rm.Occurrence.objects.filter(patient=p, kind=kind).order_by("due_at")[0]


def url(occ: rm.Occurrence) -> str:
    return f"/r/{links.token_for(occ.source_key)}"


class TestShowing:
    def test_title_and_local_time_in_the_patients_language_without_sign_in(
        self, clinic: Clinic
    ) -> None:
        occ = reminder(clinic)
        response = Client().get(url(occ))
        page = text(response)
        assert response.status_code == 200
        assert "按时服药" in page
        assert "20:00" in page and "3月2日" in page  # first dose: today 20:00 local
        assert "我已服药" in page
        assert occ.patient.name not in page
        assert response["Cache-Control"] == "no-store"
        assert response["Referrer-Policy"] == "same-origin"
        english = reminder(clinic, preferred_language="en")
        page = text(Client(HTTP_ACCEPT_LANGUAGE="zh-hans").get(url(english)))
        assert "Take your medicine" in page and "I took it" in page
        assert 'lang="en"' in page

    def test_large_text_for_the_elderly(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        assert 'class="large"' not in text(Client().get(url(occ)))
        plan_services.set_preferences(clinic.actor, occ.patient_id, {"elderly": True}, None)
        assert 'class="large"' in text(Client().get(url(occ)))

    def test_other_kinds_have_a_single_got_it_button(self, clinic: Clinic) -> None:
        occ = reminder(clinic, "measurement", preferred_language="en")
        page = text(Client().get(url(occ)))
        assert "Got it" in page and "I took it" not in page


class TestAnswering:
    def test_i_took_it(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        client = Client(enforce_csrf_checks=True)
        form = client.get(url(occ))
        token = form.cookies["csrftoken"].value
        response = client.post(url(occ), {"answer": "taken", "csrfmiddlewaretoken": token})
        assert response.status_code == 302
        occ.refresh_from_db()
        assert (occ.status, occ.ack_source) == (S.ACKNOWLEDGED, "link")
        intake = rm.IntakeEvent.objects.get(occurrence=occ)
        assert (intake.status, intake.source, intake.reason) == ("taken", "link", "")
        assert "谢谢" in text(client.get(response["Location"]))
        again = text(client.get(url(occ)))
        assert "已确认" in again and "我已服药" not in again
        assert AuditEvent.objects.filter(
            action="reminder.acknowledge", patient_id=occ.patient_id
        ).exists()

    def test_skip_needs_a_reason(self, clinic: Clinic) -> None:
        occ = reminder(clinic, preferred_language="en")
        refused = Client().post(url(occ), {"answer": "skipped"})
        assert refused.status_code == 422
        assert "Please choose a reason." in text(refused)
        occ.refresh_from_db()
        assert occ.status == S.SCHEDULED
        done = Client().post(url(occ), {"answer": "skipped", "reason": "side_effect"})
        assert done.status_code == 302
        intake = rm.IntakeEvent.objects.get(occurrence=occ)
        assert (intake.status, intake.reason) == ("skipped", "side_effect")
        assert "You told us you skipped this dose." in text(Client().get(url(occ)))

    def test_got_it_acknowledges_without_an_intake(self, clinic: Clinic) -> None:
        occ = reminder(clinic, "measurement")
        assert Client().post(url(occ), {"answer": "seen"}).status_code == 302
        occ.refresh_from_db()
        assert occ.status == S.ACKNOWLEDGED
        assert not rm.IntakeEvent.objects.filter(occurrence=occ).exists()

    def test_a_medication_answer_must_be_taken_or_skipped(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        assert Client().post(url(occ), {"answer": "seen"}).status_code == 422
        occ.refresh_from_db()
        assert occ.status == S.SCHEDULED

    def test_a_form_without_csrf_token_is_refused(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        response = Client(enforce_csrf_checks=True).post(url(occ), {"answer": "taken"})
        assert response.status_code == 403
        occ.refresh_from_db()
        assert occ.status == S.SCHEDULED

    def test_a_withdrawn_reminder_asks_for_nothing(self, clinic: Clinic) -> None:
        occ = reminder(clinic, preferred_language="en")
        rm.Occurrence.objects.filter(pk=occ.pk).update(status=S.CANCELLED)
        page = text(Client().get(url(occ)))
        assert "No answer needed" in page and "I took it" not in page
        Client().post(url(occ), {"answer": "taken"})
        occ.refresh_from_db()
        assert occ.status == S.CANCELLED


class TestBadLinks:
    def test_unknown_token_is_a_friendly_404(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        token = links.token_for(occ.source_key)
        for bad in ("nothing-here", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 80):
            response = Client().get(f"/r/{bad}")
            assert response.status_code == 404
            assert 'data-testid="link-gone"' in text(response)

    def test_expired_link_is_a_404(self, clinic: Clinic) -> None:
        occ = reminder(clinic)
        ttl = rm.ReminderSettings.objects.get(organisation_id=occ.organisation_id).link_ttl_hours
        with frozen(occ.due_at + timedelta(hours=ttl, minutes=1)):
            response = Client().get(url(occ))
            assert response.status_code == 404
            assert Client().post(url(occ), {"answer": "taken"}).status_code == 404
        occ.refresh_from_db()
        assert occ.status == S.SCHEDULED

"""The operations page: figures, dead letters with "Retry", the pause switch, and who may use it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.reminders import dispatcher
from careloop.reminders import models as rm
from tests.reminders.factories import attempt, occurrence

pytestmark = pytest.mark.django_db
S = rm.Status


def client_for(username: str, world: Any) -> Client:
    """Signed in as a user who reads English (the user's own language wins over the browser's)."""
    user = world.staff[username]
    user.language = "en"
    user.save(update_fields=["language"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def dead(world: Any, make_patient: Any) -> rm.Occurrence:
    """A cardiology patient's reminder that gave up: the number is invalid."""
    patient = make_patient("nurse.cardiology", name="王<b>五</b>")
    now = utc_now()
    occ = occurrence(patient, now - timedelta(hours=3), "dead", reason="invalid_address")
    attempt(
        occ,
        "sms",
        "permanent",
        now - timedelta(hours=3),
        error_code="isv.MOBILE_NUMBER_ILLEGAL",
        detail="number <script>x</script> rejected",
    )
    return occ


def chart_data(html: str) -> Any:
    match = re.search(r'<canvas data-chart="channel-success" data-series="([^"]*)"', html)
    assert match, "the chart's data is missing"
    return json.loads(unescape(match.group(1)))


class TestThePage:
    def test_shows_figures_dead_letters_and_the_chart(self, world: Any, dead: Any) -> None:
        response = client_for("head.cardiology", world).get("/operations/")
        assert response.status_code == 200
        html = response.content.decode()
        assert f'data-occurrence="{dead.pk}"' in html
        assert "invalid address" in html and "isv.MOBILE_NUMBER_ILLEGAL" in html
        # Names and provider text are shown escaped, never as markup.
        assert "王&lt;b&gt;五&lt;/b&gt;" in html
        assert "<script>x</script>" not in html
        data = chart_data(html)
        assert data["labels"] == ["SMS"]
        assert data["series"][0]["data"] == [0.0]
        # The chart library and the page's script are static files (CSP: no inline script).
        assert "/static/vendor/chart.umd.min.js" in html
        assert "/static/reminders/ops.js" in html
        assert 'hx-trigger="every 30s"' in html
        assert "<script>" not in html.replace("<script>x</script>", "")

    def test_htmx_refresh_returns_the_live_part_only(self, world: Any, dead: Any) -> None:
        response = client_for("admin", world).get("/operations/", HTTP_HX_REQUEST="true")
        html = response.content.decode()
        assert html.lstrip().startswith('<div id="ops-live"')
        assert "<html" not in html and f'data-occurrence="{dead.pk}"' in html

    def test_each_view_is_audited_with_the_patients_shown(self, world: Any, dead: Any) -> None:
        client_for("admin", world).get("/operations/")
        event = AuditEvent.objects.filter(action="reminders.operations.read").latest("id")
        assert event.actor == "admin"
        assert event.detail["patients"] == [dead.patient_id]

    def test_other_departments_dead_letters_are_not_listed(self, world: Any, dead: Any) -> None:
        html = client_for("head.endocrinology", world).get("/operations/").content.decode()
        assert f'data-occurrence="{dead.pk}"' not in html
        assert "王" not in html
        assert 'data-testid="no-dead-letters"' in html

    @pytest.mark.parametrize("username", ["nurse.cardiology", "doctor.cardiology", "auditor"])
    def test_roles_without_operations_are_refused(
        self, world: Any, dead: Any, username: str
    ) -> None:
        response = client_for(username, world).get("/operations/")
        assert response.status_code == 403
        assert "王" not in response.content.decode()
        assert AuditEvent.objects.filter(actor=username, outcome="denied").exists()

    def test_anonymous_visitors_are_sent_to_sign_in(self, db: Any) -> None:
        response = Client().get("/operations/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")


class TestRetry:
    def test_without_confirmation_nothing_happens(self, world: Any, dead: Any) -> None:
        response = client_for("head.cardiology", world).post(
            f"/operations/dead-letters/{dead.pk}/retry/"
        )
        assert response.status_code == 200
        assert 'data-testid="confirm-retry"' in response.content.decode()
        dead.refresh_from_db()
        assert dead.status == S.DEAD

    def test_confirmed_retry_sends_again(self, world: Any, dead: Any) -> None:
        response = client_for("head.cardiology", world).post(
            f"/operations/dead-letters/{dead.pk}/retry/", {"confirm": "1"}
        )
        assert response.status_code == 302
        dead.refresh_from_db()
        assert (dead.status, dead.reason, dead.tries) == (S.RETRYING, "", 0)
        assert dead.wake_at is not None and dead.wake_at <= utc_now()
        event = AuditEvent.objects.filter(action="reminder.retry").latest("id")
        assert (event.actor, event.patient_id) == ("head.cardiology", dead.patient_id)
        # The dispatcher picks it up again.
        assert dead.pk in dispatcher.claim("w", utc_now(), 10)

    def test_retrying_twice_is_refused_without_changing_it(self, world: Any, dead: Any) -> None:
        client = client_for("head.cardiology", world)
        client.post(f"/operations/dead-letters/{dead.pk}/retry/", {"confirm": "1"})
        rm.Occurrence.objects.filter(pk=dead.pk).update(tries=2)
        response = client.post(
            f"/operations/dead-letters/{dead.pk}/retry/", {"confirm": "1"}, follow=True
        )
        assert "Only dead letters can be retried" in response.content.decode()
        dead.refresh_from_db()
        assert (dead.status, dead.tries) == (S.RETRYING, 2)

    @pytest.mark.parametrize("username", ["head.endocrinology", "admin.other"])
    def test_out_of_scope_is_not_found(self, world: Any, dead: Any, username: str) -> None:
        response = client_for(username, world).post(
            f"/operations/dead-letters/{dead.pk}/retry/", {"confirm": "1"}
        )
        assert response.status_code == 404
        assert "王" not in response.content.decode()
        dead.refresh_from_db()
        assert dead.status == S.DEAD
        assert AuditEvent.objects.filter(actor=username, outcome="denied").exists()

    def test_a_nurse_may_not_retry(self, world: Any, dead: Any) -> None:
        response = client_for("nurse.cardiology", world).post(
            f"/operations/dead-letters/{dead.pk}/retry/", {"confirm": "1"}
        )
        assert response.status_code == 403
        dead.refresh_from_db()
        assert dead.status == S.DEAD


class TestPauseAndResume:
    def test_pausing_needs_a_reason(self, world: Any) -> None:
        client = client_for("admin", world)
        response = client.post("/operations/dispatch/", {"action": "pause"}, follow=True)
        assert "Say why sending is paused." in response.content.decode()
        assert not rm.ReminderSettings.objects.filter(dispatch_paused=True).exists()

    def test_pause_stops_sending_and_resume_restarts_it(
        self, world: Any, make_patient: Any
    ) -> None:
        patient = make_patient("nurse.cardiology")
        due = occurrence(patient, utc_now() - timedelta(minutes=5))
        client = client_for("head.cardiology", world)
        client.post("/operations/dispatch/", {"action": "pause", "reason": "SMS provider outage"})
        settings = rm.ReminderSettings.objects.get(organisation=world.org)
        assert settings.dispatch_paused and settings.paused_reason == "SMS provider outage"
        page = client.get("/operations/").content.decode()
        assert 'data-testid="paused-banner"' in page and "SMS provider outage" in page
        assert due.pk not in dispatcher.claim("w", utc_now(), 10)

        client.post("/operations/dispatch/", {"action": "resume", "reason": "provider is back"})
        settings.refresh_from_db()
        assert not settings.dispatch_paused and settings.paused_reason == ""
        assert due.pk in dispatcher.claim("w", utc_now(), 10)
        events = list(
            AuditEvent.objects.filter(action__startswith="reminders.dispatch.").order_by("id")
        )
        assert [(e.action, e.actor, e.detail["reason"]) for e in events] == [
            ("reminders.dispatch.pause", "head.cardiology", "SMS provider outage"),
            ("reminders.dispatch.resume", "head.cardiology", "provider is back"),
        ]

    def test_pausing_one_organisation_leaves_the_other_sending(
        self, world: Any, make_patient: Any
    ) -> None:
        outsider = make_patient("nurse.other")
        due = occurrence(outsider, utc_now() - timedelta(minutes=5))
        client_for("admin", world).post(
            "/operations/dispatch/", {"action": "pause", "reason": "restore check"}
        )
        assert due.pk in dispatcher.claim("w", utc_now(), 10)

    def test_a_nurse_cannot_pause(self, world: Any) -> None:
        response = client_for("nurse.cardiology", world).post(
            "/operations/dispatch/", {"action": "pause", "reason": "x"}
        )
        assert response.status_code == 403
        assert not rm.ReminderSettings.objects.filter(dispatch_paused=True).exists()

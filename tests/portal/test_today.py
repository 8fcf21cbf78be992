"""The portal's Today page: doses due (taken / skipped with a reason, stored as intake events),
what the plan asks to measure, the other sections and their empty states, elder mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.audit.models import AuditEvent
from careloop.kit import clock
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.portal import events
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.observations.support import care_team, join
from tests.portal.client import portal_client

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
# Monday 9 March 2026, 10:00 in Shanghai: the patient's day has hours behind and ahead.
TEN_AM = datetime(2026, 3, 9, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def _ten_am() -> Iterator[None]:
    previous = clock.fake()
    clock.install(clock.FakeClock(start=TEN_AM.astimezone(UTC), speed=0.0, anchor=time.time()))
    yield
    clock.install(previous)


@pytest.fixture
def patient(make_patient: Any, world: Any) -> Any:
    p = make_patient(name="王秀兰", time_zone="Asia/Shanghai")
    join(p, care_team(world))
    return p


def dose(patient: Any, *, minutes: int = -30, name: str = "氨氯地平", kind: str = "medication",
         key: str = "") -> rm.Occurrence:  # fmt: skip
    """A dose reminder due ``minutes`` from now (on the patient's day)."""
    due = utc_now() + timedelta(minutes=minutes)
    return reminder_services.schedule_one(
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        kind=kind,
        source_key=key or f"test:{patient.pk}:{name}:{minutes}:{kind}",
        due_at=due,
        time_zone=patient.time_zone,
        payload={
            "title": "按时服药",
            "title_en": "Take your medicine",
            "medication": name,
            "dose": "5 mg",
        },  # fmt: skip
    )


@pytest.fixture
def emitted() -> Any:
    seen: list[events.PatientEvent] = []
    events.on(seen.append)
    yield seen
    events._listeners.remove(seen.append)


class TestPage:
    def test_signed_out_visitors_are_sent_to_sign_in(self, client: Any) -> None:
        response = client.get("/portal/")
        assert response.status_code == 302
        assert response["Location"].startswith("/portal/sign-in?next=")

    def test_empty_day_shows_every_section_with_its_empty_state(self, patient: Any) -> None:
        response = portal_client(patient).get("/portal/")
        assert response.status_code == 200
        html = response.content.decode()
        for section in ("doses", "readings", "questionnaires", "appointments", "messages"):
            assert f'data-testid="section-{section}"' in html
        assert "No medicines to take today." in html
        assert "No questionnaire to answer." in html
        assert "No appointment booked." in html
        assert 'data-testid="reading-bp"' in html and 'data-testid="reading-glucose"' in html
        assert "Book a revisit" in html

    def test_lists_todays_doses_and_audits_the_read(self, patient: Any) -> None:
        due = dose(patient, minutes=-10)
        yesterday = dose(patient, minutes=-60 * 11, name="昨天的药")
        response = portal_client(patient).get("/portal/")
        html = response.content.decode()
        assert f'data-testid="dose-{due.pk}"' in html
        assert f'data-testid="dose-{yesterday.pk}"' not in html
        assert "5 mg" in html
        event = AuditEvent.objects.filter(action="portal.today.view").last()
        assert event is not None
        assert event.patient_id == patient.pk
        assert event.actor == f"patient:{patient.pk}"

    def test_another_patients_doses_are_not_shown(self, patient: Any, make_patient: Any) -> None:
        other = make_patient()
        theirs = dose(other, minutes=-5)
        html = portal_client(patient).get("/portal/").content.decode()
        assert f"dose-{theirs.pk}" not in html

    def test_cancelled_doses_are_not_shown(self, patient: Any) -> None:
        occ = dose(patient, minutes=-5)
        rm.Occurrence.objects.filter(pk=occ.pk).update(status=rm.Status.CANCELLED)
        html = portal_client(patient).get("/portal/").content.decode()
        assert f"dose-{occ.pk}" not in html

    def test_elder_mode_puts_the_rest_behind_more(self, patient: Any) -> None:
        client = portal_client(patient)
        html = client.get("/portal/").content.decode()
        assert 'data-testid="more"' not in html
        client.cookies["careloop_elder"] = "1"
        html = client.get("/portal/").content.decode()
        more = html.index('data-testid="more"')
        assert html.index('data-testid="section-doses"') < more
        assert html.index('data-testid="reading-bp"') < more
        assert html.index('data-testid="reading-glucose"') > more
        assert html.index('data-testid="section-appointments"') > more

    def test_measurements_the_plan_expects_are_listed(self, patient: Any) -> None:
        om.Latest.objects.create(
            patient=patient,
            organisation_id=patient.organisation_id,
            kind="bp",
            expected_since=utc_now() - timedelta(days=3),
        )
        reminder_services.schedule_one(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            kind="measurement",
            source_key=f"test:{patient.pk}:glucose",
            due_at=utc_now() - timedelta(minutes=1),
            time_zone=patient.time_zone,
            payload={
                "title": "测空腹血糖",
                "title_en": "Measure your fasting glucose",
                "measurement": "glucose_fasting",
            },  # fmt: skip
        )
        html = portal_client(patient).get("/portal/").content.decode()
        assert "Measure your fasting glucose" in html
        assert "Measure your blood pressure once a day" in html
        assert "Your plan asks for no measurement today" not in html


class TestDoses:
    def test_taken_is_stored_as_an_intake_event_once(
        self, patient: Any, emitted: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        occ = dose(patient, minutes=-20)
        client = portal_client(patient)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/portal/doses/{occ.pk}", {"answer": "taken"})
        assert response.status_code == 302
        intake = rm.IntakeEvent.objects.get(occurrence=occ)
        assert (intake.status, intake.source, intake.patient_id) == ("taken", "portal", patient.pk)
        with django_capture_on_commit_callbacks(execute=True):
            again = client.post(f"/portal/doses/{occ.pk}", {"answer": "skipped", "reason": "cost"})
        assert again.status_code == 302
        assert rm.IntakeEvent.objects.filter(occurrence=occ).count() == 1
        assert rm.IntakeEvent.objects.get(occurrence=occ).status == "taken"
        occ.refresh_from_db()
        assert (occ.status, occ.ack_source) == (rm.Status.ACKNOWLEDGED, "portal")
        taken = [e for e in emitted if e.kind == events.DOSE_TAKEN]
        assert [(e.patient_id, e.ref) for e in taken] == [(patient.pk, f"occurrence:{occ.pk}")]
        audit = AuditEvent.objects.filter(action="reminder.acknowledge", object_id=str(occ.pk))
        assert audit.get().actor == f"patient:{patient.pk}"

    def test_htmx_gets_the_card_back_marked_done(self, patient: Any) -> None:
        occ = dose(patient, minutes=-20)
        response = portal_client(patient).post(
            f"/portal/doses/{occ.pk}", {"answer": "taken"}, **HTMX
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert html.lstrip().startswith("<article")
        assert f'id="dose-{occ.pk}"' in html and 'data-testid="dose-done"' in html
        assert 'data-testid="dose-taken"' not in html  # the buttons are gone

    def test_skipped_needs_a_reason_and_stores_it(self, patient: Any, emitted: Any) -> None:
        occ = dose(patient, minutes=-20)
        client = portal_client(patient)
        refused = client.post(f"/portal/doses/{occ.pk}", {"answer": "skipped"}, **HTMX)
        assert "Choose why you skipped this dose." in refused.content.decode()
        assert not rm.IntakeEvent.objects.filter(occurrence=occ).exists()
        client.post(f"/portal/doses/{occ.pk}", {"answer": "skipped", "reason": "side_effect"})
        intake = rm.IntakeEvent.objects.get(occurrence=occ)
        assert (intake.status, intake.reason) == ("skipped", "side_effect")
        assert not [e for e in emitted if e.kind == events.DOSE_TAKEN]
        html = client.get("/portal/").content.decode()
        assert "Side effects" in html

    def test_another_patients_dose_answers_404_and_changes_nothing(
        self, patient: Any, make_patient: Any
    ) -> None:
        other = make_patient()
        theirs = dose(other, minutes=-5)
        response = portal_client(patient).post(f"/portal/doses/{theirs.pk}", {"answer": "taken"})
        assert response.status_code == 404
        theirs.refresh_from_db()
        assert theirs.status == rm.Status.SCHEDULED
        assert not rm.IntakeEvent.objects.filter(occurrence=theirs).exists()
        denied = AuditEvent.objects.filter(action="reminder.read", outcome="denied").last()
        assert denied is not None and denied.patient_id == patient.pk

    def test_a_non_dose_reminder_cannot_be_answered_here(self, patient: Any) -> None:
        call = dose(patient, kind="call")
        response = portal_client(patient).post(f"/portal/doses/{call.pk}", {"answer": "taken"})
        assert response.status_code == 404

    def test_a_withdrawn_dose_says_so(self, patient: Any) -> None:
        occ = dose(patient, minutes=-5)
        rm.Occurrence.objects.filter(pk=occ.pk).update(status=rm.Status.CANCELLED)
        response = portal_client(patient).post(
            f"/portal/doses/{occ.pk}", {"answer": "taken"}, **HTMX
        )
        assert "withdrawn" in response.content.decode()
        assert not rm.IntakeEvent.objects.filter(occurrence=occ).exists()

    def test_answered_doses_show_as_done_on_today(self, patient: Any) -> None:
        occ = dose(patient, minutes=-5)
        client = portal_client(patient)
        client.post(f"/portal/doses/{occ.pk}", {"answer": "taken"})
        page = client.get("/portal/")
        html = page.content.decode()
        assert f'data-testid="dose-{occ.pk}"' in html
        assert 'data-testid="dose-done"' in html
        assert "Well done: your dose is marked as taken." in html  # the flash after redirect


class TestOtherSections:
    def test_a_questionnaire_due_and_an_unread_reply_are_shown(
        self, patient: Any, world: Any
    ) -> None:
        from careloop.messaging import services as messaging
        from careloop.portal.context import PortalActor
        from careloop.questionnaires import models as qm
        from careloop.questionnaires import services as questionnaires

        questionnaires.load_shipped()
        phq = qm.Questionnaire.objects.filter(
            organisation__isnull=True, url__endswith="phq-9"
        ).get()
        nurse = world.actor("nurse.cardiology")
        questionnaires.assign(nurse, patient_id=patient.pk, questionnaire_id=phq.pk, notify=False)
        me = PortalActor(patient_id=patient.pk, organisation_id=patient.organisation_id,
                         session_id=0)  # fmt: skip
        sent = messaging.start_thread(me, subject="头晕", body="早上有点头晕")
        messaging.reply(nurse, sent.message.thread_id, body="请今天量一次血压。")
        html = portal_client(patient).get("/portal/").content.decode()
        section = html[html.index('data-testid="section-questionnaires"') :]
        assert "No questionnaire to answer." not in section
        assert "/portal/questionnaires/" in section
        unread = html[html.index('data-testid="unread"') :]
        assert "1 new message from your care team" in unread

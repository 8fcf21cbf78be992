"""The staff side: triage tabs, SLA, assignment, replies with templates, scope, the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.messaging import selectors, services
from careloop.messaging.models import Attachment, Message, MessagingSettings, ReplyTemplate, Thread
from careloop.patients import models as pm
from careloop.reminders import models as rm
from tests.messaging.support import PNG, english, upload
from tests.portal.client import portal_client


def ask(patient: pm.Patient, body: str = "请问血压药饭前还是饭后吃？", key: str = "") -> Thread:
    from careloop.portal.context import PortalActor

    actor = PortalActor(
        patient_id=patient.pk, organisation_id=patient.organisation_id, session_id=0
    )
    sent = services.start_thread(actor, subject="", body=body, key=key or None)
    return sent.message.thread


@pytest.fixture
def nurse(world: Any) -> Client:
    return english(world, "nurse.cardiology")


class TestTriage:
    def test_tab_membership_and_counts(self, world: Any, patient: pm.Patient) -> None:
        me = world.actor("nurse.cardiology")
        unassigned = ask(patient, "第一个问题")
        mine = ask(patient, "第二个问题")
        services.assign(me, mine.pk, me.user.pk)
        waiting = ask(patient, "第三个问题")
        services.reply(me, waiting.pk, body="已回复")
        closed = ask(patient, "第四个问题")
        services.close(me, closed.pk)

        def ids(tab: str) -> set[int]:
            return {t.pk for t in selectors.inbox(me, tab)[0]}

        assert ids("unassigned") == {unassigned.pk}
        assert ids("mine") == {mine.pk, waiting.pk}  # replying takes the thread
        assert ids("waiting") == {waiting.pk}
        assert ids("open") == {unassigned.pk, mine.pk, waiting.pk}
        assert ids("closed") == {closed.pk}
        counts = selectors.inbox(me, "open")[1]
        assert counts == {"unassigned": 1, "mine": 2, "waiting": 1, "open": 3, "closed": 1}
        doctor = world.actor("doctor.cardiology")
        assert {t.pk for t in selectors.inbox(doctor, "mine")[0]} == set()

    def test_a_patient_message_reopens_a_closed_thread(
        self, world: Any, patient: pm.Patient
    ) -> None:
        me = world.actor("nurse.cardiology")
        thread = ask(patient)
        services.close(me, thread.pk)
        client = portal_client(patient)
        client.post(
            f"/portal/messages/{thread.pk}/send/",
            {"body": "还有一个问题", "idempotency_key": "key-reopen-01"},
        )
        thread.refresh_from_db()
        assert thread.status == Thread.Status.OPEN

    def test_inbox_page_tabs_search_and_overdue_marking(
        self, nurse: Client, world: Any, patient: pm.Patient, make_patient: Any
    ) -> None:
        late = ask(patient, "很久没人回复")
        Thread.objects.filter(pk=late.pk).update(
            first_unanswered_at=utc_now() - timedelta(hours=30),
            sla_due_at=utc_now() - timedelta(hours=6),
        )
        other = make_patient(name="王五")
        pm.PatientDepartment.objects.get_or_create(patient=other, department=world.cardio)
        fresh = ask(other, "刚刚的问题")
        response = nurse.get("/inbox/")
        assert response.status_code == 200
        html = response.content.decode()
        assert 'data-testid="count-unassigned">2<' in html
        assert html.index(f'data-thread="{late.pk}"') < html.index(f'data-thread="{fresh.pk}"')
        assert html.count('data-testid="sla-overdue"') == 1
        assert 'class="overdue"' in html
        assert "很久没人回复" in html  # the last message's preview
        found = nurse.get("/inbox/", {"q": "王"}).content.decode()
        assert "王五" in found and "李梅" not in found
        assert AuditEvent.objects.filter(action="message.inbox.list").exists()

    def test_sla_is_configurable_per_organisation(self, world: Any, patient: pm.Patient) -> None:
        MessagingSettings.objects.create(organisation=world.org, sla_hours=4)
        thread = ask(patient)
        assert thread.first_unanswered_at is not None and thread.sla_due_at is not None
        assert thread.sla_due_at - thread.first_unanswered_at == timedelta(hours=4)
        assert not thread.is_overdue()
        assert thread.is_overdue(utc_now() + timedelta(hours=5))

    def test_nav_link_with_count(self, nurse: Client, patient: pm.Patient) -> None:
        ask(patient)
        html = nurse.get("/inbox/").content.decode()
        assert 'data-testid="nav-inbox"' in html
        assert 'data-testid="nav-inbox-count"' in html


class TestThreadPage:
    def test_reply_with_a_template_reaches_the_patient(
        self, nurse: Client, world: Any, patient: pm.Patient
    ) -> None:
        ReplyTemplate.objects.create(
            organisation=world.org, title="复诊", body="请按时复诊。", language="zh-hans"
        )
        thread = ask(patient)
        page = nurse.get(f"/inbox/{thread.pk}/")
        html = page.content.decode()
        assert page.status_code == 200
        assert 'data-body="请按时复诊。"' in html and "血压药" in html
        assert Message.objects.get().read_by_staff_at is not None
        response = nurse.post(
            f"/inbox/{thread.pk}/reply/",
            {
                "body": "饭后服用。请按时复诊。",
                "idempotency_key": "staff-key-001",
                "file": [upload("leaflet.png", PNG)],
            },
        )
        assert response.status_code == 302
        nurse.post(
            f"/inbox/{thread.pk}/reply/",
            {"body": "饭后服用。请按时复诊。", "idempotency_key": "staff-key-001"},
        )
        replies = Message.objects.filter(author_kind=Message.Author.STAFF)
        assert replies.count() == 1  # the repeat with the same key added nothing
        thread.refresh_from_db()
        assert thread.status == Thread.Status.WAITING
        # A notification that carries no content goes through the reminder channels.
        occ = rm.Occurrence.objects.get(kind="message", patient=patient)
        assert "饭后" not in str(occ.payload)
        assert occ.payload["title_en"] == "You have a new message from your care team"
        # The patient reads it, and the attachment, in the portal.
        client = portal_client(patient)
        assert "饭后服用" in client.get(f"/portal/messages/{thread.pk}/").content.decode()
        att = Attachment.objects.get()
        assert client.get(f"/portal/attachments/{att.pk}/").status_code == 200
        assert nurse.get(f"/inbox/attachments/{att.pk}/").status_code == 200

    def test_assign_to_a_colleague_and_close_reopen(
        self, nurse: Client, world: Any, patient: pm.Patient
    ) -> None:
        thread = ask(patient)
        doctor = world.staff["doctor.cardiology"]
        r = nurse.post(f"/inbox/{thread.pk}/assign/", {"to": doctor.pk, "version": thread.version})
        assert r.status_code == 302
        thread.refresh_from_db()
        assert thread.assignee_id == doctor.pk
        stale = nurse.post(f"/inbox/{thread.pk}/close/", {"version": thread.version - 1})
        assert stale.status_code == 409
        nurse.post(f"/inbox/{thread.pk}/close/", {"version": thread.version})
        thread.refresh_from_db()
        assert thread.status == Thread.Status.CLOSED
        nurse.post(f"/inbox/{thread.pk}/reopen/", {"version": thread.version})
        thread.refresh_from_db()
        assert thread.status == Thread.Status.OPEN
        endo = world.staff["doctor.endocrinology"]
        with pytest.raises(ValidationFailed):
            services.assign(world.actor("nurse.cardiology"), thread.pk, endo.pk)

    def test_patient_page_lists_the_threads(self, nurse: Client, patient: pm.Patient) -> None:
        ask(patient)
        html = nurse.get(f"/inbox/patients/{patient.pk}/").content.decode()
        assert 'data-testid="open-thread"' in html
        detail = nurse.get(f"/patients/{patient.pk}/").content.decode()
        assert f"/inbox/patients/{patient.pk}/" in detail


class TestScope:
    def test_other_departments_get_404(self, world: Any, patient: pm.Patient) -> None:
        thread = ask(patient)
        client = portal_client(patient)
        client.post(
            f"/portal/messages/{thread.pk}/send/",
            {"body": "照片", "idempotency_key": "key-scope-001", "file": [upload("a.png", PNG)]},
        )
        att = Attachment.objects.get()
        endo = english(world, "nurse.endocrinology")
        assert endo.get(f"/inbox/{thread.pk}/").status_code == 404
        assert endo.get(f"/inbox/attachments/{att.pk}/").status_code == 404
        reply = endo.post(
            f"/inbox/{thread.pk}/reply/", {"body": "x", "idempotency_key": "staff-key-404"}
        )
        assert reply.status_code == 404
        assert "血压药" not in endo.get("/inbox/?tab=open").content.decode()
        other_org = english(world, "nurse.other")
        assert other_org.get(f"/inbox/{thread.pk}/").status_code == 404
        with pytest.raises(NotFound):
            services.close(world.actor("nurse.endocrinology"), thread.pk)
        assert AuditEvent.objects.filter(action="message.thread.read", outcome="denied").exists()

    def test_admin_reads_but_cannot_answer(self, world: Any, patient: pm.Patient) -> None:
        thread = ask(patient)
        admin = english(world, "admin")
        page = admin.get(f"/inbox/{thread.pk}/")
        assert page.status_code == 200
        assert 'data-testid="staff-reply-form"' not in page.content.decode()
        assert admin.post(f"/inbox/{thread.pk}/reply/", {"body": "x"}).status_code == 403
        assert english(world, "auditor").get("/inbox/").status_code == 403


class TestApi:
    def test_list_read_reply_assign_close(self, api: Any, world: Any, patient: pm.Patient) -> None:
        KEY = "api-key-0001"  # noqa: N806
        thread = ask(patient)
        nurse = api("nurse.cardiology")
        listing = nurse.get("/api/messages?tab=unassigned").json()
        assert listing["counts"]["unassigned"] == 1
        assert listing["items"][0]["id"] == thread.pk
        assert listing["items"][0]["last_message"].startswith("请问")
        one = nurse.get(f"/api/messages/{thread.pk}").json()
        assert one["messages"][0]["author_kind"] == "patient"
        first = nurse.post(
            f"/api/messages/{thread.pk}/reply", {"body": "饭后"}, HTTP_IDEMPOTENCY_KEY=KEY
        )
        again = nurse.post(
            f"/api/messages/{thread.pk}/reply", {"body": "饭后"}, HTTP_IDEMPOTENCY_KEY=KEY
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        clash = nurse.post(
            f"/api/messages/{thread.pk}/reply", {"body": "饭前"}, HTTP_IDEMPOTENCY_KEY=KEY
        )
        assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"
        doctor = world.staff["doctor.cardiology"]
        moved = nurse.post(f"/api/messages/{thread.pk}/assign", {"to": doctor.pk})
        assert moved.status_code == 200 and moved.json()["assignee"] == doctor.pk
        closed = nurse.post(f"/api/messages/{thread.pk}/close", {})
        assert closed.json()["status"] == "closed"
        assert api("nurse.endocrinology").get(f"/api/messages/{thread.pk}").status_code == 404
        assert api("auditor").get("/api/messages").status_code == 403


class TestNotification:
    def test_the_dispatcher_sends_a_notice_without_the_reply_text(
        self, world: Any, patient: pm.Patient
    ) -> None:
        from careloop.reminders import dispatcher

        thread = ask(patient)
        services.reply(world.actor("nurse.cardiology"), thread.pk, body="饭后服用，每日一次")
        occ = rm.Occurrence.objects.get(kind="message", patient=patient)
        # Outside quiet hours (the patient's first 10:00 after the reply) it goes out.
        local = occ.due_at.astimezone(ZoneInfo("Asia/Shanghai"))
        morning = local.replace(hour=10, minute=0)
        if morning <= local:
            morning += timedelta(days=1)
        dispatcher.run_once("test-worker", now=morning)
        occ.refresh_from_db()
        assert occ.status == rm.Status.SENT, occ.reason
        for attempt in rm.Attempt.objects.filter(occurrence=occ):
            assert "饭后" not in attempt.detail
        # Notices are not listed in the timeline as reminders.
        assert not [e for e in selectors.timeline(thread, for_patient=True) if e.automated]


class TestAdmin:
    def test_org_admin_manages_reply_templates_of_their_organisation(self, world: Any) -> None:
        from tests.security.scenario import client_for

        admin = client_for("admin")
        response = admin.post(
            "/admin/messaging/replytemplate/add/",
            {"title": "Diet", "body": "Less salt, please.", "language": "en"},
        )
        assert response.status_code == 302, response.content.decode()[:500]
        template = ReplyTemplate.objects.get()
        assert template.organisation_id == world.org.pk
        ReplyTemplate.objects.create(organisation=world.other_org, title="Theirs", body="x")
        listing = admin.get("/admin/messaging/replytemplate/").content.decode()
        assert "Diet" in listing and "Theirs" not in listing
        assert AuditEvent.objects.filter(action="message.template.save").exists()
        assert (
            client_for("nurse.cardiology").get("/admin/messaging/replytemplate/").status_code == 302
        )

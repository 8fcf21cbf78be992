"""The patient's side: threads, one timeline with reminders, idempotent sends, attachments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.messaging import selectors
from careloop.messaging.models import Attachment, Message, Thread
from careloop.patients import models as pm
from tests.messaging.support import JPEG, PDF, PNG, big_jpeg, html_file, sent_reminder, upload
from tests.portal.client import portal_client


def _start(portal: Client, body: str = "我的药吃完了，需要再开吗？", **extra: Any) -> Any:
    data = {"subject": "续药", "body": body, "idempotency_key": "key-start-0001", **extra}
    return portal.post("/portal/messages/", data)


def _files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class TestSendReplyRead:
    def test_empty_inbox_shows_the_form(self, portal: Client) -> None:
        response = portal.get("/portal/messages/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "No messages yet." in html and 'data-testid="new-thread-form"' in html
        assert 'name="idempotency_key"' in html

    def test_patient_starts_a_thread_staff_replies_patient_reads(
        self, portal: Client, patient: pm.Patient, world: Any
    ) -> None:
        response = _start(portal)
        assert response.status_code == 302
        thread = Thread.objects.get(patient=patient)
        assert thread.department_id == world.cardio.pk
        assert thread.care_team_id is not None
        assert thread.status == Thread.Status.OPEN
        assert thread.first_unanswered_at is not None and thread.sla_due_at is not None
        assert response["Location"].startswith(f"/portal/messages/{thread.pk}/")
        first = thread.messages.get()
        assert first.author_kind == Message.Author.PATIENT and first.read_by_patient_at

        from careloop.messaging import services

        nurse = world.actor("nurse.cardiology")
        services.reply(nurse, thread.pk, body="可以，明天来门诊开药。", key="reply-key-0001")
        thread.refresh_from_db()
        assert thread.status == Thread.Status.WAITING
        assert thread.first_unanswered_at is None and thread.assignee_id == nurse.user.pk
        assert selectors.unread_count(patient.pk) == 1

        listing = portal.get("/portal/messages/").content.decode()
        assert 'data-testid="thread-unread"' in listing

        page = portal.get(f"/portal/messages/{thread.pk}/")
        html = page.content.decode()
        assert "明天来门诊开药" in html and 'data-testid="new-mark"' in html
        assert selectors.unread_count(patient.pk) == 0
        assert AuditEvent.objects.filter(
            action="portal.message.read", patient_id=patient.pk, object_id=str(thread.pk)
        ).exists()
        again = portal.get(f"/portal/messages/{thread.pk}/").content.decode()
        assert 'data-testid="new-mark"' not in again

        # The patient answers: the thread is open again and waits for the care team.
        answer = portal.post(
            f"/portal/messages/{thread.pk}/send/",
            {"body": "好的，谢谢", "idempotency_key": "key-answer-001"},
        )
        assert answer.status_code == 302
        thread.refresh_from_db()
        assert thread.status == Thread.Status.OPEN and thread.first_unanswered_at is not None

    def test_caregiver_by_proxy_writes_as_caregiver(self, patient: pm.Patient, world: Any) -> None:
        caregiver = pm.Caregiver.objects.create(
            patient=patient,
            organisation_id=patient.organisation_id,
            name="李强",
            relation="儿子",
            phone="13900000000",
        )
        proxy = portal_client(patient, caregiver=caregiver)
        assert _start(proxy).status_code == 302
        message = Message.objects.get(thread__patient=patient)
        assert message.author_kind == Message.Author.CAREGIVER
        assert message.caregiver_id == caregiver.pk

    def test_empty_message_is_refused_and_nothing_saved(self, portal: Client) -> None:
        response = _start(portal, body="   ")
        assert response.status_code == 422
        assert "Write a message or attach a file." in response.content.decode()
        assert not Thread.objects.exists()

    def test_too_long_message_is_refused(self, portal: Client) -> None:
        response = _start(portal, body="长" * 2001)
        assert response.status_code == 422
        assert not Message.objects.exists()


class TestIdempotency:
    def test_same_key_twice_gives_one_message(self, portal: Client) -> None:
        first = _start(portal)
        second = _start(portal)
        assert first.status_code == second.status_code == 302
        assert first["Location"] == second["Location"]
        assert Thread.objects.count() == 1 and Message.objects.count() == 1

    def test_same_key_other_text_is_a_conflict(self, portal: Client) -> None:
        _start(portal)
        response = _start(portal, body="完全不同的内容")
        assert response.status_code == 409
        assert Message.objects.count() == 1

    def test_reply_in_a_thread_is_idempotent_too(self, portal: Client) -> None:
        _start(portal)
        thread = Thread.objects.get()
        data = {"body": "补充一句", "idempotency_key": "key-again-0001"}
        portal.post(f"/portal/messages/{thread.pk}/send/", data)
        portal.post(f"/portal/messages/{thread.pk}/send/", data)
        assert thread.messages.count() == 2
        clash = portal.post(f"/portal/messages/{thread.pk}/send/", {**data, "body": "又改了"})
        assert clash.status_code == 409
        assert thread.messages.count() == 2

    def test_each_page_render_gets_a_new_key(self, portal: Client) -> None:
        import re

        pattern = re.compile(r'name="idempotency_key" value="([^"]+)"')
        pages = [portal.get("/portal/messages/").content.decode() for _ in range(2)]
        keys = {m.group(1) for m in map(pattern.search, pages) if m}
        assert len(keys) == 2


class TestAttachments:
    def test_photo_and_pdf_are_stored_and_served_to_the_patient(
        self, portal: Client, patient: pm.Patient
    ) -> None:
        response = portal.post(
            "/portal/messages/",
            {
                "body": "检查报告和伤口照片",
                "idempotency_key": "key-files-0001",
                "file": [upload("../../etc/报告 1.pdf", PDF, "application/pdf")],
            },
        )
        assert response.status_code == 302
        thread = Thread.objects.get()
        portal.post(
            f"/portal/messages/{thread.pk}/send/",
            {"body": "", "idempotency_key": "key-files-0002", "file": [upload("wound.png", PNG)]},
        )
        pdf, png = Attachment.objects.order_by("pk")
        assert (pdf.content_type, pdf.file_name) == ("application/pdf", "报告 1.pdf")
        assert png.content_type == "image/png"
        assert Path(pdf.file.path).is_relative_to(Path(settings.MEDIA_ROOT))
        got = portal.get(f"/portal/attachments/{pdf.pk}/")
        assert got.status_code == 200
        assert got["Content-Type"] == "application/pdf"
        assert got["X-Content-Type-Options"] == "nosniff"
        assert got["Content-Disposition"].startswith("attachment;")
        assert b"".join(got.streaming_content) == PDF  # type: ignore[attr-defined]
        image = portal.get(f"/portal/attachments/{png.pk}/")
        assert image["Content-Disposition"].startswith("inline;")
        assert AuditEvent.objects.filter(
            action="portal.attachment.read", patient_id=patient.pk
        ).exists()
        html = portal.get(f"/portal/messages/{thread.pk}/").content.decode()
        assert f"/portal/attachments/{png.pk}/" in html

    def test_a_jpg_that_is_really_html_is_refused(self, portal: Client) -> None:
        response = portal.post(
            "/portal/messages/",
            {"body": "看看这个", "idempotency_key": "key-html-0001", "file": [html_file()]},
        )
        assert response.status_code == 422
        assert "is not a photo (JPEG or PNG) or a PDF" in response.content.decode()
        assert not Message.objects.exists() and not Attachment.objects.exists()
        assert _files() == []

    def test_a_6_mb_file_is_refused_with_a_clear_message(self, portal: Client) -> None:
        response = portal.post(
            "/portal/messages/",
            {"body": "大照片", "idempotency_key": "key-big-00001", "file": [big_jpeg(6)]},
        )
        assert response.status_code == 422
        assert "big.jpg is too large: files can be at most 5 MB." in response.content.decode()
        assert not Message.objects.exists() and _files() == []

    def test_jpeg_is_accepted(self, portal: Client) -> None:
        response = portal.post(
            "/portal/messages/",
            {"body": "照片", "idempotency_key": "key-jpeg-0001", "file": [upload("a.jpeg", JPEG)]},
        )
        assert response.status_code == 302
        assert Attachment.objects.get().file_name == "a.jpg"


class TestIsolation:
    def test_another_patients_thread_and_attachment_answer_404(
        self, portal: Client, make_patient: Any, world: Any
    ) -> None:
        other = make_patient()
        other_portal = portal_client(other)
        other_portal.post(
            "/portal/messages/",
            {
                "body": "别人的消息",
                "idempotency_key": "key-other-001",
                "file": [upload("x.png", PNG)],
            },
        )
        thread = Thread.objects.get(patient=other)
        att = Attachment.objects.get()
        assert portal.get(f"/portal/messages/{thread.pk}/").status_code == 404
        assert portal.get(f"/portal/attachments/{att.pk}/").status_code == 404
        sent = portal.post(
            f"/portal/messages/{thread.pk}/send/", {"body": "hi", "idempotency_key": "key-x-000001"}
        )
        assert sent.status_code == 404
        assert thread.messages.count() == 1
        assert "别人的消息" not in portal.get("/portal/messages/").content.decode()

    def test_not_signed_in_is_sent_to_sign_in(self, client: Client) -> None:
        response = client.get("/portal/messages/")
        assert response.status_code == 302 and "/portal/sign-in" in response["Location"]


class TestTimeline:
    def test_sent_reminders_appear_pre_read_and_distinct(
        self, portal: Client, patient: pm.Patient
    ) -> None:
        _start(portal)
        Thread.objects.update(created_at=utc_now() - timedelta(hours=1))
        thread = Thread.objects.get()
        sent_reminder(patient, at=utc_now() - timedelta(minutes=30))
        sent_reminder(patient, kind="measurement", at=thread.created_at - timedelta(days=2))
        entries = selectors.timeline(thread, for_patient=True)
        system = [e for e in entries if e.automated]
        assert len(system) == 1  # the one sent before the thread began is not in it
        assert system[0].kind == "system" and not system[0].unread
        html = portal.get(f"/portal/messages/{thread.pk}/").content.decode()
        assert 'data-testid="reminder"' in html and "entry-system" in html
        assert "Medicine reminder" in html
        assert selectors.unread_count(patient.pk) == 0

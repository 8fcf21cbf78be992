"""Urgent alerts reach the clinician on call by SMS and e-mail: once, with no patient name,
retried when the provider fails, escalated to the department head when nobody acts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from careloop.alerts import models as am
from careloop.alerts import notifications, sending, sweeps
from careloop.audit.models import AuditEvent
from careloop.channels.fakes import FakeSmtp
from careloop.channels.models import ChannelConfig
from careloop.reminders.dispatcher import Dispatcher
from tests.alerts.support import Clock, bp, device, in_team, on_call

ON_CALL_PHONE = "13900000001"  # as Aliyun receives it
HEAD_PHONE = "13900000002"


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock()
    yield c
    c.restore()


@pytest.fixture
def mail(world: Any) -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        cfg = ChannelConfig(organisation=world.org, kind="email", provider="smtp")
        cfg.config = fake.config()
        cfg.save()
        yield fake


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    return in_team(world, make_patient(name="王秘密"))


def crisis(world: Any, patient: Any, clock: Clock, minutes_ago: int = 1) -> am.Alert:
    """A device sends 185/115; the bp-crisis rule raises an urgent alert."""
    device(world, bp(patient, 185, 115, clock.now - timedelta(minutes=minutes_ago)))
    return am.Alert.objects.get(patient=patient, rule="bp-crisis")


class TestUrgentAlertToOnCall:
    def test_the_on_call_doctor_gets_one_sms_and_one_mail(
        self, world: Any, clinic: Any, mail: FakeSmtp, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE, email="oncall@hospital.example")
        alert = crisis(world, patient, clock)
        assert (alert.priority, alert.owner.username) == ("urgent", "doctor.cardiology")

        # The queue and the sweeps run again and again; the alert is queued a second time.
        for _ in range(2):
            sending.send_pending()
            sweeps.absence()
            sweeps.escalate()
            notifications.queue_urgent([alert.pk])
        sending.send_pending()

        assert [s.to for s in clinic.sms.sent] == [ON_CALL_PHONE]
        sms = clinic.sms.sent[0]
        assert sms.extra["params"] == {"department": "心内科", "count": "1"}
        assert "王秘密" not in sms.text
        assert [m.to for m in mail.sent] == ["oncall@hospital.example"]
        assert "王秘密" not in mail.sent[0].text
        assert "185/115" in mail.sent[0].text  # what the rule saw, without who
        rows = am.Notification.objects.filter(alert=alert).order_by("channel")
        assert [(r.channel, r.status, r.tries) for r in rows] == [
            ("email", "sent", 1),
            ("sms", "sent", 1),
        ]
        assert all(r.provider_id for r in rows)
        assert AuditEvent.objects.filter(action="alert.notify").exists()

    def test_a_resent_reading_raises_nothing_and_new_alerts_share_one_sms(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        alert = crisis(world, patient, clock, minutes_ago=30)
        device(world, bp(patient, 185, 115, clock.now - timedelta(minutes=30)))  # sent again
        sending.send_pending()
        assert len(clinic.sms.sent) == 1

        # A second crisis reading: the crisis alert is still open (no second one); the rules
        # that look at more than one reading ("two in 24 h") raise their own, told together in
        # one more SMS.
        before = set(am.Alert.objects.values_list("pk", flat=True))
        device(world, bp(patient, 190, 118, clock.now - timedelta(minutes=2)))
        sending.send_pending()
        assert am.Alert.objects.filter(patient=patient, rule="bp-crisis").count() == 1
        assert am.Notification.objects.filter(alert=alert).count() == 1
        fresh = am.Alert.objects.exclude(pk__in=before).exclude(priority="routine")
        assert "bp-high-twice" in {a.rule for a in fresh}
        assert [s.to for s in clinic.sms.sent] == [ON_CALL_PHONE, ON_CALL_PHONE]
        assert clinic.sms.sent[1].extra["params"]["count"] == str(fresh.count())

    def test_a_crisis_settled_within_the_same_upload_is_resolved_and_not_sent(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        device(
            world,
            bp(patient, 186, 114, clock.now - timedelta(hours=2)),
            bp(patient, 132, 84, clock.now - timedelta(hours=1)),
        )
        (alert,) = am.Alert.objects.filter(patient=patient, rule="bp-crisis")
        assert (alert.status, alert.outcome) == ("resolved", "auto_resolved")
        sending.send_pending()
        assert clinic.sms.sent == []

    def test_in_the_clinicians_language(
        self, world: Any, clinic: Any, mail: FakeSmtp, clock: Clock, patient: Any
    ) -> None:
        doctor = world.staff["doctor.cardiology"]
        doctor.language = "en"
        doctor.save(update_fields=["language"])
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE, email="oncall@hospital.example")
        crisis(world, patient, clock)
        sending.send_pending()
        assert clinic.sms.sent[0].extra["params"]["department"] == "Cardiology"
        (sent,) = mail.sent
        assert sent.text.startswith("CareLoop: 1 urgent alert in Cardiology — open the worklist")
        assert sent.extra["subject"] == "CareLoop: urgent alert in Cardiology"

    def test_the_worker_loop_sends_as_soon_as_it_is_woken(
        self,
        world: Any,
        clinic: Any,
        clock: Clock,
        patient: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        sending.woken()  # forget earlier nudges
        with django_capture_on_commit_callbacks(execute=True):
            crisis(world, patient, clock)
        worker = Dispatcher(sweep_every=3600, notify_every=3600)
        worker._last_sweep = worker._last_notify = 10.0**12  # no poll is due: only the nudge
        worker.alert_jobs()
        assert [s.to for s in clinic.sms.sent] == [ON_CALL_PHONE]

    def test_without_a_rota_the_owner_sees_it_in_the_app(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        alert = crisis(world, patient, clock)
        (row,) = am.Notification.objects.filter(alert=alert)
        assert (row.channel, row.status, row.staff.username) == (
            "inbox",
            "sent",
            "doctor.cardiology",
        )
        assert sending.send_pending() == 0
        assert clinic.sms.sent == []


class TestEscalation:
    def test_after_the_sla_the_department_head_is_told(
        self, world: Any, clinic: Any, mail: FakeSmtp, clock: Clock, patient: Any
    ) -> None:
        head = world.staff["head.cardiology"]
        head.email = "head@hospital.example"
        head.save(update_fields=["email"])
        # Last week's shift gives the head's phone; nobody is on call now.
        on_call(world, "head.cardiology", phone=HEAD_PHONE, starts=clock.now - timedelta(days=7))
        alert = crisis(world, patient, clock)
        sending.send_pending()
        assert clinic.sms.sent == []  # nobody on call: the owner was told in the app

        clock.advance(minutes=10)
        assert sweeps.escalate() == 0  # the SLA (15 minutes) has not passed
        clock.advance(minutes=6)
        assert sweeps.escalate() == 1
        assert sweeps.escalate() == 0
        alert.refresh_from_db()
        assert alert.escalated_to == head
        assert alert.business_status == "escalated"
        sending.send_pending()
        sending.send_pending()

        assert [s.to for s in clinic.sms.sent] == [HEAD_PHONE]
        assert [m.to for m in mail.sent] == ["head@hospital.example"]
        assert "已超过响应时限" in mail.sent[0].text  # the head reads Chinese
        assert "王秘密" not in mail.sent[0].text

    def test_an_acknowledged_alert_is_not_escalated(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        alert = crisis(world, patient, clock)
        am.Alert.objects.filter(pk=alert.pk).update(status=am.Alert.Status.ACKNOWLEDGED)
        clock.advance(hours=1)
        assert sweeps.escalate() == 0


class TestProviderFailures:
    def test_a_failing_provider_is_retried_then_marked_failed(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        crisis(world, patient, clock)
        clinic.sms.fail_next(sending.MAX_TRIES + 5, status=503)
        at = clock.now
        (row,) = am.Notification.objects.filter(channel="sms")
        for attempt in range(1, sending.MAX_TRIES + 1):
            assert sending.send_pending(now=at) == 0
            row.refresh_from_db()
            assert row.tries == attempt
            if attempt < sending.MAX_TRIES:
                assert row.status == "pending"
                assert at < row.sent_at <= at + timedelta(seconds=sending.BACKOFF_CAP)
                assert sending.send_pending(now=at) == 0  # not before its retry time
                at = row.sent_at
        assert (row.status, row.tries) == ("failed", sending.MAX_TRIES)
        assert "503" in row.error
        clinic.sms.clear_failures()
        sending.send_pending(now=at + timedelta(hours=1))
        assert clinic.sms.sent == []
        assert row in sending.failed(world.org.pk)

    def test_a_retry_that_succeeds(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        crisis(world, patient, clock)
        clinic.sms.fail_next(2, status=500)
        at = clock.now
        for _ in range(3):
            sending.send_pending(now=at)
            at += timedelta(seconds=sending.BACKOFF_CAP)
        (row,) = am.Notification.objects.filter(channel="sms")
        assert (row.status, row.tries, row.error) == ("sent", 3, "")
        assert len(clinic.sms.sent) == 1

    def test_a_refused_number_fails_at_once(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        crisis(world, patient, clock)
        clinic.sms.fail_numbers({ON_CALL_PHONE: "isv.MOBILE_NUMBER_ILLEGAL"})
        sending.send_pending()
        (row,) = am.Notification.objects.filter(channel="sms")
        assert (row.status, row.tries) == ("failed", 1)
        assert "MOBILE_NUMBER_ILLEGAL" in row.error

    def test_failures_show_on_the_operations_page(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        crisis(world, patient, clock)
        clinic.sms.fail_numbers({ON_CALL_PHONE: "isv.MOBILE_NUMBER_ILLEGAL"})
        sending.send_pending()
        client = Client()
        client.force_login(world.staff["head.cardiology"])
        page = client.get("/operations/").content.decode()
        assert 'data-testid="staff-failed"' in page
        assert "MOBILE_NUMBER_ILLEGAL" in page
        assert "王秘密" not in page
        other = Client()
        other.force_login(world.staff["admin.other"])
        assert "MOBILE_NUMBER_ILLEGAL" not in other.get("/operations/").content.decode()

    def test_no_mail_channel_set_up(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", email="oncall@hospital.example")
        crisis(world, patient, clock)
        sending.send_pending()
        (row,) = am.Notification.objects.filter(channel="email")
        assert row.status == "failed"
        assert "no email channel" in row.error


class TestClaims:
    def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
        self, world: Any, clinic: Any, clock: Clock, patient: Any
    ) -> None:
        on_call(world, "doctor.cardiology", phone=ON_CALL_PHONE)
        crisis(world, patient, clock)
        first = sending.claim(clock.now, 10)
        assert len(first) == 1
        assert sending.claim(clock.now, 10) == []  # a second worker finds nothing
        # The first worker died; when the lease ends another worker sends it.
        later = clock.now + sending.LEASE + timedelta(seconds=1)
        assert sending.send_pending(now=later) == 1
        (row,) = am.Notification.objects.filter(channel="sms")
        assert (row.status, row.tries) == ("sent", 2)
        assert len(clinic.sms.sent) == 1

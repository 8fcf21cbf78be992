"""Provider callbacks: checked, applied once, never moving a status backwards; SMS replies."""

from __future__ import annotations

import pytest

from careloop.channels import services as channel_services
from careloop.channels.models import InboundEvent
from careloop.reminders import models as rm
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db
NOW = utc(2026, 3, 1, 16, 0)


def sent_medication(clinic: Clinic) -> tuple[object, rm.Occurrence]:
    p = clinic.patient()
    clinic.prescribe(p, "qd")
    clinic.enrol(p, "hypertension", now=NOW)
    clinic.run(utc(2026, 3, 2, 0, 0))
    occ = rm.Occurrence.objects.get(patient=p, kind="medication", local_due="2026-03-02T08:00")
    return p, occ


def post(client: object, clinic: Clinic, body: bytes, token: str | None = None) -> object:
    token = clinic.sms.callback_token if token is None else token
    return client.post(  # type: ignore[attr-defined]
        f"/hooks/{clinic.world.org.code}/aliyun_sms?token={token}",
        data=body,
        content_type="application/json",
    )


class TestDeliveryReports:
    def test_report_marks_delivered_once(self, clinic: Clinic, client: object) -> None:
        _p, occ = sent_medication(clinic)
        body = clinic.sms.delivery_report(clinic.sms.sent[0])
        assert post(client, clinic, body).status_code == 200
        occ.refresh_from_db()
        assert occ.status == rm.Status.DELIVERED
        assert occ.attempts.get().outcome == "delivered"
        assert post(client, clinic, body).status_code == 200  # the provider retries
        assert InboundEvent.objects.count() == 1

    def test_forged_token_is_refused_and_changes_nothing(
        self, clinic: Clinic, client: object
    ) -> None:
        _p, occ = sent_medication(clinic)
        body = clinic.sms.delivery_report(clinic.sms.sent[0])
        assert post(client, clinic, body, token="guess").status_code == 403
        assert post(client, clinic, body, token="").status_code == 403
        occ.refresh_from_db()
        assert occ.status == rm.Status.SENT
        assert not InboundEvent.objects.exists()

    def test_unknown_organisation_or_provider_is_not_found(
        self, clinic: Clinic, client: object
    ) -> None:
        body = b"[]"
        r = client.post(
            "/hooks/nope/aliyun_sms?token=x", data=body, content_type="application/json"
        )  # type: ignore[attr-defined]
        assert r.status_code == 404
        r = client.post(
            f"/hooks/{clinic.world.org.code}/twilio_sms", data=body, content_type="application/json"
        )  # type: ignore[attr-defined]
        assert r.status_code == 404

    def test_late_report_after_acknowledgement_does_not_go_back(
        self, clinic: Clinic, client: object
    ) -> None:
        from careloop.reminders import services as reminder_services

        _p, occ = sent_medication(clinic)
        reminder_services.acknowledge(occ.pk, source="link", intake="taken")
        post(client, clinic, clinic.sms.delivery_report(clinic.sms.sent[0], success=False))
        occ.refresh_from_db()
        assert occ.status == rm.Status.ACKNOWLEDGED


class TestReplies:
    def reply(self, clinic: Clinic, number: str, text: str, at: object) -> list[str]:
        _ct, _body, results = channel_services.handle_callback(
            clinic.world.org.code,
            "aliyun_sms",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=clinic.sms.reply(number, text),
            query={"token": clinic.sms.callback_token},
            url="",
            now=at,  # type: ignore[arg-type]
        )
        return results

    def test_reply_1_confirms_the_dose(self, clinic: Clinic) -> None:
        p, occ = sent_medication(clinic)
        number = clinic.sms.sent[0].to
        assert self.reply(clinic, number, "1", utc(2026, 3, 2, 0, 20)) == ["acknowledged"]
        occ.refresh_from_db()
        assert occ.status == rm.Status.ACKNOWLEDGED and occ.ack_source == "sms_reply"
        assert occ.intake.status == "taken"

    def test_reply_no_records_a_skipped_dose(self, clinic: Clinic) -> None:
        _p, occ = sent_medication(clinic)
        assert self.reply(clinic, clinic.sms.sent[0].to, "没吃", utc(2026, 3, 2, 0, 20)) == [
            "acknowledged"
        ]
        occ.refresh_from_db()
        assert occ.intake.status == "skipped"

    def test_free_text_and_strangers_change_nothing(self, clinic: Clinic) -> None:
        _p, occ = sent_medication(clinic)
        at = utc(2026, 3, 2, 0, 20)
        assert self.reply(clinic, clinic.sms.sent[0].to, "医生我头晕", at) == ["not_an_answer"]
        assert self.reply(clinic, "+8613700000000", "1", at) == ["unknown_sender"]
        occ.refresh_from_db()
        assert occ.status == rm.Status.SENT

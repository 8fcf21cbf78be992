"""E-mail over SMTP against an aiosmtpd server."""

from __future__ import annotations

import pytest

from careloop.channels.fakes import FakeSmtp
from careloop.channels.port import PermanentError, PermanentReason, Reconciled, TransientError
from careloop.channels.smtp import SmtpAdapter, message_id

from .conftest import LINK, make_message

ADDRESS = "wang.patient@example.org"


def mail(**overrides):  # type: ignore[no-untyped-def]
    values = {"to": ADDRESS, "subject": "", "body": "请查看您的随访提醒"}
    values.update(overrides)
    return make_message(**values)


class TestSend:
    def test_delivers_with_login_and_a_stable_message_id(self, smtp_fake: FakeSmtp) -> None:
        adapter = SmtpAdapter(smtp_fake.config())
        first = adapter.send(mail())
        second = adapter.send(mail())

        assert smtp_fake.logins == 2
        assert [s.to for s in smtp_fake.sent] == [ADDRESS, ADDRESS]
        expected = message_id("occ:101:sms:0", "care@hospital.example")
        assert first.provider_message_id == second.provider_message_id == expected
        assert smtp_fake.sent[0].ref == expected
        assert LINK in smtp_fake.sent[0].text
        assert smtp_fake.sent[0].extra["from"] == "care@hospital.example"

    def test_message_id_differs_per_occurrence(self) -> None:
        assert message_id("occ:1", "a@b.example") != message_id("occ:2", "a@b.example")
        assert message_id("occ:1", "随访中心 <a@b.example>").endswith("@b.example>")

    @pytest.mark.parametrize(
        ("language", "subject"),
        [("zh-hans", "您的医护团队给您发来一条消息"), ("en", "A message from your care team")],
    )
    def test_default_subject_in_the_patients_language(
        self, smtp_fake: FakeSmtp, language: str, subject: str
    ) -> None:
        SmtpAdapter(smtp_fake.config()).send(mail(language=language))
        assert smtp_fake.sent[0].extra["subject"] == subject
        assert smtp_fake.sent[0].extra["language"] == language

    def test_given_subject_is_kept_on_one_line(self, smtp_fake: FakeSmtp) -> None:
        SmtpAdapter(smtp_fake.config()).send(mail(subject="复诊\r\nBcc: x@evil.example"))
        assert smtp_fake.sent[0].extra["subject"] == "复诊 Bcc: x@evil.example"
        assert [s.to for s in smtp_fake.sent] == [ADDRESS]

    def test_batch_shares_one_connection(self, smtp_fake: FakeSmtp) -> None:
        messages = [mail(to=f"p{i}@example.org", dedupe_key=f"k{i}") for i in range(5)]
        results = SmtpAdapter(smtp_fake.config()).send_batch(messages)
        assert all(not isinstance(r, Exception) for r in results)
        assert smtp_fake.logins == 1
        assert [s.to for s in smtp_fake.sent] == [m.to for m in messages]


class TestErrors:
    def test_unknown_mailbox_is_an_invalid_address(self, smtp_fake: FakeSmtp) -> None:
        smtp_fake.fail_numbers({ADDRESS: "550"})
        with pytest.raises(PermanentError) as exc:
            SmtpAdapter(smtp_fake.config()).send(mail())
        assert exc.value.reason == PermanentReason.INVALID_ADDRESS
        assert exc.value.code == "550"

    def test_other_5xx_is_rejected(self, smtp_fake: FakeSmtp) -> None:
        smtp_fake.fail_numbers({ADDRESS: "554"})
        with pytest.raises(PermanentError) as exc:
            SmtpAdapter(smtp_fake.config()).send(mail())
        assert exc.value.reason == PermanentReason.REJECTED

    def test_4xx_is_transient(self, smtp_fake: FakeSmtp) -> None:
        smtp_fake.fail_next(code="451")
        adapter = SmtpAdapter(smtp_fake.config())
        with pytest.raises(TransientError):
            adapter.send(mail())
        adapter.send(mail())
        assert len(smtp_fake.sent) == 1

    def test_one_refused_recipient_does_not_spoil_the_batch(self, smtp_fake: FakeSmtp) -> None:
        smtp_fake.fail_numbers({"p1@example.org": "550"})
        messages = [mail(to=f"p{i}@example.org", dedupe_key=f"k{i}") for i in range(3)]
        results = SmtpAdapter(smtp_fake.config()).send_batch(messages)
        assert isinstance(results[1], PermanentError)
        assert [s.to for s in smtp_fake.sent] == ["p0@example.org", "p2@example.org"]

    def test_wrong_password_is_a_configuration_error(self, smtp_fake: FakeSmtp) -> None:
        with pytest.raises(PermanentError) as exc:
            SmtpAdapter(smtp_fake.config() | {"password": "wrong"}).send(mail())
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert smtp_fake.sent == []

    def test_unreachable_server_fails_the_whole_batch_transiently(self) -> None:
        fake = FakeSmtp()
        config = fake.config()  # never started: nothing listens on the port
        results = SmtpAdapter(config).send_batch([mail(), mail(dedupe_key="k2")])
        assert all(isinstance(r, TransientError) for r in results)

    @pytest.mark.parametrize("to", ["not-an-address", "a@b@c", "x@example.org\r\nBcc: y@z"])
    def test_bad_address_never_reaches_the_server(self, smtp_fake: FakeSmtp, to: str) -> None:
        with pytest.raises(PermanentError) as exc:
            SmtpAdapter(smtp_fake.config()).send(mail(to=to))
        assert exc.value.reason == PermanentReason.INVALID_ADDRESS
        assert smtp_fake.sent == []

    def test_reconcile_cannot_tell(self, smtp_fake: FakeSmtp) -> None:
        assert SmtpAdapter(smtp_fake.config()).reconcile(mail()) == Reconciled.UNKNOWN


class TestStartTls:
    def test_login_and_mail_go_over_tls_to_a_trusted_server(self) -> None:
        with FakeSmtp(tls=True) as fake:
            SmtpAdapter(fake.config()).send(mail())
            assert fake.sent[0].extra["tls"] is True
            assert fake.logins == 1

    def test_an_untrusted_certificate_is_a_configuration_error(self) -> None:
        with FakeSmtp(tls=True) as fake:
            config = fake.config()
            del config["ca_file"]
            with pytest.raises(PermanentError) as exc:
                SmtpAdapter(config).send(mail())
            assert exc.value.reason == PermanentReason.CONFIGURATION
            assert fake.sent == []

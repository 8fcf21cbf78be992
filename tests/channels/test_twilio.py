"""Twilio Messages API against the fake."""

from __future__ import annotations

import pytest

from careloop.channels.fakes import FakeTwilio
from careloop.channels.port import (
    InvalidCallback,
    PermanentError,
    PermanentReason,
    Reconciled,
    TransientError,
)
from careloop.channels.registry import parse_callback
from careloop.channels.twilio import TwilioSmsAdapter

from .conftest import LINK, make_message


class TestSend:
    def test_posts_the_message_with_basic_auth(self, twilio: FakeTwilio) -> None:
        result = TwilioSmsAdapter(twilio.config()).send(make_message(to="+14155550100"))
        req = twilio.requests[0]
        assert req.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        assert req.headers["authorization"].startswith("Basic ")
        form = req.form()
        assert form["To"] == "+14155550100"
        assert form["From"] == "+15005550006"
        assert LINK in form["Body"]
        assert form["StatusCallback"] == twilio.callback_url
        assert result.provider_message_id == twilio.sent[0].id

    def test_link_is_appended_when_the_body_lacks_it(self, twilio: FakeTwilio) -> None:
        TwilioSmsAdapter(twilio.config()).send(make_message(body="请查看提醒"))
        assert twilio.sent[0].text == f"请查看提醒\n{LINK}"

    def test_messaging_service_instead_of_a_number(self, twilio: FakeTwilio) -> None:
        config = twilio.config() | {"from_number": "", "messaging_service_sid": "MG" + "1" * 32}
        TwilioSmsAdapter(config).send(make_message())
        form = twilio.requests[0].form()
        assert form["MessagingServiceSid"] == "MG" + "1" * 32
        assert "From" not in form

    def test_wrong_auth_token_is_refused(self, twilio: FakeTwilio) -> None:
        with pytest.raises(PermanentError) as exc:
            TwilioSmsAdapter(twilio.config() | {"auth_token": "wrong"}).send(make_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert exc.value.code == "20003"


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("code", "reason"),
        [
            ("21211", PermanentReason.INVALID_ADDRESS),
            ("21614", PermanentReason.INVALID_ADDRESS),
            ("21610", PermanentReason.UNSUBSCRIBED),
            ("21606", PermanentReason.CONFIGURATION),
        ],
    )
    def test_permanent(self, twilio: FakeTwilio, code: str, reason: PermanentReason) -> None:
        twilio.fail_numbers({"+8613800000001": code})
        with pytest.raises(PermanentError) as exc:
            TwilioSmsAdapter(twilio.config()).send(make_message())
        assert exc.value.reason == reason

    def test_too_many_requests_is_transient(self, twilio: FakeTwilio) -> None:
        twilio.fail_next(code="20429")
        with pytest.raises(TransientError):
            TwilioSmsAdapter(twilio.config()).send(make_message())

    @pytest.mark.parametrize("status", [500, 503])
    def test_5xx_is_transient(self, twilio: FakeTwilio, status: int) -> None:
        twilio.fail_next(status=status)
        with pytest.raises(TransientError):
            TwilioSmsAdapter(twilio.config()).send(make_message())


class TestReconcile:
    def test_found_by_the_link_in_the_body(self, twilio: FakeTwilio) -> None:
        adapter = TwilioSmsAdapter(twilio.config())
        adapter.send(make_message(link=f"{LINK}other", body="x", dedupe_key="other"))
        adapter.send(make_message())
        assert adapter.reconcile(make_message()) == Reconciled.ACCEPTED
        listing = twilio.requests[-1]
        assert listing.method == "GET"
        assert listing.query["To"] == "+8613800000001"

    def test_not_found_when_no_body_holds_the_link(self, twilio: FakeTwilio) -> None:
        adapter = TwilioSmsAdapter(twilio.config())
        adapter.send(make_message(link=f"{LINK}other", body="x", dedupe_key="other"))
        assert adapter.reconcile(make_message()) == Reconciled.NOT_FOUND

    def test_follows_pages(self, twilio: FakeTwilio) -> None:
        adapter = TwilioSmsAdapter(twilio.config())
        adapter.send(make_message())
        for i in range(60):
            adapter.send(make_message(link=f"{LINK}-{i}", body="x", dedupe_key=f"k{i}"))
        assert adapter.reconcile(make_message()) == Reconciled.ACCEPTED
        assert sum(1 for r in twilio.requests if r.method == "GET") == 2


class TestWebhooks:
    def test_delivered_status(self, twilio: FakeTwilio) -> None:
        TwilioSmsAdapter(twilio.config()).send(make_message())
        sent = twilio.sent[0]
        headers, body = twilio.status_callback(sent, "delivered")
        events = parse_callback("twilio_sms", twilio.config(), "POST", headers, body, {})
        assert len(events) == 1
        assert events[0].kind == "delivered"
        assert events[0].provider_message_id == sent.id
        assert events[0].provider_event_id == f"{sent.id}:delivered"

    def test_undelivered_status_carries_the_error(self, twilio: FakeTwilio) -> None:
        TwilioSmsAdapter(twilio.config()).send(make_message())
        headers, body = twilio.status_callback(twilio.sent[0], "undelivered")
        events = parse_callback("twilio_sms", twilio.config(), "POST", headers, body, {})
        assert events[0].kind == "failed"
        assert events[0].detail == "30003"

    def test_intermediate_status_is_no_event(self, twilio: FakeTwilio) -> None:
        TwilioSmsAdapter(twilio.config()).send(make_message())
        headers, body = twilio.status_callback(twilio.sent[0], "sent")
        assert parse_callback("twilio_sms", twilio.config(), "POST", headers, body, {}) == []

    def test_inbound_reply(self, twilio: FakeTwilio) -> None:
        headers, body = twilio.inbound("+14155550100", "STOP")
        events = parse_callback("twilio_sms", twilio.config(), "POST", headers, body, {})
        assert events[0].kind == "reply"
        assert events[0].sender == "+14155550100"
        assert events[0].text == "STOP"

    def test_forged_signature_is_refused(self, twilio: FakeTwilio) -> None:
        headers, body = twilio.inbound("+14155550100", "hi")
        headers["X-Twilio-Signature"] = "AAAA" + headers["X-Twilio-Signature"][4:]
        with pytest.raises(InvalidCallback):
            parse_callback("twilio_sms", twilio.config(), "POST", headers, body, {})

    def test_tampered_body_is_refused(self, twilio: FakeTwilio) -> None:
        headers, body = twilio.inbound("+14155550100", "hi")
        with pytest.raises(InvalidCallback):
            parse_callback("twilio_sms", twilio.config(), "POST", headers, body + b"&x=1", {})

    def test_signature_covers_the_url(self, twilio: FakeTwilio) -> None:
        headers, body = twilio.inbound("+14155550100", "hi")
        other = twilio.config() | {"callback_url": "https://care.example.org/other"}
        with pytest.raises(InvalidCallback):
            parse_callback("twilio_sms", other, "POST", headers, body, {})
        # ... and the URL the request actually reached can be passed explicitly.
        events = parse_callback(
            "twilio_sms", other, "POST", headers, body, {}, url=twilio.callback_url
        )
        assert events[0].kind == "reply"

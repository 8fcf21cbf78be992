"""WeChat Official Account messages against the fake API."""

from __future__ import annotations

import pytest

from careloop.channels.fakes import FakeWeChat
from careloop.channels.port import (
    InvalidCallback,
    PermanentError,
    PermanentReason,
    Reconciled,
    TransientError,
)
from careloop.channels.registry import callback_ack, parse_callback
from careloop.channels.wechat import WeChatAdapter

from .conftest import LINK, make_message

OPENID = "oAbCdEfGhIjKlMnOpQrStUvWx01"


def wx_message(**overrides):  # type: ignore[no-untyped-def]
    values = {"to": OPENID, "params": {"thing1": "复诊提醒", "time2": "2025-03-01 09:00"}}
    values.update(overrides)
    return make_message(**values)


class TestTemplateMessages:
    def test_sends_a_template_message_with_the_link(self, wechat_fake: FakeWeChat) -> None:
        result = WeChatAdapter(wechat_fake.config()).send(wx_message())
        post = wechat_fake.requests[-1]
        assert post.path == "/cgi-bin/message/template/send"
        payload = post.json()
        assert payload["touser"] == OPENID
        assert payload["template_id"] == "TPL-fake-reminder"
        assert payload["url"] == LINK
        assert payload["data"] == {
            "thing1": {"value": "复诊提醒"},
            "time2": {"value": "2025-03-01 09:00"},
        }
        assert payload["client_msg_id"] == "occ:101:sms:0"
        assert result.provider_message_id == wechat_fake.sent[0].id

    def test_the_access_token_is_fetched_once_and_reused(self, wechat_fake: FakeWeChat) -> None:
        adapter = WeChatAdapter(wechat_fake.config())
        for i in range(3):
            adapter.send(wx_message(dedupe_key=f"k{i}"))
        # A new adapter in the same process (the next job) shares the cached token.
        WeChatAdapter(wechat_fake.config()).send(wx_message(dedupe_key="k9"))
        assert wechat_fake.token_requests == 1
        assert len(wechat_fake.sent) == 4

    def test_an_expired_token_is_refreshed_once(self, wechat_fake: FakeWeChat) -> None:
        adapter = WeChatAdapter(wechat_fake.config())
        adapter.send(wx_message(dedupe_key="k1"))
        wechat_fake.expire_tokens()
        adapter.send(wx_message(dedupe_key="k2"))
        assert wechat_fake.token_requests == 2
        assert [s.ref for s in wechat_fake.sent] == ["k1", "k2"]

    def test_a_repeat_of_the_same_occurrence_is_dropped_by_wechat(
        self, wechat_fake: FakeWeChat
    ) -> None:
        adapter = WeChatAdapter(wechat_fake.config())
        first = adapter.send(wx_message())
        second = adapter.send(wx_message())
        assert first == second
        assert len(wechat_fake.sent) == 1

    def test_wrong_app_secret_is_a_configuration_error(self, wechat_fake: FakeWeChat) -> None:
        config = wechat_fake.config() | {"app_secret": "wrong"}
        with pytest.raises(PermanentError) as exc:
            WeChatAdapter(config).send(wx_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert exc.value.code == "40125"
        assert wechat_fake.sent == []


class TestSubscribeMessages:
    def test_bizsend_with_page(self, wechat_fake: FakeWeChat) -> None:
        WeChatAdapter(wechat_fake.config(mode="subscribe")).send(wx_message())
        post = wechat_fake.requests[-1]
        assert post.path == "/cgi-bin/message/subscribe/bizsend"
        payload = post.json()
        assert payload["page"] == LINK
        assert "client_msg_id" not in payload
        assert wechat_fake.sent[0].extra["mode"] == "subscribe"

    def test_refused_subscription_is_unsubscribed(self, wechat_fake: FakeWeChat) -> None:
        wechat_fake.fail_numbers({OPENID: "43101"})
        with pytest.raises(PermanentError) as exc:
            WeChatAdapter(wechat_fake.config(mode="subscribe")).send(wx_message())
        assert exc.value.reason == PermanentReason.UNSUBSCRIBED


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("errcode", "reason"),
        [
            ("43004", PermanentReason.UNSUBSCRIBED),
            ("43101", PermanentReason.UNSUBSCRIBED),
            ("40003", PermanentReason.INVALID_ADDRESS),
            ("45009", PermanentReason.QUOTA),
            ("40037", PermanentReason.CONFIGURATION),
        ],
    )
    def test_permanent(
        self, wechat_fake: FakeWeChat, errcode: str, reason: PermanentReason
    ) -> None:
        wechat_fake.fail_numbers({OPENID: errcode})
        with pytest.raises(PermanentError) as exc:
            WeChatAdapter(wechat_fake.config()).send(wx_message())
        assert exc.value.reason == reason

    def test_a_token_refused_even_when_fresh_is_transient(self, wechat_fake: FakeWeChat) -> None:
        wechat_fake.fail_next(2, code="40001")
        with pytest.raises(TransientError):
            WeChatAdapter(wechat_fake.config()).send(wx_message())
        assert wechat_fake.token_requests == 2
        assert wechat_fake.sent == []

    def test_system_busy_is_transient(self, wechat_fake: FakeWeChat) -> None:
        wechat_fake.fail_next(code="-1")
        with pytest.raises(TransientError):
            WeChatAdapter(wechat_fake.config()).send(wx_message())

    def test_http_5xx_is_transient(self, wechat_fake: FakeWeChat) -> None:
        wechat_fake.fail_next(status=502)
        with pytest.raises(TransientError):
            WeChatAdapter(wechat_fake.config()).send(wx_message())

    def test_reconcile_cannot_tell(self, wechat_fake: FakeWeChat) -> None:
        assert WeChatAdapter(wechat_fake.config()).reconcile(wx_message()) == Reconciled.UNKNOWN


class TestCallbacks:
    def test_template_send_finished(self, wechat_fake: FakeWeChat) -> None:
        WeChatAdapter(wechat_fake.config()).send(wx_message())
        sent = wechat_fake.sent[0]
        events = parse_callback(
            "wechat",
            wechat_fake.config(),
            "POST",
            {},
            wechat_fake.template_finished(sent),
            wechat_fake.signed_query(),
        )
        assert events[0].kind == "delivered"
        assert events[0].provider_message_id == sent.id
        assert events[0].provider_event_id == f"{sent.id}:success"

    def test_user_block_is_a_failure(self, wechat_fake: FakeWeChat) -> None:
        WeChatAdapter(wechat_fake.config()).send(wx_message())
        body = wechat_fake.template_finished(wechat_fake.sent[0], "failed:user block")
        events = parse_callback(
            "wechat", wechat_fake.config(), "POST", {}, body, wechat_fake.signed_query()
        )
        assert events[0].kind == "failed"
        assert events[0].detail == "failed:user block"

    def test_text_reply(self, wechat_fake: FakeWeChat) -> None:
        body = wechat_fake.text_message(OPENID, "血压 135/85")
        events = parse_callback(
            "wechat", wechat_fake.config(), "POST", {}, body, wechat_fake.signed_query()
        )
        assert events[0].kind == "reply"
        assert events[0].sender == OPENID
        assert events[0].text == "血压 135/85"

    def test_forged_signature_is_refused(self, wechat_fake: FakeWeChat) -> None:
        query = wechat_fake.signed_query()
        query["signature"] = "0" * 40
        with pytest.raises(InvalidCallback):
            parse_callback("wechat", wechat_fake.config(), "POST", {}, b"<xml/>", query)

    def test_replayed_signature_with_another_nonce_is_refused(
        self, wechat_fake: FakeWeChat
    ) -> None:
        query = wechat_fake.signed_query()
        query["nonce"] = query["nonce"] + "x"
        with pytest.raises(InvalidCallback):
            parse_callback("wechat", wechat_fake.config(), "POST", {}, b"<xml/>", query)

    def test_doctype_is_refused_even_when_signed(self, wechat_fake: FakeWeChat) -> None:
        body = (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<xml><MsgType>text</MsgType><Content>&xxe;</Content></xml>"
        )
        with pytest.raises(InvalidCallback, match="DOCTYPE"):
            parse_callback(
                "wechat", wechat_fake.config(), "POST", {}, body, wechat_fake.signed_query()
            )

    def test_billion_laughs_is_refused(self, wechat_fake: FakeWeChat) -> None:
        body = b'<!doctype lol [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml>&b;</xml>'
        with pytest.raises(InvalidCallback):
            parse_callback(
                "wechat", wechat_fake.config(), "POST", {}, body, wechat_fake.signed_query()
            )

    def test_malformed_xml_is_refused(self, wechat_fake: FakeWeChat) -> None:
        with pytest.raises(InvalidCallback):
            parse_callback(
                "wechat", wechat_fake.config(), "POST", {}, b"<xml><a>", wechat_fake.signed_query()
            )

    def test_server_url_check_answers_echostr(self, wechat_fake: FakeWeChat) -> None:
        query = wechat_fake.signed_query(echostr="8472095")
        assert parse_callback("wechat", wechat_fake.config(), "GET", {}, b"", query) == []
        assert callback_ack("wechat", "GET", query) == ("text/plain", b"8472095")
        assert callback_ack("wechat", "POST", query) == ("text/plain", b"success")

"""Alibaba Cloud SMS and voice against the fake Dysmsapi/Dyvmsapi."""

from __future__ import annotations

import json

import pytest

from careloop.channels.aliyun import AliyunSmsAdapter, AliyunVoiceAdapter
from careloop.channels.fakes import FakeAliyun
from careloop.channels.port import (
    InvalidCallback,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
    TransientError,
)
from careloop.channels.registry import parse_callback

from .conftest import LINK, make_message


class TestSendSms:
    def test_fake_accepts_the_signed_request_and_records_it(self, aliyun: FakeAliyun) -> None:
        result = AliyunSmsAdapter(aliyun.config()).send(make_message())

        assert result.provider_message_id == aliyun.sent[0].id
        form = aliyun.requests[0].form()
        assert aliyun.requests[0].method == "POST"
        assert form["Action"] == "SendSms"
        assert form["Version"] == "2017-05-25"
        assert form["SignatureMethod"] == "HMAC-SHA1"
        assert form["PhoneNumbers"] == "13800000001"  # mainland numbers go without +86
        assert form["SignName"] == "随访中心"
        assert form["TemplateCode"] == "SMS_0000001"
        assert form["OutId"] == "occ:101:sms:0"
        assert json.loads(form["TemplateParam"]) == {"name": "王女士", "link": LINK}
        # Nothing personal travels in the URL.
        assert aliyun.requests[0].query == {}

    def test_message_template_overrides_the_default(self, aliyun: FakeAliyun) -> None:
        AliyunSmsAdapter(aliyun.config()).send(make_message(template_code="SMS_9999"))
        assert aliyun.sent[0].extra["template"] == "SMS_9999"

    def test_long_dedupe_key_is_hashed_to_fit_out_id(self, aliyun: FakeAliyun) -> None:
        key = "occ:" + "x" * 400
        AliyunSmsAdapter(aliyun.config()).send(make_message(dedupe_key=key))
        ref = aliyun.sent[0].ref
        assert len(ref) < 256 and ref.startswith("h-")

    def test_wrong_secret_is_refused_by_the_fake(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config() | {"access_key_secret": "not-the-secret"}
        with pytest.raises(PermanentError) as exc:
            AliyunSmsAdapter(config).send(make_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert exc.value.code == "SignatureDoesNotMatch"
        assert aliyun.sent == []

    def test_unknown_key_id_is_a_configuration_error(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config() | {"access_key_id": "LTAIother"}
        with pytest.raises(PermanentError) as exc:
            AliyunSmsAdapter(config).send(make_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION

    def test_missing_setting_is_a_configuration_error(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config()
        del config["sign_name"]
        with pytest.raises(PermanentError) as exc:
            AliyunSmsAdapter(config).send(make_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert aliyun.requests == []

    def test_number_that_is_not_a_phone_number_never_reaches_the_provider(
        self, aliyun: FakeAliyun
    ) -> None:
        with pytest.raises(PermanentError) as exc:
            AliyunSmsAdapter(aliyun.config()).send(make_message(to="call me"))
        assert exc.value.reason == PermanentReason.INVALID_ADDRESS
        assert aliyun.requests == []


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("code", "reason"),
        [
            ("isv.MOBILE_NUMBER_ILLEGAL", PermanentReason.INVALID_ADDRESS),
            ("isv.MOBILE_COUNT_OVER_LIMIT", PermanentReason.INVALID_ADDRESS),
            ("isv.AMOUNT_NOT_ENOUGH", PermanentReason.QUOTA),
            ("isv.OUT_OF_SERVICE", PermanentReason.QUOTA),
            ("isv.SMS_TEMPLATE_ILLEGAL", PermanentReason.CONFIGURATION),
            ("isv.SMS_SIGNATURE_ILLEGAL", PermanentReason.CONFIGURATION),
            ("isv.SOMETHING_NEW", PermanentReason.REJECTED),
        ],
    )
    def test_permanent_codes(self, aliyun: FakeAliyun, code: str, reason: PermanentReason) -> None:
        aliyun.fail_numbers({"13800000001": code})
        with pytest.raises(PermanentError) as exc:
            AliyunSmsAdapter(aliyun.config()).send(make_message())
        assert exc.value.reason == reason
        assert exc.value.code == code

    @pytest.mark.parametrize("code", ["isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR"])
    def test_throttling_and_system_errors_are_transient(
        self, aliyun: FakeAliyun, code: str
    ) -> None:
        aliyun.fail_next(code=code)
        adapter = AliyunSmsAdapter(aliyun.config())
        with pytest.raises(TransientError) as exc:
            adapter.send(make_message())
        assert exc.value.code == code
        # The failure was scripted once: the retry goes through.
        assert isinstance(adapter.send(make_message()), SendResult)

    def test_http_5xx_is_transient(self, aliyun: FakeAliyun) -> None:
        aliyun.fail_next(2, status=503)
        adapter = AliyunSmsAdapter(aliyun.config())
        for _ in range(2):
            with pytest.raises(TransientError):
                adapter.send(make_message())
        adapter.send(make_message())
        assert len(aliyun.sent) == 1

    def test_timeout_is_transient(self) -> None:
        with FakeAliyun(latency=1.0) as slow:
            config = slow.config() | {"timeout": 0.2}
            with pytest.raises(TransientError) as exc:
                AliyunSmsAdapter(config).send(make_message())
        assert exc.value.code == "timeout"

    def test_unreachable_server_is_transient(self) -> None:
        fake = FakeAliyun().start()
        config = fake.config()
        fake.stop()
        with pytest.raises(TransientError) as exc:
            AliyunSmsAdapter(config).send(make_message())
        assert exc.value.code == "network"


class TestBatch:
    def messages(self, count: int) -> list:
        return [
            make_message(
                to=f"+86139{i:08d}",
                dedupe_key=f"occ:{i}:sms:0",
                link=f"{LINK}{i}",
                params={"link": f"{LINK}{i}"},
            )
            for i in range(count)
        ]

    def test_one_request_per_hundred_messages_results_in_order(self, aliyun: FakeAliyun) -> None:
        adapter = AliyunSmsAdapter(aliyun.config())
        assert adapter.batch_size == 100
        results = adapter.send_batch(self.messages(150))
        assert all(isinstance(r, SendResult) for r in results)
        actions = [r.form()["Action"] for r in aliyun.requests]
        assert actions == ["SendBatchSms", "SendBatchSms"]
        assert [s.to for s in aliyun.sent] == [f"139{i:08d}" for i in range(150)]
        assert [s.extra["params"]["link"] for s in aliyun.sent] == [
            f"{LINK}{i}" for i in range(150)
        ]

    def test_messages_with_different_templates_go_in_separate_requests(
        self, aliyun: FakeAliyun
    ) -> None:
        batch = self.messages(4)
        batch[1] = make_message(to="+8613900000099", dedupe_key="other", template_code="SMS_2")
        results = AliyunSmsAdapter(aliyun.config()).send_batch(batch)
        assert all(isinstance(r, SendResult) for r in results)
        assert sorted(r.form()["Action"] for r in aliyun.requests) == ["SendBatchSms", "SendSms"]

    def test_a_bad_number_is_isolated_and_the_rest_are_sent(self, aliyun: FakeAliyun) -> None:
        batch = self.messages(5)
        aliyun.fail_numbers({"13900000002": "isv.MOBILE_NUMBER_ILLEGAL"})
        results = AliyunSmsAdapter(aliyun.config()).send_batch(batch)
        assert isinstance(results[2], PermanentError)
        assert results[2].reason == PermanentReason.INVALID_ADDRESS
        assert [isinstance(r, SendResult) for r in results] == [True, True, False, True, True]
        assert sorted(s.ref for s in aliyun.sent) == sorted(
            m.dedupe_key for i, m in enumerate(batch) if i != 2
        )

    def test_a_provider_outage_fails_every_message_transiently(self, aliyun: FakeAliyun) -> None:
        aliyun.fail_next(status=500)
        results = AliyunSmsAdapter(aliyun.config()).send_batch(self.messages(3))
        assert all(isinstance(r, TransientError) for r in results)

    def test_an_invalid_address_in_the_list_does_not_stop_the_others(
        self, aliyun: FakeAliyun
    ) -> None:
        batch = [*self.messages(2), make_message(to="", dedupe_key="none")]
        results = AliyunSmsAdapter(aliyun.config()).send_batch(batch)
        assert isinstance(results[2], PermanentError)
        assert results[2].reason == PermanentReason.NO_ADDRESS
        assert len(aliyun.sent) == 2


class TestReconcile:
    def test_a_sent_message_is_found_by_out_id(self, aliyun: FakeAliyun) -> None:
        adapter = AliyunSmsAdapter(aliyun.config())
        message = make_message()
        adapter.send(message)
        assert adapter.reconcile(message) == Reconciled.ACCEPTED
        query = aliyun.requests[-1].form()
        assert query["Action"] == "QuerySendDetails"
        assert query["PhoneNumber"] == "13800000001"
        assert len(query["SendDate"]) == 8

    def test_a_message_never_sent_is_not_found(self, aliyun: FakeAliyun) -> None:
        adapter = AliyunSmsAdapter(aliyun.config())
        adapter.send(make_message(dedupe_key="occ:other", link="https://x/other", params={}))
        assert adapter.reconcile(make_message()) == Reconciled.NOT_FOUND

    def test_a_batch_sent_message_is_found_by_its_link(self, aliyun: FakeAliyun) -> None:
        adapter = AliyunSmsAdapter(aliyun.config())
        batch = TestBatch().messages(3)
        adapter.send_batch(batch)
        assert adapter.reconcile(batch[1]) == Reconciled.ACCEPTED
        assert adapter.reconcile(
            make_message(to=batch[1].to, dedupe_key="x", link="https://n/x")
        ) == (Reconciled.NOT_FOUND)

    def test_lookup_failure_is_raised_not_guessed(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config() | {"access_key_secret": "wrong"}
        with pytest.raises(PermanentError):
            AliyunSmsAdapter(config).reconcile(make_message())


class TestVoice:
    def test_single_call_by_tts(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config() | {"called_show_number": "057100000000", "play_times": "2"}
        result = AliyunVoiceAdapter(config).send(make_message(params={"time": "明天9点"}))
        form = aliyun.requests[0].form()
        assert form["Action"] == "SingleCallByTts"
        assert form["CalledNumber"] == "13800000001"
        assert form["TtsCode"] == "TTS_0000001"
        assert json.loads(form["TtsParam"]) == {"time": "明天9点"}
        assert form["OutId"] == "occ:101:sms:0"
        assert form["CalledShowNumber"] == "057100000000"
        assert result.provider_message_id == aliyun.sent[0].id
        assert aliyun.sent[0].provider == "aliyun_voice"

    def test_voice_flow_control_is_transient(self, aliyun: FakeAliyun) -> None:
        aliyun.fail_next(code="isv.BUSINESS_LIMIT_CONTROL")
        with pytest.raises(TransientError):
            AliyunVoiceAdapter(aliyun.config()).send(make_message())

    def test_reconcile_cannot_tell(self, aliyun: FakeAliyun) -> None:
        assert AliyunVoiceAdapter(aliyun.config()).reconcile(make_message()) == Reconciled.UNKNOWN


class TestCallbacks:
    def test_delivery_report(self, aliyun: FakeAliyun) -> None:
        AliyunSmsAdapter(aliyun.config()).send(make_message())
        sent = aliyun.sent[0]
        events = parse_callback(
            "aliyun_sms",
            aliyun.config(),
            "POST",
            {"Content-Type": "application/json"},
            aliyun.delivery_report(sent),
            {"token": aliyun.callback_token},
        )
        assert len(events) == 1
        event = events[0]
        assert event.kind == "delivered"
        assert event.provider_message_id == sent.id
        assert event.dedupe_key == "occ:101:sms:0"
        assert event.recipient == "+8613800000001"
        assert event.provider_event_id.startswith(sent.id)

    def test_failed_report_and_its_own_event_id(self, aliyun: FakeAliyun) -> None:
        AliyunSmsAdapter(aliyun.config()).send(make_message())
        sent = aliyun.sent[0]
        query = {"token": aliyun.callback_token}
        ok = parse_callback(
            "aliyun_sms", aliyun.config(), "POST", {}, aliyun.delivery_report(sent), query
        )
        bad = parse_callback(
            "aliyun_sms",
            aliyun.config(),
            "POST",
            {},
            aliyun.delivery_report(sent, success=False),
            query,
        )
        assert bad[0].kind == "failed"
        assert bad[0].detail == "MK:0001"
        assert bad[0].provider_event_id != ok[0].provider_event_id

    def test_reply(self, aliyun: FakeAliyun) -> None:
        body = aliyun.reply("13800000001", "收到，谢谢")
        query = {"token": aliyun.callback_token}
        events = parse_callback("aliyun_sms", aliyun.config(), "POST", {}, body, query)
        assert events[0].kind == "reply"
        assert events[0].sender == "+8613800000001"
        assert events[0].text == "收到，谢谢"
        again = parse_callback("aliyun_sms", aliyun.config(), "POST", {}, body, query)
        assert again[0].provider_event_id == events[0].provider_event_id

    @pytest.mark.parametrize("query", [{}, {"token": "forged"}, {"token": "收到"}])
    def test_wrong_or_missing_token_is_refused(self, aliyun: FakeAliyun, query: dict) -> None:
        with pytest.raises(InvalidCallback):
            parse_callback("aliyun_sms", aliyun.config(), "POST", {}, b"[]", query)

    def test_unconfigured_token_refuses_everything(self, aliyun: FakeAliyun) -> None:
        config = aliyun.config() | {"callback_token": ""}
        with pytest.raises(InvalidCallback):
            parse_callback("aliyun_sms", config, "POST", {}, b"[]", {"token": ""})

    @pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
    def test_malformed_body_is_refused(self, aliyun: FakeAliyun, body: bytes) -> None:
        with pytest.raises(InvalidCallback):
            parse_callback(
                "aliyun_sms", aliyun.config(), "POST", {}, body, {"token": aliyun.callback_token}
            )

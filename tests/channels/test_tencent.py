"""Tencent Cloud SMS and VMS against the fake API."""

from __future__ import annotations

import pytest

from careloop.channels.fakes import FakeTencent
from careloop.channels.port import (
    InvalidCallback,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
    TransientError,
)
from careloop.channels.registry import parse_callback
from careloop.channels.tencent import TencentSmsAdapter, TencentVoiceAdapter

from .conftest import LINK, make_message


class TestSendSms:
    def test_fake_accepts_the_signed_request(self, tencent: FakeTencent) -> None:
        message = make_message(params={"1": "王女士", "2": LINK})
        result = TencentSmsAdapter(tencent.config()).send(message)

        req = tencent.requests[0]
        assert req.headers["x-tc-action"] == "SendSms"
        assert req.headers["x-tc-version"] == "2021-01-11"
        assert req.headers["x-tc-region"] == "ap-guangzhou"
        assert req.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=")
        payload = req.json()
        assert payload["PhoneNumberSet"] == ["+8613800000001"]
        assert payload["SmsSdkAppId"] == "1400000001"
        assert payload["TemplateId"] == "100001"
        assert payload["TemplateParamSet"] == ["王女士", LINK]
        assert payload["SessionContext"] == "occ:101:sms:0"
        assert result.provider_message_id == tencent.sent[0].id

    def test_numbered_params_are_sent_in_numeric_order(self, tencent: FakeTencent) -> None:
        params = {str(i): f"v{i}" for i in (10, 2, 1)}
        TencentSmsAdapter(tencent.config()).send(make_message(params=params))
        assert tencent.requests[0].json()["TemplateParamSet"] == ["v1", "v2", "v10"]

    def test_wrong_secret_is_refused_by_the_fake(self, tencent: FakeTencent) -> None:
        config = tencent.config() | {"secret_key": "not-the-key"}
        with pytest.raises(PermanentError) as exc:
            TencentSmsAdapter(config).send(make_message())
        assert exc.value.code == "AuthFailure.SignatureFailure"
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert tencent.sent == []

    def test_unknown_secret_id_is_a_configuration_error(self, tencent: FakeTencent) -> None:
        config = tencent.config() | {"secret_id": "AKIDother"}
        with pytest.raises(PermanentError) as exc:
            TencentSmsAdapter(config).send(make_message())
        assert exc.value.code == "AuthFailure.SecretIdNotFound"


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("code", "reason"),
        [
            ("FailedOperation.PhoneNumberInBlacklist", PermanentReason.UNSUBSCRIBED),
            ("InvalidParameterValue.IncorrectPhoneNumber", PermanentReason.INVALID_ADDRESS),
            ("LimitExceeded.PhoneNumberDailyLimit", PermanentReason.QUOTA),
            ("FailedOperation.InsufficientBalanceInSmsPackage", PermanentReason.QUOTA),
            ("FailedOperation.TemplateIncorrectOrUnapproved", PermanentReason.CONFIGURATION),
        ],
    )
    def test_per_number_permanent_codes(
        self, tencent: FakeTencent, code: str, reason: PermanentReason
    ) -> None:
        tencent.fail_numbers({"+8613800000001": code})
        with pytest.raises(PermanentError) as exc:
            TencentSmsAdapter(tencent.config()).send(make_message())
        assert exc.value.reason == reason
        assert exc.value.code == code

    @pytest.mark.parametrize(
        "code",
        [
            "LimitExceeded.PhoneNumberThirtySecondLimit",
            "LimitExceeded.PhoneNumberOneHourLimit",
            "InternalError.Timeout",
            "RequestLimitExceeded",
        ],
    )
    def test_rate_limits_and_internal_errors_are_transient(
        self, tencent: FakeTencent, code: str
    ) -> None:
        tencent.fail_next(code=code)
        with pytest.raises(TransientError) as exc:
            TencentSmsAdapter(tencent.config()).send(make_message())
        assert exc.value.code == code

    def test_http_5xx_is_transient(self, tencent: FakeTencent) -> None:
        tencent.fail_next(status=502)
        with pytest.raises(TransientError):
            TencentSmsAdapter(tencent.config()).send(make_message())

    def test_timeout_is_transient(self) -> None:
        with FakeTencent(latency=1.0) as slow:
            with pytest.raises(TransientError) as exc:
                TencentSmsAdapter(slow.config() | {"timeout": 0.2}).send(make_message())
        assert exc.value.code == "timeout"


class TestBatch:
    def test_same_template_and_params_share_one_request(self, tencent: FakeTencent) -> None:
        common = {"1": "请按时服药"}
        messages = [
            make_message(to=f"+86137{i:08d}", dedupe_key=f"occ:{i}", params=common)
            for i in range(250)
        ]
        results = TencentSmsAdapter(tencent.config()).send_batch(messages)
        assert all(isinstance(r, SendResult) for r in results)
        sizes = [len(r.json()["PhoneNumberSet"]) for r in tencent.requests]
        assert sizes == [200, 50]
        assert [r.provider_message_id for r in results] == [s.id for s in tencent.sent]

    def test_per_number_failures_land_on_their_own_message(self, tencent: FakeTencent) -> None:
        common = {"1": "x"}
        messages = [
            make_message(to=f"+86137{i:08d}", dedupe_key=f"k{i}", params=common) for i in range(3)
        ]
        tencent.fail_numbers({"+8613700000001": "FailedOperation.PhoneNumberInBlacklist"})
        results = TencentSmsAdapter(tencent.config()).send_batch(messages)
        assert isinstance(results[0], SendResult)
        assert isinstance(results[1], PermanentError)
        assert results[1].reason == PermanentReason.UNSUBSCRIBED
        assert isinstance(results[2], SendResult)
        assert len(tencent.requests) == 1

    def test_different_params_need_separate_requests(self, tencent: FakeTencent) -> None:
        messages = [make_message(to=f"+86137{i:08d}", params={"1": f"{LINK}{i}"}) for i in range(3)]
        results = TencentSmsAdapter(tencent.config()).send_batch(messages)
        assert all(isinstance(r, SendResult) for r in results)
        assert len(tencent.requests) == 3


class TestReconcile:
    def test_tencent_offers_no_lookup(self, tencent: FakeTencent) -> None:
        adapter = TencentSmsAdapter(tencent.config())
        adapter.send(make_message())
        assert adapter.reconcile(make_message()) == Reconciled.UNKNOWN


class TestVoice:
    def test_send_tts_voice(self, tencent: FakeTencent) -> None:
        config = tencent.config() | {"play_times": "2"}
        result = TencentVoiceAdapter(config).send(make_message(params={"1": "明天"}))
        req = tencent.requests[0]
        assert req.headers["x-tc-action"] == "SendTtsVoice"
        assert req.headers["x-tc-version"] == "2020-09-02"
        assert "/vms/tc3_request" in req.headers["authorization"]
        payload = req.json()
        assert payload["CalledNumber"] == "+8613800000001"
        assert payload["VoiceSdkAppid"] == "1400000002"
        assert payload["TemplateParamSet"] == ["明天"]
        assert payload["PlayTimes"] == 2
        assert payload["SessionContext"] == "occ:101:sms:0"
        assert result.provider_message_id == tencent.sent[0].id

    def test_voice_wrong_secret(self, tencent: FakeTencent) -> None:
        with pytest.raises(PermanentError) as exc:
            TencentVoiceAdapter(tencent.config() | {"secret_key": "x"}).send(make_message())
        assert exc.value.reason == PermanentReason.CONFIGURATION


class TestCallbacks:
    def test_status_report(self, tencent: FakeTencent) -> None:
        TencentSmsAdapter(tencent.config()).send(make_message())
        sent = tencent.sent[0]
        events = parse_callback(
            "tencent_sms",
            tencent.config(),
            "POST",
            {},
            tencent.status_report(sent),
            {"token": tencent.callback_token},
        )
        assert events[0].kind == "delivered"
        assert events[0].provider_message_id == sent.id
        assert events[0].provider_event_id == f"{sent.id}:SUCCESS"
        assert events[0].recipient == "+8613800000001"

    def test_failed_status(self, tencent: FakeTencent) -> None:
        TencentSmsAdapter(tencent.config()).send(make_message())
        body = tencent.status_report(tencent.sent[0], success=False)
        events = parse_callback(
            "tencent_sms", tencent.config(), "POST", {}, body, {"token": tencent.callback_token}
        )
        assert events[0].kind == "failed"

    def test_reply(self, tencent: FakeTencent) -> None:
        body = tencent.reply("+8613800000001", "好的")
        events = parse_callback(
            "tencent_sms", tencent.config(), "POST", {}, body, {"token": tencent.callback_token}
        )
        assert events[0].kind == "reply"
        assert events[0].sender == "+8613800000001"
        assert events[0].text == "好的"

    def test_forged_token_is_refused(self, tencent: FakeTencent) -> None:
        with pytest.raises(InvalidCallback):
            parse_callback("tencent_sms", tencent.config(), "POST", {}, b"[]", {"token": "nope"})

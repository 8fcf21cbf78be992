"""Web Push against a fake push service that decrypts what it receives."""

from __future__ import annotations

import json

import pytest

from careloop.channels.fakes import FakePushService
from careloop.channels.port import PermanentError, PermanentReason, Reconciled, TransientError
from careloop.channels.webpush import WebPushAdapter, generate_vapid_key, vapid_public_key

from .conftest import LINK, make_message


def push_message(subscription: dict, **overrides):  # type: ignore[no-untyped-def]
    values = {"to": json.dumps(subscription), "subject": "随访提醒", "body": "今天请记录血压"}
    values.update(overrides)
    return make_message(**values)


class TestDelivery:
    def test_payload_round_trips_through_rfc8291_encryption(self, push: FakePushService) -> None:
        sub = push.subscribe()
        result = WebPushAdapter(push.config()).send(push_message(sub))

        assert len(push.sent) == 1
        payload = json.loads(push.sent[0].text)  # decrypted by the fake with the browser's key
        assert payload == {
            "title": "随访提醒",
            "body": "今天请记录血压",
            "url": LINK,
            "tag": push.sent[0].ref,
            "lang": "zh-hans",
        }
        assert result.provider_message_id.startswith(push.url + "/m/")

    def test_headers_and_vapid(self, push: FakePushService) -> None:
        sub = push.subscribe()
        config = push.config() | {"ttl": 3600, "urgency": "high"}
        WebPushAdapter(config).send(push_message(sub))
        headers = push.requests[0].headers
        assert headers["content-encoding"] == "aes128gcm"
        assert headers["ttl"] == "3600"
        assert headers["urgency"] == "high"
        assert headers["authorization"].startswith("vapid t=")
        assert f"k={push.vapid_public}" in headers["authorization"]
        assert len(headers["topic"]) <= 32

    def test_same_occurrence_keeps_the_same_topic(self, push: FakePushService) -> None:
        sub = push.subscribe()
        adapter = WebPushAdapter(push.config())
        adapter.send(push_message(sub))
        adapter.send(push_message(sub))
        adapter.send(push_message(sub, dedupe_key="occ:102:push:0"))
        refs = [s.ref for s in push.sent]
        assert refs[0] == refs[1] != refs[2]

    def test_a_different_vapid_key_is_refused(self, push: FakePushService) -> None:
        other_private, _ = generate_vapid_key()
        config = push.config() | {"vapid_private_key": other_private}
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(config).send(push_message(push.subscribe()))
        assert exc.value.reason == PermanentReason.CONFIGURATION
        assert push.sent == []

    def test_public_key_for_the_portal(self, push: FakePushService) -> None:
        assert vapid_public_key(push.config()) == push.vapid_public

    def test_pem_private_key_is_accepted(self, push: FakePushService) -> None:
        from cryptography.hazmat.primitives import serialization

        from careloop.channels.webpush import load_vapid_key

        pem = (
            load_vapid_key(push.vapid_private)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
        WebPushAdapter(push.config() | {"vapid_private_key": pem}).send(
            push_message(push.subscribe())
        )
        assert len(push.sent) == 1


class TestErrors:
    def test_gone_subscription_is_unsubscribed(self, push: FakePushService) -> None:
        sub = push.subscribe()
        push.unsubscribe(sub)
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(push.config()).send(push_message(sub))
        assert exc.value.reason == PermanentReason.UNSUBSCRIBED

    @pytest.mark.parametrize("status", [429, 500, 503])
    def test_throttling_and_5xx_are_transient(self, push: FakePushService, status: int) -> None:
        push.fail_next(status=status)
        with pytest.raises(TransientError):
            WebPushAdapter(push.config()).send(push_message(push.subscribe()))

    @pytest.mark.parametrize(
        "to",
        [
            "not json",
            json.dumps({"endpoint": "https://push.example.net/x"}),
            json.dumps(
                {"endpoint": "https://p.example/x", "keys": {"p256dh": "AAAA", "auth": "x"}}
            ),
        ],
    )
    def test_malformed_subscription_is_an_invalid_address(
        self, push: FakePushService, to: str
    ) -> None:
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(push.config()).send(make_message(to=to))
        assert exc.value.reason == PermanentReason.INVALID_ADDRESS

    @pytest.mark.parametrize(
        "endpoint",
        [
            "http://push.example.net/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "file:///etc/x",
        ],
    )
    def test_endpoints_outside_public_https_are_refused(
        self, push: FakePushService, endpoint: str
    ) -> None:
        sub = push.subscribe() | {"endpoint": endpoint}
        config = push.config() | {"allow_insecure": False}
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(config).send(push_message(sub))
        assert exc.value.reason == PermanentReason.INVALID_ADDRESS
        assert push.requests == []

    def test_oversized_payload_is_rejected_before_sending(self, push: FakePushService) -> None:
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(push.config()).send(push_message(push.subscribe(), body="长" * 2000))
        assert exc.value.reason == PermanentReason.REJECTED
        assert push.requests == []

    def test_a_bad_ttl_setting_is_a_configuration_error(self, push: FakePushService) -> None:
        with pytest.raises(PermanentError) as exc:
            WebPushAdapter(push.config() | {"ttl": "a day"}).send(push_message(push.subscribe()))
        assert exc.value.reason == PermanentReason.CONFIGURATION

    def test_reconcile_cannot_tell(self, push: FakePushService) -> None:
        adapter = WebPushAdapter(push.config())
        assert adapter.reconcile(push_message(push.subscribe())) == Reconciled.UNKNOWN

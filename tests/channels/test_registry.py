"""The registry: providers per channel, settings, callbacks; and the outbox adapter."""

from __future__ import annotations

import importlib

import pytest

from careloop.channels import registry
from careloop.channels.port import (
    ChannelKind,
    InvalidCallback,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
)

from .conftest import make_message

MODULES = {
    "outbox": "outbox",
    "smtp": "smtp",
    "aliyun_sms": "aliyun",
    "aliyun_voice": "aliyun",
    "tencent_sms": "tencent",
    "tencent_voice": "tencent",
    "twilio_sms": "twilio",
    "wechat": "wechat",
    "webpush": "webpush",
}


class TestProviders:
    def test_every_channel_has_providers(self) -> None:
        assert registry.PROVIDERS == {
            ChannelKind.OUTBOX: ["outbox"],
            ChannelKind.EMAIL: ["smtp"],
            ChannelKind.SMS: ["aliyun_sms", "tencent_sms", "twilio_sms"],
            ChannelKind.WECHAT: ["wechat"],
            ChannelKind.VOICE: ["aliyun_voice", "tencent_voice"],
            ChannelKind.PUSH: ["webpush"],
        }

    @pytest.mark.parametrize("provider", sorted(MODULES))
    def test_adapter_identifies_itself(self, provider: str) -> None:
        kind = next(k for k, names in registry.PROVIDERS.items() if provider in names)
        adapter = registry.get_adapter(kind, provider, {})
        assert adapter.kind == kind
        assert adapter.provider == provider
        assert adapter.batch_size >= 1

    @pytest.mark.parametrize("provider", sorted(MODULES))
    def test_secret_keys_are_among_the_config_keys(self, provider: str) -> None:
        keys = registry.config_keys(provider)
        assert set(registry.secret_keys(provider)) <= set(keys)
        module = importlib.import_module(f"careloop.channels.{MODULES[provider]}")
        assert set(registry.secret_keys(provider)) <= set(module.SECRET_KEYS)
        # Every key the adapter documents appears in its module docstring.
        for key in keys:
            assert f"``{key}``" in (module.__doc__ or ""), key

    def test_unknown_provider_is_a_configuration_error(self) -> None:
        with pytest.raises(PermanentError) as exc:
            registry.get_adapter(ChannelKind.SMS, "carrier_pigeon", {})
        assert exc.value.reason == PermanentReason.CONFIGURATION

    def test_provider_of_another_channel_is_refused(self) -> None:
        with pytest.raises(PermanentError) as exc:
            registry.get_adapter(ChannelKind.SMS, "wechat", {})
        assert exc.value.reason == PermanentReason.CONFIGURATION

    def test_bad_timeout_is_a_configuration_error(self) -> None:
        with pytest.raises(PermanentError):
            registry.get_adapter(ChannelKind.SMS, "aliyun_sms", {"timeout": "soon"})


class TestMasking:
    def test_set_secrets_are_masked_and_others_shown(self) -> None:
        shown = registry.masked(
            "aliyun_sms",
            {"access_key_id": "LTAI123", "access_key_secret": "s3cr3t", "callback_token": ""},
        )
        assert shown["access_key_id"] == "LTAI123"
        assert shown["access_key_secret"] == registry.MASK
        assert shown["callback_token"] == ""
        assert "s3cr3t" not in repr(shown)
        assert set(shown) == set(registry.config_keys("aliyun_sms"))


class TestCallbacks:
    @pytest.mark.parametrize("provider", ["outbox", "smtp", "webpush", "aliyun_voice"])
    def test_providers_without_callbacks_refuse_them(self, provider: str) -> None:
        with pytest.raises(InvalidCallback):
            registry.parse_callback(provider, {}, "POST", {}, b"[]", {})

    def test_acknowledgements_are_what_each_provider_expects(self) -> None:
        assert registry.callback_ack("aliyun_sms", "POST", {})[1] == (
            '{"code":0,"msg":"成功"}'.encode()
        )
        assert registry.callback_ack("tencent_sms", "POST", {})[1] == b'{"result":0,"errmsg":"OK"}'
        assert registry.callback_ack("twilio_sms", "POST", {})[0] == "text/xml"


class TestOutbox:
    def test_send_hands_back_a_fresh_id_and_contacts_nobody(self) -> None:
        adapter = registry.get_adapter(ChannelKind.OUTBOX, "outbox", {})
        first = adapter.send(make_message(to="patient:42"))
        second = adapter.send(make_message(to="patient:42"))
        assert isinstance(first, SendResult)
        assert first.provider_message_id.startswith("outbox-")
        assert first.provider_message_id != second.provider_message_id

    def test_batch_and_reconcile(self) -> None:
        adapter = registry.get_adapter(ChannelKind.OUTBOX, "outbox", {})
        results = adapter.send_batch([make_message(to="patient:1"), make_message(to="")])
        assert isinstance(results[0], SendResult)
        assert isinstance(results[1], PermanentError)
        assert results[1].reason == PermanentReason.NO_ADDRESS
        # Nothing left CareLoop, so a send in doubt is safe to repeat.
        assert adapter.reconcile(make_message()) == Reconciled.NOT_FOUND

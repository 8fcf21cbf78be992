"""Delivery channels in the admin: a provider per channel, settings as fields, secrets hidden."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.channels.models import ChannelConfig

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Access-Key-Value-9f8e7d"
TOKEN = "callback-token-4b5c6d7e8f"


@pytest.fixture
def admin_client(world: Any) -> Client:
    """The organisation admin, reading English."""
    admin = world.staff["admin"]
    admin.language = "en"
    admin.save(update_fields=["language"])
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def sms(world: Any) -> ChannelConfig:
    cfg = ChannelConfig(organisation=world.org, kind="sms", provider="aliyun_sms")
    cfg.config = {
        "endpoint": "https://dysmsapi.aliyuncs.com",
        "access_key_id": "LTAI-public-id",
        "access_key_secret": SECRET,
        "sign_name": "某某医院",
        "template_code": "SMS_0001",
        "callback_token": TOKEN,
    }
    cfg.save()
    return cfg


def form(cfg: ChannelConfig, **settings: str) -> dict[str, Any]:
    """The change form as posted: every setting field, secrets left empty unless given."""
    data = {"kind": cfg.kind, "provider": cfg.provider, "enabled": "on"}
    visible = {
        k: v for k, v in cfg.config.items() if k not in ("access_key_secret", "callback_token")
    }
    data.update({f"setting_{k}": v for k, v in visible.items()})
    data.update({f"setting_{k}": v for k, v in settings.items()})
    return data


def change_url(cfg: ChannelConfig) -> str:
    return f"/admin/channels/channelconfig/{cfg.pk}/change/"


class TestSecrets:
    def test_secrets_are_never_shown(self, world: Any, admin_client: Client, sms: Any) -> None:
        html = admin_client.get(change_url(sms)).content.decode()
        assert 'name="setting_access_key_id"' in html and "LTAI-public-id" in html
        assert 'name="setting_access_key_secret"' in html
        assert SECRET not in html and TOKEN not in html
        assert "Leave empty to keep it" in html
        listing = admin_client.get("/admin/channels/channelconfig/").content.decode()
        assert SECRET not in listing

    def test_blank_keeps_the_secret_and_a_new_value_replaces_it(
        self, world: Any, admin_client: Client, sms: Any
    ) -> None:
        response = admin_client.post(change_url(sms), form(sms, sign_name="新签名"))
        assert response.status_code == 302, response.content.decode()[-2000:]
        sms.refresh_from_db()
        assert sms.config["access_key_secret"] == SECRET
        assert sms.config["sign_name"] == "新签名"
        admin_client.post(change_url(sms), form(sms, access_key_secret="rotated-secret-123"))
        sms.refresh_from_db()
        assert sms.config["access_key_secret"] == "rotated-secret-123"
        assert sms.config["callback_token"] == TOKEN

    def test_changes_are_audited_by_key_name_only(
        self, world: Any, admin_client: Client, sms: Any
    ) -> None:
        admin_client.post(change_url(sms), form(sms, access_key_secret="rotated-secret-123"))
        event = AuditEvent.objects.filter(action="channel.update").latest("id")
        assert event.actor == "admin"
        assert event.detail["settings_changed"] == ["access_key_secret"]
        assert "rotated-secret-123" not in str(event.detail) and SECRET not in str(event.detail)
        history = admin_client.get(f"{change_url(sms).rsplit('change/', 1)[0]}history/")
        assert "rotated-secret-123" not in history.content.decode()


class TestProviders:
    def test_a_provider_must_serve_the_channel(self, world: Any, admin_client: Client) -> None:
        response = admin_client.post(
            "/admin/channels/channelconfig/add/",
            {"kind": "sms", "provider": "smtp", "enabled": "on"},
        )
        assert response.status_code == 200
        assert "does not serve the chosen channel" in response.content.decode()
        assert not ChannelConfig.objects.exists()

    def test_add_then_fill_in_the_providers_settings(
        self, world: Any, admin_client: Client
    ) -> None:
        add = admin_client.get("/admin/channels/channelconfig/add/").content.decode()
        assert "<optgroup" in add and '<option value="tencent_sms">' in add
        response = admin_client.post(
            "/admin/channels/channelconfig/add/",
            {"kind": "email", "provider": "smtp", "enabled": "on"},
        )
        cfg = ChannelConfig.objects.get(kind="email")
        assert cfg.organisation_id == world.org.pk
        assert response["Location"] == change_url(cfg)
        page = admin_client.get(change_url(cfg)).content.decode()
        for key in ("host", "port", "username", "password", "from_address"):
            assert f'name="setting_{key}"' in page
        response = admin_client.post(
            change_url(cfg),
            {
                "kind": "email",
                "provider": "smtp",
                "enabled": "on",
                "setting_host": "smtp.example.cn",
                "setting_port": "587",
                "setting_password": "mail-password-1",
                "setting_from_address": "care@example.cn",
            },
        )
        assert response.status_code == 302
        cfg.refresh_from_db()
        assert cfg.config == {
            "host": "smtp.example.cn",
            "port": "587",
            "password": "mail-password-1",
            "from_address": "care@example.cn",
        }

    def test_unusable_settings_are_refused(
        self, world: Any, admin_client: Client, sms: Any
    ) -> None:
        response = admin_client.post(change_url(sms), form(sms, timeout="soon"))
        assert response.status_code == 200
        assert "These settings cannot be used" in response.content.decode()
        sms.refresh_from_db()
        assert "timeout" not in sms.config

    def test_one_configuration_per_channel(
        self, world: Any, admin_client: Client, sms: Any
    ) -> None:
        response = admin_client.post(
            "/admin/channels/channelconfig/add/",
            {"kind": "sms", "provider": "tencent_sms", "enabled": "on"},
        )
        assert response.status_code == 200
        assert ChannelConfig.objects.filter(kind="sms").count() == 1

    def test_another_organisations_channel_is_out_of_reach(
        self, world: Any, admin_client: Client
    ) -> None:
        theirs = ChannelConfig(organisation=world.other_org, kind="sms", provider="aliyun_sms")
        theirs.config = {"access_key_secret": SECRET}
        theirs.save()
        response = admin_client.get(change_url(theirs))
        assert response.status_code == 302
        assert SECRET not in admin_client.get(response["Location"]).content.decode()

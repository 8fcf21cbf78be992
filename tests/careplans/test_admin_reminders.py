"""Message templates and reminder settings in the Django admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.reminders import models as rm

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(world: Any) -> Client:
    """The organisation admin, reading English."""
    admin = world.staff["admin"]
    admin.language = "en"
    admin.save(update_fields=["language"])
    client = Client()
    client.force_login(admin)
    return client


def template(**values: str) -> dict[str, str]:
    data = {
        "kind": "medication",
        "channel": "sms",
        "language": "zh-hans",
        "subject": "",
        "body": "{clinic}：{name}，该服药了（{time}）。{link}",
        "provider_template_code": "",
    }
    data.update(values)
    return data


ADD = "/admin/reminders/messagetemplate/add/"


class TestMessageTemplates:
    def test_a_good_template_is_saved_in_the_admins_organisation(
        self, world: Any, admin_client: Client
    ) -> None:
        response = admin_client.post(ADD, template())
        assert response.status_code == 302, response.content.decode()[-2000:]
        saved = rm.MessageTemplate.objects.get()
        assert saved.organisation_id == world.org.pk
        assert AuditEvent.objects.filter(action="message_template.create").exists()

    @pytest.mark.parametrize(
        "body",
        [
            "{name}，您的身份证号 {patient.national_id}：{link}",
            "{name} {diagnosis} {link}",
            "{0.__class__} {link}",
            "{name!r} {link}",
        ],
    )
    def test_unknown_placeholders_are_refused(
        self, world: Any, admin_client: Client, body: str
    ) -> None:
        response = admin_client.post(ADD, template(body=body))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert "body" in errors
        assert not rm.MessageTemplate.objects.exists()

    def test_a_placeholder_in_the_subject_is_checked_too(
        self, world: Any, admin_client: Client
    ) -> None:
        response = admin_client.post(ADD, template(channel="email", subject="{patient.phone} 提醒"))
        assert "subject" in response.context["adminform"].form.errors
        assert not rm.MessageTemplate.objects.exists()

    def test_body_length_follows_the_channel(self, world: Any, admin_client: Client) -> None:
        long_body = "请按时服药。" * 60 + "{link}"  # 366 characters
        sms = admin_client.post(ADD, template(body=long_body))
        assert "body" in sms.context["adminform"].form.errors
        any_channel = admin_client.post(ADD, template(channel="", body=long_body))
        assert "body" in any_channel.context["adminform"].form.errors
        email = admin_client.post(ADD, template(channel="email", body=long_body))
        assert email.status_code == 302
        assert rm.MessageTemplate.objects.filter(channel="email").count() == 1

    def test_admin_text_is_shown_escaped(self, world: Any, admin_client: Client) -> None:
        admin_client.post(
            ADD,
            template(channel="email", subject="<script>alert(1)</script>", body="<b>{name}</b>"),
        )
        saved = rm.MessageTemplate.objects.get()
        listing = admin_client.get("/admin/reminders/messagetemplate/").content.decode()
        assert "<script>alert(1)</script>" not in listing
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
        page = admin_client.get(
            f"/admin/reminders/messagetemplate/{saved.pk}/change/"
        ).content.decode()
        assert "<b>{name}</b>" not in page and "&lt;b&gt;{name}&lt;/b&gt;" in page

    def test_shared_templates_are_read_only(self, world: Any, admin_client: Client) -> None:
        shared = rm.MessageTemplate.objects.create(
            organisation=None, kind="medication", channel="sms", language="zh-hans", body="{link}"
        )
        url = f"/admin/reminders/messagetemplate/{shared.pk}/change/"
        assert admin_client.get(url).status_code == 200
        response = admin_client.post(url, template(body="{name} {link}"))
        assert response.status_code == 403
        shared.refresh_from_db()
        assert shared.body == "{link}"

    def test_one_template_per_kind_channel_and_language(
        self, world: Any, admin_client: Client
    ) -> None:
        admin_client.post(ADD, template())
        again = admin_client.post(ADD, template(body="{name} {link}"))
        assert again.status_code == 200
        assert rm.MessageTemplate.objects.count() == 1


def settings_form(**values: Any) -> dict[str, Any]:
    data = {
        "quiet_start": "21:00",
        "quiet_end": "08:00",
        "daily_cap": "8",
        "horizon_days": "14",
        "end_of_day": "20:00",
        "link_ttl_hours": "72",
        "paused_reason": "",
    }
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


class TestReminderSettings:
    @pytest.fixture
    def current(self, world: Any) -> rm.ReminderSettings:
        return rm.ReminderSettings.objects.create(organisation=world.org)

    def url(self, s: rm.ReminderSettings) -> str:
        return f"/admin/reminders/remindersettings/{s.pk}/change/"

    def test_changes_are_saved_and_audited(
        self, world: Any, admin_client: Client, current: Any
    ) -> None:
        response = admin_client.post(
            self.url(current), settings_form(quiet_start="22:00", daily_cap="5")
        )
        assert response.status_code == 302, response.content.decode()[-2000:]
        current.refresh_from_db()
        assert (str(current.quiet_start), current.daily_cap) == ("22:00:00", 5)
        event = AuditEvent.objects.filter(action="reminders.settings.update").latest("id")
        assert event.detail["changes"]["daily_cap"] == [8, 5]
        assert event.actor == "admin"

    @pytest.mark.parametrize(
        "values",
        [{"daily_cap": "0"}, {"horizon_days": "400"}, {"link_ttl_hours": "0"}],
    )
    def test_out_of_range_values_are_refused(
        self, world: Any, admin_client: Client, current: Any, values: dict[str, str]
    ) -> None:
        response = admin_client.post(self.url(current), settings_form(**values))
        assert response.status_code == 200
        current.refresh_from_db()
        assert (current.daily_cap, current.horizon_days, current.link_ttl_hours) == (8, 14, 72)

    def test_pausing_needs_a_reason_and_is_audited(
        self, world: Any, admin_client: Client, current: Any
    ) -> None:
        refused = admin_client.post(self.url(current), settings_form(dispatch_paused="on"))
        assert refused.status_code == 200
        current.refresh_from_db()
        assert not current.dispatch_paused
        admin_client.post(
            self.url(current),
            settings_form(dispatch_paused="on", paused_reason="restored from backup"),
        )
        current.refresh_from_db()
        assert current.dispatch_paused and current.paused_reason == "restored from backup"
        event = AuditEvent.objects.filter(action="reminders.dispatch.pause").latest("id")
        assert event.detail["reason"] == "restored from backup"

    def test_another_organisations_settings_are_out_of_reach(
        self, world: Any, admin_client: Client
    ) -> None:
        theirs = rm.ReminderSettings.objects.create(organisation=world.other_org)
        response = admin_client.post(self.url(theirs), settings_form(daily_cap="1"))
        assert response.status_code == 302  # "does not exist"
        theirs.refresh_from_db()
        assert theirs.daily_cap == 8

    def test_a_nurse_cannot_open_the_settings(self, world: Any, current: Any) -> None:
        client = Client()
        client.force_login(world.staff["nurse.cardiology"])
        assert client.get(self.url(current)).status_code == 302  # to the admin sign-in

"""Per-organisation channel settings (credentials encrypted), the in-app outbox and callbacks."""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.kit.crypto import EncryptedTextField
from careloop.patients.models import Patient

from .port import ChannelKind

KIND_CHOICES = [
    (ChannelKind.OUTBOX.value, _("In-app outbox")),
    (ChannelKind.EMAIL.value, _("Email")),
    (ChannelKind.SMS.value, _("SMS")),
    (ChannelKind.WECHAT.value, _("WeChat")),
    (ChannelKind.VOICE.value, _("Voice call")),
    (ChannelKind.PUSH.value, _("App push")),
]


class ChannelConfig(models.Model):
    """Which provider an organisation uses for a channel, and its credentials (encrypted)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("channel"), max_length=10, choices=KIND_CHOICES)
    provider = models.CharField(_("provider"), max_length=20)
    settings_json = EncryptedTextField(_("settings"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "kind"], name="uniq_channel_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.provider}"

    @property
    def config(self) -> dict[str, Any]:
        if not self.settings_json:
            return {}
        value = json.loads(self.settings_json)
        return value if isinstance(value, dict) else {}

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        self.settings_json = json.dumps(value, sort_keys=True)


class OutboxMessage(models.Model):
    """A message delivered in-app: the patient portal shows it; demos read it."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    occurrence = models.ForeignKey(
        "reminders.Occurrence", on_delete=models.PROTECT, null=True, related_name="+"
    )
    dedupe_key = models.CharField(max_length=120, unique=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        indexes = [models.Index(fields=["patient", "created_at"], name="outbox_patient_at")]


class InboundEvent(models.Model):
    """A provider callback already applied: its provider event id is never applied twice."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=120)
    kind = models.CharField(max_length=20)
    received_at = models.DateTimeField(default=utc_now)
    result = models.CharField(max_length=60, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "provider", "event_id"], name="uniq_inbound_event"
            )
        ]

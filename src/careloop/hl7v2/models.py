"""The HL7 v2 message log: every message received, what became of it, and its answer."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.patients.models import Patient


class Status(models.TextChoices):
    APPLIED = "applied", _("Applied")
    ERROR = "error", _("Application error")
    REJECTED = "rejected", _("Rejected")


class Message(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(_("received at"), db_index=True)
    raw = models.BinaryField(_("raw message"))
    digest = models.CharField(max_length=64)  # SHA-256 of the raw bytes
    sender = models.CharField(_("sender"), max_length=400, blank=True)  # MSH-3|MSH-4
    control_id = models.CharField(_("control id"), max_length=199, blank=True)  # MSH-10
    message_type = models.CharField(_("type"), max_length=40, blank=True)  # e.g. ADT^A01
    channel = models.CharField(_("channel"), max_length=10, default="mllp")  # mllp | file
    peer = models.CharField(_("peer"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    reason = models.TextField(_("reason"), blank=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ack = models.TextField(_("acknowledgement"), blank=True)
    replay_count = models.PositiveIntegerField(_("replays"), default=0)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("HL7 v2 message")
        verbose_name_plural = _("HL7 v2 messages")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "sender", "control_id"],
                condition=~models.Q(control_id=""),
                name="uniq_hl7v2_control_id",
            )
        ]
        indexes = [models.Index(fields=["organisation", "status", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.message_type} {self.control_id} ({self.status})"

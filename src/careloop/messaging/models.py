"""Threads between a patient and their care team, their messages and attachments.

Writes go through services.py only; reads through selectors.py.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import CareTeam, Department, Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient

BODY_MAX = 2000


class MessagingSettings(models.Model):
    """Per-organisation messaging settings: the reply SLA and extra urgent words."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="messaging_settings"
    )
    sla_hours = models.PositiveSmallIntegerField(
        _("reply within (hours)"),
        default=24,
        help_text=_("A patient message unanswered for longer is shown as overdue."),
    )
    extra_urgent_words = models.TextField(
        _("extra urgent words"),
        blank=True,
        help_text=_("One word or phrase per line, added to the built-in list."),
    )

    class Meta:
        verbose_name = _("messaging settings")
        verbose_name_plural = _("messaging settings")

    def __str__(self) -> str:
        return str(self.organisation)

    @property
    def sla(self) -> dt.timedelta:
        return dt.timedelta(hours=self.sla_hours or 24)

    def extra_words(self) -> list[str]:
        return [w.strip() for w in self.extra_urgent_words.splitlines() if w.strip()]


class Thread(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("thread", "Open")
        WAITING = "waiting_for_patient", _("Waiting for patient")
        CLOSED = "closed", pgettext_lazy("thread", "Closed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    subject = models.CharField(_("subject"), max_length=200)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    care_team = models.ForeignKey(
        CareTeam, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.OPEN
    )
    created_at = models.DateTimeField(default=utc_now)
    last_message_at = models.DateTimeField(default=utc_now)
    last_patient_message_at = models.DateTimeField(null=True, blank=True)
    first_unanswered_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = _("message thread")
        verbose_name_plural = _("message threads")
        indexes = [
            models.Index(fields=["patient", "last_message_at"], name="thread_patient_last"),
            models.Index(
                fields=["organisation", "department", "status", "last_message_at"],
                name="thread_dept_status",
            ),
        ]

    def __str__(self) -> str:
        return self.subject

    def is_overdue(self, now: dt.datetime | None = None) -> bool:
        if self.status == self.Status.CLOSED or self.sla_due_at is None:
            return False
        return (now or utc_now()) > self.sla_due_at


class Message(models.Model):
    class Author(models.TextChoices):
        PATIENT = "patient", _("Patient")
        CAREGIVER = "caregiver", _("Caregiver")
        STAFF = "staff", _("Care team")
        SYSTEM = "system", _("Automatic")

    thread = models.ForeignKey(Thread, on_delete=models.PROTECT, related_name="messages")
    author_kind = models.CharField(max_length=10, choices=Author.choices)
    staff_author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    caregiver = models.ForeignKey(
        "patients.Caregiver", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    body = models.TextField(_("message"), max_length=BODY_MAX)
    created_at = models.DateTimeField(default=utc_now)
    read_by_patient_at = models.DateTimeField(null=True, blank=True)
    read_by_staff_at = models.DateTimeField(null=True, blank=True)
    # Who sent it, for the idempotency scope: "patient:<id>", "caregiver:<id>", "staff:<id>".
    author_scope = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    body_digest = models.CharField(max_length=64, blank=True)
    urgent = models.BooleanField(default=False)
    matched_words = models.JSONField(default=list, blank=True)
    # What a FHIR Communication carried that CareLoop does not model.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "author_scope", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="uniq_message_idem",
            )
        ]
        indexes = [models.Index(fields=["thread", "created_at"], name="message_thread_at")]

    def __str__(self) -> str:
        return self.body[:40]

    @property
    def from_patient_side(self) -> bool:
        return self.author_kind in (self.Author.PATIENT, self.Author.CAREGIVER)


class Attachment(models.Model):
    """A photo or PDF sent with a message. Stored under MEDIA_ROOT (the var dir), served only
    through the authorising views, never by URL."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="attachments")
    file = models.FileField(upload_to="messages/%Y/%m/")
    file_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.file_name


class ReplyTemplate(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(_("title"), max_length=100)
    body = models.TextField(_("body"), max_length=BODY_MAX)
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=[("zh-hans", "简体中文"), ("en", "English")],
        default="zh-hans",
    )

    class Meta:
        verbose_name = _("reply template")
        verbose_name_plural = _("reply templates")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

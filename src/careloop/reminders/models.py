"""Occurrences (one per thing to remind, materialised ahead), delivery attempts, intake events."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Medication, Patient


class ReminderSettings(models.Model):
    """Organisation-wide defaults for reminders and the dispatcher's pause switch."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="reminder_settings"
    )
    quiet_start = models.TimeField(_("quiet hours from"), default=dt.time(21, 0))
    quiet_end = models.TimeField(_("quiet hours until"), default=dt.time(8, 0))
    daily_cap = models.PositiveSmallIntegerField(_("daily cap per patient"), default=8)
    horizon_days = models.PositiveSmallIntegerField(_("materialise days ahead"), default=14)
    end_of_day = models.TimeField(
        _("end of the patient's day"),
        default=dt.time(20, 0),
        help_text=_('When an "end of day" escalation step fires, patient-local.'),
    )
    link_ttl_hours = models.PositiveSmallIntegerField(_("links valid for (hours)"), default=72)
    dispatch_paused = models.BooleanField(_("dispatch paused"), default=False)
    paused_reason = models.CharField(_("pause reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("reminder settings")
        verbose_name_plural = _("reminder settings")

    def __str__(self) -> str:
        return str(self.organisation)


class Status(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    FAILED = "failed", _("Failed")
    RETRYING = "retrying", _("Retrying")
    DEAD = "dead", _("Dead letter")
    CANCELLED = "cancelled", _("Cancelled")
    SKIPPED = "skipped", _("Skipped")


class Occurrence(models.Model):
    """One reminder due at one moment for one patient.

    ``source_key`` is deterministic (enrolment, activity, local date and time), so materialising
    twice never creates two rows. ``wake_at`` is when the dispatcher must next look at the row
    (first send, retry, or the next escalation step); it is cleared when nothing is left to do.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    enrolment = models.ForeignKey(
        "careplans.Enrolment", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    activity_code = models.CharField(max_length=50, blank=True)
    kind = models.CharField(max_length=20)
    purpose = models.CharField(max_length=20, default="care_reminders")
    source_key = models.CharField(max_length=160, unique=True)
    local_due = models.CharField(max_length=16)  # patient-local wall time, YYYY-MM-DDTHH:MM
    time_zone = models.CharField(max_length=64)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    reason = models.CharField(max_length=40, blank=True)
    wake_at = models.DateTimeField(null=True, blank=True)
    step = models.PositiveSmallIntegerField(default=0)
    tries = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=80, blank=True)
    claim_expires = models.DateTimeField(null=True, blank=True)
    link_digest = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    ref = models.CharField(max_length=60, blank=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_source = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        indexes = [
            models.Index(
                fields=["wake_at"],
                condition=Q(wake_at__isnull=False),
                name="occ_wake",
            ),
            models.Index(fields=["patient", "due_at"], name="occ_patient_due"),
            models.Index(fields=["enrolment", "due_at"], name="occ_enrolment_due"),
            models.Index(fields=["organisation", "status", "due_at"], name="occ_org_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.local_due} {self.time_zone} [{self.status}]"


class Attempt(models.Model):
    """One try at delivering an occurrence on one channel.

    ``dedupe_key`` names the occurrence, escalation step and channel; at most one attempt per key
    is ever accepted by a provider (a partial UNIQUE constraint enforces it). An attempt is
    written as ``pending`` and committed before the provider is called, so a crash in between is
    seen later as "in doubt" and reconciled with the provider instead of blindly re-sent.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", _("In progress")
        ACCEPTED = "accepted", _("Accepted by provider")
        DELIVERED = "delivered", _("Delivered")
        TRANSIENT = "transient", _("Failed, will retry")
        PERMANENT = "permanent", _("Failed permanently")
        SUPERSEDED = "superseded", _("Abandoned after a crash")

    occurrence = models.ForeignKey(Occurrence, on_delete=models.PROTECT, related_name="attempts")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    dedupe_key = models.CharField(max_length=120)
    try_no = models.PositiveSmallIntegerField(default=1)
    step = models.PositiveSmallIntegerField(default=0)
    channel = models.CharField(max_length=10)
    provider = models.CharField(max_length=20, blank=True)
    address_hint = models.CharField(max_length=20, blank=True)  # masked, e.g. 138****0000
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    provider_message_id = models.CharField(max_length=100, blank=True, db_index=True)
    error_code = models.CharField(max_length=60, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    worker = models.CharField(max_length=80, blank=True)
    in_doubt = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["occurrence", "started_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key", "try_no"], name="uniq_attempt_try"),
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(outcome__in=["accepted", "delivered"]),
                name="uniq_accepted_send",
            ),
        ]
        indexes = [
            models.Index(fields=["organisation", "channel", "started_at"], name="att_org_chan_at"),
            models.Index(fields=["patient", "started_at"], name="att_patient_at"),
        ]


class IntakeEvent(models.Model):
    """A patient's answer to a dose reminder: taken, skipped (with reason) or taken late."""

    class Status(models.TextChoices):
        TAKEN = "taken", _("Taken")
        LATE = "late", _("Taken late")
        SKIPPED = "skipped", _("Skipped")

    class SkipReason(models.TextChoices):
        FORGOT = "forgot", _("Forgot")
        SIDE_EFFECT = "side_effect", _("Side effects")
        RAN_OUT = "ran_out", _("Ran out of medicine")
        COST = "cost", _("Cost")
        FEELING_WELL = "feeling_well", _("Felt well, did not think it necessary")
        OTHER = "other", pgettext_lazy("reason", "Other")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    occurrence = models.OneToOneField(
        Occurrence, on_delete=models.PROTECT, null=True, blank=True, related_name="intake"
    )
    medication = models.ForeignKey(
        Medication, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    source = models.CharField(max_length=20)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("medication intake")
        verbose_name_plural = _("medication intake")
        indexes = [models.Index(fields=["patient", "recorded_at"], name="intake_patient_at")]


class MessageTemplate(models.Model):
    """The text of a reminder, per kind, channel and language. Placeholders: {name}, {title},
    {time}, {link}, {clinic}. Nothing else is substituted: the template cannot reach data."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(_("kind"), max_length=20)
    channel = models.CharField(_("channel"), max_length=10, blank=True)
    language = models.CharField(_("language"), max_length=10)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"), max_length=1000)
    provider_template_code = models.CharField(
        _("provider template code"), max_length=60, blank=True
    )

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "kind", "channel", "language"], name="uniq_msg_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.channel or '*'}/{self.language}"

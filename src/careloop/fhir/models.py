"""Bulk Data exports ($export): one row per kick-off, read by the background worker."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.kit.clock import utc_now


class ExportJob(models.Model):
    """One $export request: what was asked for, by whom, and the files it produced.

    ``key`` names the job in its status and file URLs. It is looked up together with the
    requester, so only the user who started the export can poll, cancel or download it."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Complete")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    key = models.CharField(max_length=40)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    organisation_id = models.BigIntegerField(null=True, blank=True)
    level = models.CharField(max_length=8)  # system | patient | group
    group = models.CharField(max_length=40, blank=True)
    types = models.JSONField(default=list)
    since = models.DateTimeField(null=True, blank=True)
    # The token's SMART scopes at kick-off ("" for a session: the role alone decides) and the
    # patient a patient-context token is bound to.
    scopes = models.TextField(blank=True)
    token_patient_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=64, blank=True)
    request_url = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.CharField(max_length=200, blank=True)
    output = models.JSONField(default=list)  # [{"type", "file", "count"}]
    directory = models.CharField(max_length=500, blank=True)  # where the files are written
    error = models.TextField(blank=True)
    transaction_time = models.DateTimeField(default=utc_now)
    created_at = models.DateTimeField(default=utc_now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("FHIR export")
        verbose_name_plural = _("FHIR exports")
        constraints = [
            models.UniqueConstraint(fields=["requester", "key"], name="uniq_fhir_export_key")
        ]

    def __str__(self) -> str:
        return f"$export {self.level} {self.key}"

"""A list of patients uploaded for a clinic's onboarding: its mapping, dry run and real run."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Department, Organisation, Staff
from careloop.kit.clock import utc_now


class PatientListJob(models.Model):
    """One uploaded file: mapped by staff, checked (dry run), then run by the worker."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        CHECKED = "checked", _("Checked")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_by = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to="onboarding/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8)  # csv or xlsx
    size = models.BigIntegerField(default=0)
    headers = models.JSONField(default=list, blank=True)
    header_row = models.IntegerField(default=1)
    mapping = models.JSONField(default=dict, blank=True)  # {"column index": field}
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UPLOADED)
    total_rows = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    # One entry per row: {row, outcome, patient, name, messages: [{field, reason}]}.
    results = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    checked_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organisation", "-created_at"], name="onb_job_org_idx")]

    def __str__(self) -> str:
        return self.file_name

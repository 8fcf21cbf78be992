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


class FhirImportFile(models.Model):
    """One FHIR file (Bundle or NDJSON) imported into an organisation, by path and content.

    A file whose run finished is skipped when the same path with the same content is imported
    again (unless asked to import it again); a run that stopped part-way is picked up again and
    resumes without duplicates thanks to ``FhirSourceLink``."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    entries = models.IntegerField(default=0)
    # The per-type figures of the last run (see careloop.fhir.importer.FileReport.as_dict).
    report = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(default=utc_now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "path", "sha256"], name="onb_fhir_file_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.path


class FhirSourceLink(models.Model):
    """A resource imported from another system → the CareLoop resource it became.

    ``source`` names where the id comes from: ``urn:uuid`` for a Bundle entry's ``urn:uuid:``
    full URL (unique everywhere), otherwise the source given to the import (by default the name
    of the file or folder imported). ``digest`` is the resource as last imported, so importing
    it again unchanged does nothing and a changed one updates the CareLoop row."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=200)
    resource_type = models.CharField(max_length=64)
    source_id = models.CharField(max_length=200)
    local_id = models.CharField(max_length=64)
    digest = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "source", "resource_type", "source_id"],
                name="onb_fhir_link_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["organisation", "source", "source_id"], name="onb_fhir_link_src")
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.source_id} → {self.local_id}"


class FhirImportJob(models.Model):
    """A FHIR file uploaded on the onboarding page, imported by the background worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_by = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to="onboarding/fhir/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=200)
    size = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.file_name

"""Readings, symptom-diary entries and adverse-reaction reports coming in from patients, staff,
devices and the hospital system."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Medication, Patient


class Source(models.TextChoices):
    PATIENT = "patient", _("Patient")
    STAFF = "staff", _("Staff")
    DEVICE = "device", _("Device")
    HIS = "his", _("Hospital system")


class Observation(models.Model):
    """One reading in canonical units (observations/domain.py). A reading is identified by
    patient, kind, effective time, source and device: sending it again changes nothing."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=16)
    code = models.CharField(_("LOINC code"), max_length=16)
    value = models.FloatField(_("value"))
    value2 = models.FloatField(_("diastolic"), null=True, blank=True)
    unit = models.CharField(_("unit"), max_length=12)
    context = models.CharField(_("context"), max_length=16, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    device_id = models.CharField(_("device"), max_length=64, blank=True, default="")
    effective_at = models.DateTimeField(_("time"))
    time_zone = models.CharField(max_length=64)
    local_day = models.IntegerField()  # date ordinal in the reading's zone (night/day rules)
    local_hour = models.SmallIntegerField()
    original = models.CharField(_("as received"), max_length=40, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("reading")
        verbose_name_plural = _("readings")
        constraints = [
            # The natural key of a reading; also the index charts and rules read by.
            models.UniqueConstraint(
                fields=["patient", "kind", "effective_at", "source", "device_id"],
                name="uniq_observation",
            )
        ]


class Latest(models.Model):
    """The newest reading of each kind per patient, and whether the patient's plan expects one
    daily (the absence sweep reads only this table)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16)
    last_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    value2 = models.FloatField(null=True, blank=True)
    context = models.CharField(max_length=16, blank=True)
    expected_since = models.DateTimeField(null=True, blank=True)  # NULL: not expected daily

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "kind"], name="uniq_latest_reading")
        ]
        indexes = [
            models.Index(
                fields=["organisation", "kind", "last_at"],
                condition=models.Q(expected_since__isnull=False),
                name="latest_expected",
            ),
            models.Index(
                fields=["organisation", "kind", "expected_since"],
                condition=models.Q(expected_since__isnull=False),
                name="latest_expected_since",
            ),
        ]


class SymptomEntry(models.Model):
    """A symptom-diary entry: what the patient felt, how bad (0–10), when."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    symptom = models.CharField(_("symptom"), max_length=100)
    severity = models.PositiveSmallIntegerField(_("severity (0–10)"))
    note = models.CharField(_("note"), max_length=1000, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    effective_at = models.DateTimeField(_("time"))
    created_at = models.DateTimeField(default=utc_now)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("symptom diary entry")
        verbose_name_plural = _("symptom diary")
        indexes = [models.Index(fields=["patient", "effective_at"], name="symptom_patient_at")]


class AdverseReaction(models.Model):
    """A reported adverse drug reaction; the rules route it to the attending doctor."""

    class Severity(models.IntegerChoices):
        MILD = 1, pgettext_lazy("severity", "Mild")
        MODERATE = 2, pgettext_lazy("severity", "Moderate")
        SEVERE = 3, pgettext_lazy("severity", "Severe")
        LIFE_THREATENING = 4, _("Life-threatening")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    medication = models.ForeignKey(
        Medication, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    drug = models.CharField(_("drug"), max_length=200)
    symptom = models.CharField(_("symptom"), max_length=200)
    severity = models.PositiveSmallIntegerField(_("severity"), choices=Severity.choices)
    onset = models.DateField(_("onset"))
    note = models.CharField(_("note"), max_length=1000, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    reported_at = models.DateTimeField(default=utc_now)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("adverse drug reaction")
        verbose_name_plural = _("adverse drug reactions")
        indexes = [models.Index(fields=["patient", "reported_at"], name="adr_patient_at")]


class ImportJob(models.Model):
    """A file of readings being read in the background, with its progress and line report."""

    class Format(models.TextChoices):
        CSV = "csv", _("CareLoop CSV")
        DEVICE_CSV = "device_csv", _("Device CSV")
        APPLE_HEALTH = "apple_health", _("Apple Health export")
        NDJSON = "ndjson", _("NDJSON")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    format = models.CharField(_("format"), max_length=16, choices=Format.choices)
    file = models.FileField(upload_to="imports/%Y/%m/")
    file_name = models.CharField(max_length=200)
    size = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    bytes_read = models.BigIntegerField(default=0)
    lines = models.IntegerField(default=0)
    accepted = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)  # first 1,000: {line, field, reason}
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("reading import")
        verbose_name_plural = _("reading imports")


class MissedDose(models.Model):
    """A dose reminder left unanswered a day after it was due: an event for adherence rules."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    occurrence_id = models.BigIntegerField(unique=True)
    due_at = models.DateTimeField()
    found_at = models.DateTimeField(default=utc_now)

    class Meta:
        indexes = [models.Index(fields=["patient", "due_at"], name="misseddose_patient_due")]

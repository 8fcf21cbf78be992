"""FHIR R4 Questionnaires, their assignment to patients and the patients' responses.

The canonical FHIR JSON is stored as-is (``resource`` / ``items``); the columns beside it are
what the pages and queries need. Writes go through services.py only; reads through
selectors.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class Questionnaire(models.Model):
    """One version of a FHIR Questionnaire. ``organisation`` empty: shipped with CareLoop and
    visible to every organisation; otherwise imported or built by that organisation."""

    class Status(models.TextChoices):
        DRAFT = "draft", pgettext_lazy("questionnaire", "Draft")
        ACTIVE = "active", pgettext_lazy("questionnaire", "Active")
        RETIRED = "retired", pgettext_lazy("questionnaire", "Retired")

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    url = models.CharField(_("canonical URL"), max_length=255)
    version = models.CharField(_("version"), max_length=40, blank=True)
    name = models.CharField(_("name"), max_length=120, blank=True)
    title = models.CharField(_("title"), max_length=200)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    language = models.CharField(_("language"), max_length=20, blank=True)
    # The scoring instrument (see scoring.INSTRUMENTS), or "" for an unscored questionnaire.
    instrument = models.CharField(_("scoring"), max_length=20, blank=True)
    resource = models.JSONField(_("FHIR Questionnaire"), default=dict)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("questionnaire")
        verbose_name_plural = _("questionnaires")
        ordering = ["title", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "url", "version"],
                condition=Q(organisation__isnull=False),
                name="questionnaire_org_url_version",
            ),
            models.UniqueConstraint(
                fields=["url", "version"],
                condition=Q(organisation__isnull=True),
                name="questionnaire_shipped_url_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.version})" if self.version else self.title


class Assignment(models.Model):
    """A questionnaire sent to a patient: ad hoc by staff, or by a care-plan activity."""

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("assignment", "To do")
        COMPLETED = "completed", pgettext_lazy("assignment", "Completed")
        CANCELLED = "cancelled", pgettext_lazy("assignment", "Cancelled")

    class Via(models.TextChoices):
        AD_HOC = "ad_hoc", _("Sent by staff")
        PLAN = "plan", _("Care plan")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.AD_HOC)
    due_at = models.DateTimeField()
    # The plan reminder this assignment answers (unique: materialising twice makes one row).
    occurrence = models.OneToOneField(
        "reminders.Occurrence",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=utc_now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("questionnaire assignment")
        verbose_name_plural = _("questionnaire assignments")
        indexes = [models.Index(fields=["patient", "status", "due_at"], name="qa_patient_due")]

    def __str__(self) -> str:
        return f"{self.questionnaire} → {self.patient_id} [{self.status}]"


class Response(models.Model):
    """A FHIR QuestionnaireResponse: saved in progress, then completed and scored."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in-progress", _("In progress")
        COMPLETED = "completed", pgettext_lazy("response", "Completed")

    class Source(models.TextChoices):
        PATIENT = "patient", _("Patient")
        CAREGIVER = "caregiver", _("Caregiver")
        STAFF = "staff", _("Staff")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, null=True, blank=True, related_name="response"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    # FHIR QuestionnaireResponse.item (nested like the questionnaire's items).
    items = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PATIENT)
    caregiver_id = models.BigIntegerField(null=True, blank=True)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    authored = models.DateTimeField(default=utc_now)
    started_at = models.DateTimeField(default=utc_now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The score (scoring.Result as JSON): total, band, band label, flags; empty if unscored.
    score = models.FloatField(null=True, blank=True)
    band = models.CharField(max_length=30, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # What a FHIR QuestionnaireResponse carried that CareLoop does not model.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("questionnaire response")
        verbose_name_plural = _("questionnaire responses")
        indexes = [
            models.Index(fields=["patient", "status", "authored"], name="qr_patient_status"),
        ]

    def __str__(self) -> str:
        return f"{self.questionnaire} by {self.patient_id} [{self.status}]"

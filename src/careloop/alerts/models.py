"""Worklist tasks: a person must do something for a patient (call, review, book)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Department, Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class Task(models.Model):
    class Kind(models.TextChoices):
        CALL_PATIENT = "call_patient", _("Call the patient")
        FAMILY_DOCTOR_CALL = "family_call", _("Family-doctor follow-up call")
        REVIEW = "review", _("Review by the attending doctor")
        FIX_CONTACT = "fix_contact", _("Fix contact details")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    class Assignee(models.TextChoices):
        NURSE = "nurse", _("Responsible nurse")
        DOCTOR = "doctor", _("Responsible doctor")
        FAMILY_DOCTOR = "family_doctor", _("Family doctor")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    assignee_role = models.CharField(
        _("for"), max_length=20, choices=Assignee.choices, default=Assignee.NURSE
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default="open")
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    source_key = models.CharField(max_length=160, unique=True)
    occurrence = models.ForeignKey(
        "reminders.Occurrence", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField(_("due"))
    created_at = models.DateTimeField(default=utc_now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(_("outcome"), max_length=30, blank=True)
    note = models.CharField(_("note"), max_length=1000, blank=True)

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes = [
            models.Index(
                fields=["organisation", "department", "due_at"],
                condition=Q(status="open"),
                name="task_open_dept_due",
            ),
            models.Index(fields=["patient", "created_at"], name="task_patient_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.patient_id}"

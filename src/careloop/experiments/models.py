"""Experiments on reminders: the design, who is in which arm, and each interim analysis.

An experiment changes one factor of the reminders of some activity kinds (their wording, the
channel tried first, the local hour they are sent at, or how many of them are sent) for the
patients randomised to a treatment arm; the control arm's reminders are marked but left as the
care plan made them. A patient is in at most one running experiment per activity kind.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Department, Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class Factor(models.TextChoices):
    WORDING = "wording", _("Wording of the message")
    CHANNEL = "channel", _("Channel tried first")
    TIME = "time", _("Local hour of sending")
    CADENCE = "cadence", _("How often reminders are sent")


class Outcome(models.TextChoices):
    ACK_RATE = "ack_rate", _("Acknowledgement rate")
    RETURN_15D = "return_15d", _("Return to care within 15 days of a missed visit")
    PDC = "pdc", _("Proportion of days covered (PDC)")


class Population(models.TextChoices):
    ALL = "all", _("All patients with matching reminders")
    DEPARTMENT = "department", _("Patients of one department")
    SEGMENT = "segment", _("Patients of one segment")


class Status(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    STOPPED = "stopped", pgettext_lazy("experiment status", "Stopped")
    COMPLETED = "completed", pgettext_lazy("experiment status", "Completed")


class Experiment(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    code = models.SlugField(_("code"), max_length=50)
    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    hypothesis = models.TextField(_("hypothesis"), max_length=2000, blank=True)
    factor = models.CharField(_("factor"), max_length=10, choices=Factor.choices)
    kinds = models.JSONField(_("activity kinds"), default=list)
    population = models.CharField(
        _("population"), max_length=12, choices=Population.choices, default=Population.ALL
    )
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    segment_code = models.CharField(_("segment"), max_length=50, blank=True)
    # [{"code", "name", "weight", "control": bool, "params": {...}}]
    arms = models.JSONField(_("arms"), default=list)
    primary_outcome = models.CharField(
        _("primary outcome"), max_length=12, choices=Outcome.choices, default=Outcome.ACK_RATE
    )
    min_per_arm = models.PositiveIntegerField(_("patients per arm before any early stop"))
    max_per_arm = models.PositiveIntegerField(_("patients per arm at completion"))
    looks = models.PositiveSmallIntegerField(_("planned analyses"), default=4)
    alpha = models.FloatField(_("significance level"), default=0.05)
    end_date = models.DateField(_("last day"), null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=20, blank=True)
    stop_note = models.CharField(max_length=300, blank=True)
    seed = models.PositiveIntegerField(_("random seed"), default=0)
    evaluated_on = models.DateField(null=True, blank=True)  # organisation-local day
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="uniq_experiment_code")
        ]
        indexes = [models.Index(fields=["organisation", "status"], name="exp_org_status")]

    def __str__(self) -> str:
        return f"{self.code} [{self.status}]"

    def arm(self, code: str) -> dict | None:
        return next((a for a in self.arms if a.get("code") == code), None)

    @property
    def control(self) -> dict | None:
        return next((a for a in self.arms if a.get("control")), None)


class Assignment(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    arm = models.CharField(max_length=40)
    assigned_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("experiment assignment")
        verbose_name_plural = _("experiment assignments")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "patient"], name="uniq_exp_patient")
        ]
        indexes = [models.Index(fields=["patient"], name="exp_assign_patient")]


class Look(models.Model):
    """One analysis of a running experiment: the counts then, the boundary and the decision."""

    class Decision(models.TextChoices):
        CONTINUE = "continue", _("Continue")
        EFFICACY = "efficacy", _("Stopped: the arm works better")
        HARM = "harm", _("Stopped: the arm works worse")
        COMPLETE = "complete", _("Completed")

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="looks_done")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    information = models.FloatField()  # information fraction, 0–1
    boundary = models.FloatField(null=True, blank=True)  # critical |z|
    counts = models.JSONField(default=dict)  # per arm: patients, and the primary outcome
    statistics = models.JSONField(default=list)  # per treatment arm: z, difference
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = _("interim analysis")
        verbose_name_plural = _("interim analyses")
        ordering = ["experiment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="uniq_exp_look")
        ]

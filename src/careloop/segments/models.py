"""Segments (rule-defined groups of patients), who is in them since when, and the daily runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class Segment(models.Model):
    """A group of patients defined by a rule over their facts (careloop.segments.facts).

    Shipped defaults have no organisation and are shared by every organisation; an
    organisation's own segment with the same code replaces the shared one for it (editing or
    deactivating a default makes such a copy)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    code = models.SlugField(_("code"), max_length=50)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.CharField(_("description"), max_length=500, blank=True)
    rule = models.TextField(_("rule"), max_length=1000)
    priority = models.PositiveSmallIntegerField(_("priority"), default=100)
    strategy = models.JSONField(_("strategy"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)
    version = models.PositiveIntegerField(default=1)
    source_digest = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["priority", "code"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="segment_org_code"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(organisation__isnull=True), name="segment_shared_code"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str = "zh-hans") -> str:
        if language.startswith("en") and self.name_en:
            return self.name_en
        return self.name


class Membership(models.Model):
    """One stay of a patient in a segment: open while ``left_at`` is empty. ``facts`` are the
    patient's facts when they entered; ``applied`` is what the segment's strategy changed, so
    leaving can undo exactly that."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True)
    applied = models.JSONField(default=dict, blank=True)
    undone = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("segment membership")
        verbose_name_plural = _("segment memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "segment"],
                condition=Q(left_at__isnull=True),
                name="segment_one_open_membership",
            )
        ]
        indexes = [
            models.Index(fields=["organisation", "segment", "left_at"], name="segment_members"),
            models.Index(fields=["patient", "entered_at"], name="segment_patient_at"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} · {self.segment_id}"


class Run(models.Model):
    """One recomputation of an organisation's segments for one organisation-local day."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    patients = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)  # segment code → members after the run
    forced = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("segment run")
        verbose_name_plural = _("segment runs")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "day"], name="segment_run_day")
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} · {self.day}"

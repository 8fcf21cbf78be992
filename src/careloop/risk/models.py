"""The risk model's rows: trained models (JSON parameters), daily scores, drift checks and the
actions staff took because of a score."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class Model(models.Model):
    """One trained logistic regression of an organisation.

    ``params`` holds everything needed to score: feature names, the training means (used to fill
    missing values) and scales of the standardisation, the coefficients and the intercept.
    Nothing is pickled: a model is plain JSON and reads back the same on any machine.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    trained_at = models.DateTimeField(default=utc_now)
    as_of = models.DateTimeField(_("trained as of"))
    period_start = models.DateTimeField(_("data from"))
    period_end = models.DateTimeField(_("data until"))
    horizon_days = models.PositiveSmallIntegerField(default=30)
    seed = models.IntegerField(default=0)
    params = models.JSONField(default=dict)
    card = models.JSONField(default=dict)
    active = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("risk model")
        verbose_name_plural = _("risk models")
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "version"], name="risk_model_version"),
            models.UniqueConstraint(
                fields=["organisation"],
                condition=models.Q(active=True),
                name="risk_model_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"

    @property
    def thresholds(self) -> dict[str, float]:
        found: dict[str, Any] = self.card.get("thresholds") or {}
        return {"medium": float(found.get("medium", 0.3)), "high": float(found.get("high", 0.6))}


class Band(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")


class Score(models.Model):
    """A patient's predicted risk on one organisation-local day (history is kept)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="scores")
    day = models.DateField()
    score = models.FloatField()
    band = models.CharField(max_length=10, choices=Band.choices)
    # The top factors that raise the risk: [{"feature", "value", "weight"}].
    factors = models.JSONField(default=list)
    scored_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("risk score")
        verbose_name_plural = _("risk scores")
        constraints = [
            models.UniqueConstraint(fields=["patient", "day"], name="risk_score_patient_day")
        ]
        indexes = [
            models.Index(fields=["organisation", "day", "band"], name="risk_score_org_day"),
            models.Index(fields=["patient", "scored_at"], name="risk_score_patient_at"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.day} {self.score:.2f}"


class DriftCheck(models.Model):
    """The population stability index of one day's scores against the training scores."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="drift_checks")
    day = models.DateField()
    checked_at = models.DateTimeField(default=utc_now)
    psi = models.FloatField()
    warn = models.BooleanField(default=False)
    scored = models.PositiveIntegerField(default=0)
    # Per bin of the training distribution: {"edges", "expected", "actual"}.
    bins = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("drift check")
        verbose_name_plural = _("drift checks")
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["organisation", "checked_at"], name="risk_drift_org_at")]


class Action(models.Model):
    """Something done because of a risk score: a call task, a segment entry, an outreach."""

    class Kind(models.TextChoices):
        CALL_TASK = "call_task", _("Call task opened")
        SEGMENT_ENTRY = "segment_entry", _("Entered a segment")
        OUTREACH = "outreach", _("Outreach")
        OTHER = "other", _("Other")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    score = models.ForeignKey(
        Score, on_delete=models.SET_NULL, null=True, blank=True, related_name="actions"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    detail = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("risk action")
        verbose_name_plural = _("risk actions")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "created_at"], name="risk_action_patient_at")]

    def __str__(self) -> str:
        return f"{self.kind} {self.patient_id}"

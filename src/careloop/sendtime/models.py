"""Send-time learning: per-organisation settings, each patient's arm, and the Beta counts.

An ``Arm`` row holds successes and failures of one (kind, local hour, channel) for one patient,
or, with no patient, for the whole organisation (the prior a new patient starts from). An
``Outcome`` row is written once per routed reminder when its result is final; its unique
occurrence key is what makes folding results into the counts happen exactly once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient

# Local windows a reminder may be moved within, per activity kind: [from, until) wall times,
# or, for medication, how many minutes either side of the dose time (whole hours are tried).
WINDOW_KINDS = ("measurement", "questionnaire", "education")
MEDICATION = "medication"
KINDS = (*WINDOW_KINDS, MEDICATION)
MAX_AROUND_MINUTES = 180


def default_windows() -> dict[str, Any]:
    return {
        "measurement": ["07:00", "21:00"],
        "questionnaire": ["08:00", "21:00"],
        "education": ["08:00", "21:00"],
        "medication": 60,
    }


def _minutes(value: Any) -> int | None:
    text = str(value)
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 23 or minutes > 59:
        return None
    return hours * 60 + minutes


def validate_windows(windows: Any) -> None:
    """Raise ValidationError (one message per kind) unless ``windows`` is well formed."""
    if not isinstance(windows, dict):
        raise ValidationError(_("Windows must be an object keyed by activity kind."))
    errors: dict[str, list[str]] = {}
    for kind, value in windows.items():
        if kind not in KINDS:
            errors.setdefault(str(kind), []).append(str(_("Unknown activity kind.")))
            continue
        if kind == MEDICATION:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_AROUND_MINUTES
            ):
                errors.setdefault(kind, []).append(
                    str(_("Minutes around the dose time must be a whole number from 0 to 180."))
                )
            continue
        if not isinstance(value, list | tuple) or len(value) != 2:
            errors.setdefault(kind, []).append(str(_("A window is two times, from and until.")))
            continue
        start, end = _minutes(value[0]), _minutes(value[1])
        if start is None or end is None:
            errors.setdefault(kind, []).append(str(_("Times are written HH:MM.")))
        elif end - start < 60:
            errors.setdefault(kind, []).append(
                str(_("The window must end at least one hour after it starts."))
            )
    if errors:
        raise ValidationError(errors)


class Settings(models.Model):
    """An organisation's send-time learning: on or off, the control share, the windows."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="sendtime_settings"
    )
    enabled = models.BooleanField(
        _("enabled"),
        default=False,
        help_text=_("The worker plans and learns every hour for enabled organisations."),
    )
    control_share = models.FloatField(
        _("control share"),
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.9)],
        help_text=_("Share of patients kept at the planned time as a control group."),
    )
    windows = models.JSONField(_("windows"), default=default_windows, blank=True)
    prior_strength = models.FloatField(
        _("prior strength"),
        default=4.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        help_text=_(
            "How many reminders' worth of the organisation's experience a patient starts from."
        ),
    )
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("send-time settings")
        verbose_name_plural = _("send-time settings")

    def __str__(self) -> str:
        return str(self.organisation_id)

    def clean(self) -> None:
        validate_windows(self.windows)


class Assignment(models.Model):
    """Whether a patient's reminders are timed by the learner or kept as planned (control)."""

    class ArmKind(models.TextChoices):
        LEARN = "learn", _("Learned time")
        CONTROL = "control", _("Fixed time (control)")

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.OneToOneField(
        Patient, on_delete=models.CASCADE, related_name="sendtime_assignment"
    )
    arm = models.CharField(_("arm"), max_length=10, choices=ArmKind.choices)
    assigned_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("send-time assignment")
        verbose_name_plural = _("send-time assignments")
        indexes = [models.Index(fields=["organisation", "arm"], name="sendtime_assign_org_arm")]


class Arm(models.Model):
    """Beta counts of one (kind, local hour, channel): a patient's, or the organisation's."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=20)
    hour = models.PositiveSmallIntegerField(validators=[MaxValueValidator(23)])
    channel = models.CharField(max_length=10)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("send-time arm")
        verbose_name_plural = _("send-time arms")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "patient", "kind", "hour", "channel"],
                name="uniq_sendtime_arm",
            ),
            models.UniqueConstraint(
                fields=["organisation", "kind", "hour", "channel"],
                condition=Q(patient__isnull=True),
                name="uniq_sendtime_prior",
            ),
        ]


class Outcome(models.Model):
    """The final result of one routed reminder, written once (the occurrence is unique)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    occurrence = models.OneToOneField(
        "reminders.Occurrence", on_delete=models.CASCADE, related_name="sendtime_outcome"
    )
    arm = models.CharField(max_length=10, choices=Assignment.ArmKind.choices)
    kind = models.CharField(max_length=20)
    hour = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=10, blank=True)
    due_at = models.DateTimeField()
    sent = models.BooleanField(default=False)
    success = models.BooleanField(default=False)
    counted = models.BooleanField(default=False)  # folded into the Arm counts
    decided_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("send-time outcome")
        verbose_name_plural = _("send-time outcomes")
        indexes = [models.Index(fields=["organisation", "due_at"], name="sendtime_outcome_due")]

"""Tables of the analytics: the monthly per-patient state, its refresh marks, and the area
estimates the China indicators divide by. The state is derived data: `state.refresh` rewrites
it from the record, so nothing here is edited by hand except the estimates."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.patients.models import Patient


class CareStatus(models.TextChoices):
    UNDER_CARE = "under_care", _("Under care")
    LTFU = "ltfu", _("Lost to follow-up")


class HtnOutcome(models.TextChoices):
    NONE = "", _("Registered in the last 3 months")
    MISSED_VISIT = "missed_visit", _("Missed visit")
    VISIT_NO_BP = "visit_no_bp", _("Visit but no BP")
    CONTROLLED = "controlled", _("Controlled")
    UNCONTROLLED = "uncontrolled", _("Uncontrolled")


class DmOutcome(models.TextChoices):
    NONE = "", _("Registered in the last 3 months")
    MISSED_VISIT = "missed_visit", _("Missed visit")
    VISIT_NO_GLUCOSE = "visit_no_glucose", _("Visit but no glucose measure")
    CONTROLLED = "controlled", _("Controlled")
    UNCONTROLLED_MODERATE = "uncontrolled_moderate", _("Uncontrolled (moderate band)")
    UNCONTROLLED_SEVERE = "uncontrolled_severe", _("Uncontrolled (severe band)")


class PatientMonth(models.Model):
    """One patient in one calendar month, as of the month's end (today for the current month):
    one row per patient from the month of registration to the current month (metrics.md, "Visits
    and care status"). Months are counted in calendar months of the organisation's time zone;
    "months since" 0 means in the reference month itself, so "the last 3 months" is < 3.

    Dead patients keep their rows; every figure drops them when it reads (patients.deceased_on),
    so they disappear from past months too."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    month = models.DateField()  # the first day of the month
    registered_on = models.DateField()
    months_registered = models.SmallIntegerField()  # months since the registration month
    last_visit_on = models.DateField(null=True)
    months_since_visit = models.SmallIntegerField(null=True)
    # The latest day with a BP by staff, device or hospital system: lowest systolic and lowest
    # diastolic of that day (CMS165).
    bp_on = models.DateField(null=True)
    months_since_bp = models.SmallIntegerField(null=True)
    bp_systolic = models.FloatField(null=True)
    bp_diastolic = models.FloatField(null=True)
    # The latest glucose or HbA1c measurement: kind hba1c | fasting | random | postprandial;
    # value in mg/dL for glucose, % for HbA1c.
    glucose_on = models.DateField(null=True)
    months_since_glucose = models.SmallIntegerField(null=True)
    glucose_kind = models.CharField(max_length=12, blank=True)
    glucose_value = models.FloatField(null=True)
    has_hypertension = models.BooleanField(default=False)
    has_diabetes = models.BooleanField(default=False)
    care = models.CharField(max_length=10, choices=CareStatus.choices)
    htn_outcome = models.CharField(max_length=16, choices=HtnOutcome.choices, blank=True)
    dm_outcome = models.CharField(max_length=24, choices=DmOutcome.choices, blank=True)
    # Distinct visit days in the reference month and the 11 before it (规范管理率).
    followups_12m = models.SmallIntegerField(default=0)

    class Meta:
        verbose_name = _("patient month")
        verbose_name_plural = _("patient months")
        constraints = [
            models.UniqueConstraint(fields=["patient", "month"], name="uniq_patient_month")
        ]
        indexes = [
            # Every figure reads one organisation's months, by condition; the cascades find
            # all they count in this index alone (an index-only scan).
            models.Index(
                fields=[
                    "organisation",
                    "month",
                    "has_hypertension",
                    "has_diabetes",
                    "care",
                    "months_registered",
                    "htn_outcome",
                    "dm_outcome",
                    "patient",
                ],
                name="pm_org_month",
            ),
        ]


class RefreshMark(models.Model):
    """How far the state of one organisation is up to date."""

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="+")
    refreshed_at = models.DateTimeField(null=True)  # start of the last refresh (incremental)
    full_at = models.DateTimeField(null=True)  # start of the last full rebuild
    month = models.DateField(null=True)  # the current month at the last refresh
    patients = models.PositiveIntegerField(default=0)  # patients rewritten last time
    seconds = models.FloatField(default=0.0)


class AreaEstimate(models.Model):
    """The estimated number of people with a condition in the organisation's service area in a
    year (健康管理率's denominator), set by the organisation's administrators."""

    class Condition(models.TextChoices):
        HYPERTENSION = "hypertension", _("Hypertension")
        DIABETES = "diabetes", _("Diabetes")

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    condition = models.CharField(_("condition"), max_length=20, choices=Condition.choices)
    year = models.PositiveSmallIntegerField(_("year"))
    estimated_patients = models.PositiveIntegerField(_("estimated patients in the area"))
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("area estimate")
        verbose_name_plural = _("area estimates")
        ordering = ["-year", "condition"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "condition", "year"], name="uniq_area_estimate"
            )
        ]

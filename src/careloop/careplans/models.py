"""Tables of plan templates, enrolment rules, enrolments and per-patient reminder preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Department, Organisation
from careloop.patients.models import Patient


class ActivityKind(models.TextChoices):
    MEDICATION = "medication", _("Medication reminder")
    MEASUREMENT = "measurement", _("Measurement task")
    REVISIT = "revisit", _("Revisit appointment")
    CALL = "call", _("Follow-up call")
    QUESTIONNAIRE = "questionnaire", _("Questionnaire")
    EDUCATION = "education", _("Education")


class PlanTemplate(models.Model):
    """A care plan as data: loaded from the files in careplans/data/plans, editable in admin.

    ``version`` goes up on every change; enrolments remember the version they were built from.
    A template with no organisation is shared by every organisation.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    code = models.SlugField(_("code"), max_length=50)
    version = models.PositiveIntegerField(_("version"), default=1)
    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True, max_length=4000)
    description_en = models.TextField(_("English description"), blank=True, max_length=4000)
    anchor = models.CharField(
        _("anchor"),
        max_length=20,
        blank=True,
        help_text=_("What day offsets count from: enrolment, discharge or last_visit."),
    )
    applicability = models.JSONField(_("applicability"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)
    source_digest = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("plan template")
        verbose_name_plural = _("plan templates")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "code"], name="uniq_plan_template_code"
            ),
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(organisation__isnull=True),
                name="uniq_shared_plan_template_code",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    def label(self, language: str) -> str:
        return self.name_en if language == "en" and self.name_en else self.name


class PlanActivity(models.Model):
    """One thing a plan asks for, with its schedule, channels, escalation and applicability."""

    template = models.ForeignKey(PlanTemplate, on_delete=models.CASCADE, related_name="activities")
    code = models.SlugField(_("code"), max_length=50)
    kind = models.CharField(_("kind"), max_length=20, choices=ActivityKind.choices)
    title = models.CharField(_("title"), max_length=200)
    title_en = models.CharField(_("English title"), max_length=200, blank=True)
    schedule = models.JSONField(_("schedule"), default=dict)
    channels = models.JSONField(_("channels"), default=list, blank=True)
    escalation = models.JSONField(_("escalation ladder"), default=list, blank=True)
    applicability = models.JSONField(_("applicability"), default=dict, blank=True)
    measurement = models.CharField(_("measurement"), max_length=30, blank=True)
    call_by = models.CharField(
        _("call made by"),
        max_length=20,
        blank=True,
        help_text=_("For follow-up calls: nurse, doctor or family_doctor gets the call task."),
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("plan activity")
        verbose_name_plural = _("plan activities")
        ordering = ["template", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["template", "code"], name="uniq_activity_code")
        ]

    def __str__(self) -> str:
        return self.title

    def label(self, language: str) -> str:
        return self.title_en if language == "en" and self.title_en else self.title


class EnrolmentRule(models.Model):
    """When this becomes true for a patient, the patient is enrolled in the template."""

    class Trigger(models.TextChoices):
        CONDITION = "condition", _("Coded diagnosis")
        DISCHARGE = "discharge", _("Discharge")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey(PlanTemplate, on_delete=models.PROTECT, related_name="rules")
    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices)
    icd10_prefixes = models.JSONField(
        _("ICD-10 codes or prefixes"),
        default=list,
        blank=True,
        help_text=_("A diagnosis whose code starts with one of these matches, e.g. I10, E11."),
    )
    departments = models.ManyToManyField(
        Department, blank=True, related_name="+", verbose_name=_("discharging departments")
    )
    encounter_kinds = models.JSONField(_("encounter kinds"), default=list, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("enrolment rule")
        verbose_name_plural = _("enrolment rules")

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} → {self.template}"


class Enrolment(models.Model):
    """A patient's own instance of a plan."""

    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("enrolment status", "Active")
        ENDED = "ended", _("Ended")

    class Source(models.TextChoices):
        STAFF = "staff", _("Enrolled by staff")
        RULE = "rule", _("Enrolled by rule")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="enrolments")
    template = models.ForeignKey(PlanTemplate, on_delete=models.PROTECT, related_name="+")
    template_version = models.PositiveIntegerField()
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    rule = models.ForeignKey(
        EnrolmentRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    anchor_date = models.DateField(_("anchor date"), null=True, blank=True)
    starts_on = models.DateField(_("starts on"))
    adjustments = models.JSONField(_("adjustments"), default=dict, blank=True)
    materialised_until = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    end_reason = models.CharField(_("reason"), max_length=200, blank=True)
    # What a FHIR client sent that CareLoop does not model (careloop.fhir.resources.careplan).
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("enrolment")
        verbose_name_plural = _("enrolments")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "template"],
                condition=Q(status="active"),
                name="uniq_active_enrolment",
            )
        ]
        indexes = [
            models.Index(fields=["status", "materialised_until"], name="enrol_status_mat"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} · {self.template}"


class ReminderPreference(models.Model):
    """How one patient wants to be reminded. Quiet hours, language and zone live on Patient."""

    patient = models.OneToOneField(
        Patient, on_delete=models.CASCADE, related_name="reminder_preference"
    )
    dose_times = models.JSONField(
        _("dose times"),
        default=dict,
        blank=True,
        help_text=_('Local times per frequency, e.g. {"bid": ["07:30", "19:30"]}.'),
    )
    channels = models.JSONField(
        _("channel per purpose"),
        default=dict,
        blank=True,
        help_text=_('Ordered channels per activity kind, e.g. {"medication": ["wechat", "sms"]}.'),
    )
    daily_cap = models.PositiveSmallIntegerField(_("daily cap"), null=True, blank=True)
    elderly = models.BooleanField(
        _("elderly mode"),
        default=False,
        help_text=_("Voice calls first and large-text pages."),
    )
    high_risk = models.BooleanField(
        _("high risk"),
        default=False,
        help_text=_("Unanswered reminders get both a nurse call and an automated voice call."),
    )
    email = models.EmailField(_("e-mail"), blank=True)
    wechat_openid = models.CharField(_("WeChat OpenID"), max_length=64, blank=True)
    push_subscription = models.JSONField(_("web push subscription"), default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("reminder preference")
        verbose_name_plural = _("reminder preferences")

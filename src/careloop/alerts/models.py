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
    # What a FHIR client sent that CareLoop does not model (careloop.fhir.resources.task).
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

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
            # Completion and coverage figures read a month of tasks by due time.
            models.Index(fields=["organisation", "due_at"], name="task_org_due"),
            # The worklist counts and pages today's open tasks from the index alone.
            models.Index(
                fields=["organisation", "department", "due_at", "status", "assignee"],
                condition=Q(status="open"),
                name="task_worklist",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.patient_id}"


class Priority(models.TextChoices):
    """FHIR Task.priority (request-priority value set)."""

    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    ASAP = "asap", _("ASAP")
    STAT = "stat", _("STAT")


PRIORITY_RANK = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}


class Alert(models.Model):
    """Something a clinician must look at, raised by a rule (FHIR Task semantics: status,
    business status, priority, owner, performer role, due time, focus)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")  # Task.status requested
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")  # accepted / in-progress
        RESOLVED = "resolved", _("Resolved")  # completed
        DISMISSED = "dismissed", _("Dismissed")  # cancelled

    class Route(models.TextChoices):
        DOCTOR = "doctor", _("Responsible doctor")
        NURSE = "nurse", _("Responsible nurse")
        CARE_TEAM = "care_team", _("Care team")
        ON_CALL = "on_call", _("On call")
        DEPARTMENT_HEAD = "department_head", _("Department head")

    ACTIVE = (Status.OPEN, Status.ACKNOWLEDGED)

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rule = models.CharField(_("rule"), max_length=60)
    stage = models.CharField(max_length=20, blank=True)
    key = models.CharField(max_length=200, unique=True)  # the rule engine's fire key
    action = models.CharField(max_length=10, default="alert")  # alert | task
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.OPEN
    )
    business_status = models.CharField(_("business status"), max_length=30, blank=True)
    severity = models.CharField(_("severity"), max_length=10)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices)
    priority_rank = models.SmallIntegerField(default=3)  # 0 stat … 3 routine, for ordering
    performer_role = models.CharField(_("for"), max_length=20, choices=Route.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    text_zh = models.CharField(max_length=300)
    text_en = models.CharField(max_length=300)
    values = models.JSONField(default=dict, blank=True)
    focus_type = models.CharField(max_length=30, blank=True)  # observation | intake | adr | …
    focus_id = models.BigIntegerField(null=True, blank=True)
    triggered_at = models.DateTimeField(_("triggered"))  # effective time of the trigger
    raised_at = models.DateTimeField(_("raised"), default=utc_now)
    due_at = models.DateTimeField(_("due"))
    repeats = models.IntegerField(default=0)  # later fires folded into this open alert
    last_seen_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(_("outcome"), max_length=30, blank=True)
    note = models.CharField(_("note"), max_length=1000, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What a FHIR client sent that CareLoop does not model (careloop.fhir.resources.flag).
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "rule", "stage"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="one_active_alert_per_rule",
            )
        ]
        indexes = [
            models.Index(
                fields=["organisation", "department", "priority_rank", "due_at"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="alert_active_dept",
            ),
            models.Index(
                fields=["owner", "priority_rank", "due_at"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="alert_active_owner",
            ),
            models.Index(fields=["patient", "raised_at"], name="alert_patient_at"),
            # The worklist counts and pages active alerts from the index alone (owner filter
            # included).
            models.Index(
                fields=["organisation", "department", "priority_rank", "due_at", "status", "owner"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="alert_worklist",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.patient_id}"

    def text(self, language: str) -> str:
        return self.text_en if language.startswith("en") else self.text_zh


class AlertFire(models.Model):
    """Every time a rule fired for a patient: the alert it opened or was folded into. The
    record streaming evaluation leaves, which a recompute over history must match."""

    key = models.CharField(max_length=200, unique=True)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="fires")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()


class RuleDefinition(models.Model):
    """A rule edited in admin; it replaces the file rule of the same code for its organisation."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(_("code"), max_length=60)
    definition = models.JSONField(_("definition"))
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="uniq_rule_code")
        ]

    def __str__(self) -> str:
        return self.code


class PersonalThreshold(models.Model):
    """A clinician's threshold for one patient, overriding a rule's population default."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(_("rule"), max_length=60)
    params = models.JSONField(_("thresholds"))
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    set_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("personal threshold")
        verbose_name_plural = _("personal thresholds")
        constraints = [
            models.UniqueConstraint(fields=["patient", "rule"], name="uniq_personal_threshold")
        ]


class RuleState(models.Model):
    """The rule engine's running state for one patient (what streaming evaluation needs)."""

    patient = models.OneToOneField(
        Patient, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    version = models.CharField(max_length=64)  # the rule set the state belongs to
    watermark = models.BigIntegerField(default=0)  # newest effective time fed (epoch seconds)
    state = models.TextField()


class SweepMark(models.Model):
    """How far the absence sweep of one rule has looked: each run examines only gaps that
    reached the rule's length since the previous run."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(max_length=60)
    swept_until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "rule"], name="uniq_sweep_mark")
        ]


class OnCall(models.Model):
    """Who answers urgent alerts of a department in a period, and how to reach them."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)

    class Meta:
        verbose_name = _("on-call shift")
        verbose_name_plural = _("on-call rota")
        indexes = [models.Index(fields=["department", "ends_at"], name="oncall_dept_end")]


class Notification(models.Model):
    """A message to a clinician about an alert; one per alert, step and person (dedupe key)."""

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="notifications")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=20)
    address = models.CharField(max_length=200, blank=True)  # staff phone or e-mail
    dedupe_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=12, default="pending")  # pending sent failed
    tries = models.SmallIntegerField(default=0)
    provider_id = models.CharField(max_length=100, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    sent_at = models.DateTimeField(null=True, blank=True)

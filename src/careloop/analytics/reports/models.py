"""The monthly department report: who gets it by e-mail and when, and every sending of it.

A `ReportSchedule` (one per department) says whether the report of the previous month is
e-mailed, on which day of the month (in the organisation's time zone), in which language and
to whom besides the department heads. A `ReportRun` is one e-mail of one month's report to one
address: the unique key (department, month, recipient) of scheduled runs means a report is
never sent twice to the same person, and a run that the mail server turned away waits for its
retry time (`next_try_at`) instead of being lost.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Department, Organisation
from careloop.kit.clock import utc_now

LANGUAGE_CHOICES = [("zh-hans", "简体中文"), ("en", "English")]
# Every month has the days 1–28, so a schedule day never falls out of a short month.
LAST_DAY = 28


class ReportSchedule(models.Model):
    """Whether and when a department's monthly report is e-mailed (the previous month's)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.OneToOneField(
        Department, on_delete=models.CASCADE, related_name="report_schedule"
    )
    active = models.BooleanField(_("send by e-mail"), default=True)
    day = models.PositiveSmallIntegerField(
        _("day of the month"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(LAST_DAY)],
        help_text=_("The report of the previous month is sent on this day."),
    )
    language = models.CharField(
        _("language"), max_length=10, choices=LANGUAGE_CHOICES, default="zh-hans"
    )
    # Besides the department heads (always included): other staff of the organisation.
    extra_recipients = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        verbose_name=_("other recipients"),
    )
    last_sent_month = models.DateField(_("last month sent"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        verbose_name = _("report schedule")
        verbose_name_plural = _("report schedules")
        constraints = [
            models.CheckConstraint(
                condition=Q(day__gte=1) & Q(day__lte=LAST_DAY), name="report_schedule_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.department} · {self.day}"


class ReportRun(models.Model):
    """One e-mail of one month's report of a department to one address."""

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting to be sent")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    class Purpose(models.TextChoices):
        SCHEDULED = "scheduled", _("monthly e-mail")
        TEST = "test", _("test copy")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    schedule = models.ForeignKey(
        ReportSchedule, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    month = models.DateField(_("month"))  # the first day of the reported month
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.SCHEDULED)
    recipient = models.CharField(_("recipient"), max_length=254)  # an e-mail address
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    language = models.CharField(max_length=10, choices=LANGUAGE_CHOICES, default="zh-hans")
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Pending: not before this time (first try or retry); sending: the lease end.
    next_try_at = models.DateTimeField(default=utc_now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        verbose_name = _("report e-mail")
        verbose_name_plural = _("report e-mails")
        constraints = [
            models.UniqueConstraint(
                fields=["department", "month", "recipient"],
                condition=Q(purpose="scheduled"),
                name="uniq_report_run_recipient",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_try_at"], name="report_run_due"),
            models.Index(fields=["department", "month"], name="report_run_dept_month"),
        ]

    def __str__(self) -> str:
        return f"{self.department} {self.month:%Y-%m} → {self.recipient} ({self.status})"

"""Clinic schedules, the slots they open, appointments in them, and the day's queue."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Department, Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Patient


class ClinicSchedule(models.Model):
    """A weekly pattern of clinic sessions, as data; slots are materialised from it ahead.

    Times are wall-clock times in the organisation's time zone. ``sessions`` is a list of
    ``{"start": "08:00", "end": "11:30"}``; each session is cut into ``slot_minutes`` slots of
    ``capacity`` places each, on the ISO ``weekdays`` (1 = Monday … 7 = Sunday).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("doctor"),
    )
    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    weekdays = models.JSONField(_("weekdays"), default=list)
    sessions = models.JSONField(_("sessions"), default=list)
    slot_minutes = models.PositiveSmallIntegerField(_("minutes per slot"), default=30)
    capacity = models.PositiveSmallIntegerField(_("places per slot"), default=1)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid until"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    generated_until = models.DateField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("clinic schedule")
        verbose_name_plural = _("clinic schedules")
        ordering = ["department", "name", "id"]

    def __str__(self) -> str:
        return self.name


class Slot(models.Model):
    """Places in one clinic session at one time. ``booked`` never exceeds ``capacity``: the
    database refuses it (CHECK), and booking increments it with a conditional UPDATE."""

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("slot status", "Open")
        CLOSED = "closed", pgettext_lazy("slot status", "Closed")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    schedule = models.ForeignKey(
        ClinicSchedule, on_delete=models.PROTECT, null=True, blank=True, related_name="slots"
    )
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    local_date = models.DateField()  # the clinic's own calendar day
    capacity = models.PositiveSmallIntegerField()
    booked = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)

    class Meta:
        verbose_name = _("slot")
        verbose_name_plural = _("slots")
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "starts_at"], name="uniq_slot_start"),
            models.CheckConstraint(
                condition=Q(booked__lte=F("capacity")), name="slot_booked_within_capacity"
            ),
        ]
        indexes = [
            models.Index(fields=["department", "local_date", "starts_at"], name="slot_dept_day"),
        ]

    def __str__(self) -> str:
        return f"{self.department_id} {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.booked) if self.status == self.Status.OPEN else 0


class Appointment(models.Model):
    class Kind(models.TextChoices):
        REVISIT = "revisit", _("Revisit")
        CONSULTATION = "consultation", _("Consultation")

    class Status(models.TextChoices):
        BOOKED = "booked", _("Booked")
        CHECKED_IN = "checked_in", _("Checked in")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", pgettext_lazy("appointment status", "Cancelled")
        NO_SHOW = "no_show", _("Did not come")

    ACTIVE = (Status.BOOKED, Status.CHECKED_IN)

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.REVISIT)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.BOOKED
    )
    # Copied from the slot so that day lists and the overdue list need no join.
    starts_at = models.DateTimeField()
    local_date = models.DateField()
    reason = models.CharField(_("reason for the visit"), max_length=500, blank=True)
    version = models.PositiveIntegerField(default=1)
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    booked_at = models.DateTimeField(default=utc_now)
    queue_number = models.PositiveIntegerField(null=True, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    called_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=200, blank=True)
    # "idem:<organisation>:<user>:<Idempotency-Key>" for API bookings; a retry finds the first.
    source_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    source_digest = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=utc_now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What a FHIR Appointment carried that CareLoop does not model (careloop.fhir.registry).
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "slot"],
                condition=Q(status__in=["booked", "checked_in"]),
                name="uniq_active_appointment_in_slot",
            ),
            models.UniqueConstraint(
                fields=["department", "local_date", "queue_number"],
                condition=Q(queue_number__isnull=False),
                name="uniq_queue_number",
            ),
        ]
        indexes = [
            models.Index(fields=["department", "local_date", "status"], name="appt_dept_day"),
            models.Index(fields=["patient", "starts_at"], name="appt_patient_start"),
            models.Index(fields=["organisation", "status", "local_date"], name="appt_org_status"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} · {self.starts_at:%Y-%m-%d %H:%M} [{self.status}]"

    @property
    def ref(self) -> str:
        """What this appointment's reminders are attached to (reminders.Occurrence.ref)."""
        return f"appointment:{self.pk}"

    @property
    def queue_ref(self) -> str:
        return f"queue:{self.pk}"


class QueueCounter(models.Model):
    """The last queue number handed out in a department on a day. Check-ins lock this row, so
    two check-ins at the same moment get consecutive numbers."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["department", "day"], name="uniq_queue_counter")
        ]


class CallResult(models.Model):
    """The result of a call to an overdue patient (metrics.md, "Call result" taxonomy)."""

    class Outcome(models.TextChoices):
        AGREED_TO_VISIT = "agreed_to_visit", _("Agreed to visit")
        REMIND_LATER = "remind_later", _("Remind to call later")
        REMOVED = "removed", _("Removed from the overdue list")

    class RemoveReason(models.TextChoices):
        ALREADY_VISITED = "already_visited", _("Already visited")
        UNAVAILABLE = "unavailable", _("Not available")
        WRONG_NUMBER = "wrong_number", _("Wrong phone number")
        CHANGED_FACILITY = "changed_facility", _("Changed facility")
        MOVED = "moved", _("Moved away")
        DIED = "died", _("Died")
        REFUSED = "refused", _("Refused to return")
        OTHER = "other", pgettext_lazy("reason", "Other")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(_("call result"), max_length=20, choices=Outcome.choices)
    remove_reason = models.CharField(
        _("reason"), max_length=20, choices=RemoveReason.choices, blank=True
    )
    remind_on = models.DateField(_("remind on"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True)
    called_on = models.DateField()
    created_at = models.DateTimeField(default=utc_now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("call result")
        verbose_name_plural = _("call results")
        indexes = [models.Index(fields=["patient", "created_at"], name="callresult_patient_at")]

"""FHIR R4 Subscriptions (rest-hook) and the deliveries queued for them.

A subscription belongs to an organisation and to the staff member who created it: what it
matches is evaluated with that person's current role and departments, so it never delivers a
resource its creator could not read. One change of one resource is delivered at most once per
subscription (UNIQUE subscription + event key).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.kit.crypto import EncryptedTextField


class Subscription(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        ACTIVE = "active", _("Active")
        ERROR = "error", _("Error")
        OFF = "off", _("Off")

    class Payload(models.TextChoices):
        FULL = "application/fhir+json", _("Full resource")
        PING = "", _("Ping (no body)")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    criteria = models.CharField(_("criteria"), max_length=1000)
    resource_type = models.CharField(max_length=40)  # the criteria's type, for matching
    channel_type = models.CharField(max_length=20, default="rest-hook")
    endpoint = models.CharField(_("endpoint"), max_length=1000)
    payload = models.CharField(
        _("payload"), max_length=40, blank=True, choices=Payload.choices, default=Payload.FULL
    )
    # JSON list of "Name: value" lines, encrypted (they often carry credentials).
    headers = EncryptedTextField(blank=True, default="")
    secret = EncryptedTextField()  # the HMAC signing key, shown once at creation
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.REQUESTED
    )
    error = models.CharField(_("error"), max_length=500, blank=True)
    reason = models.CharField(_("reason"), max_length=500)
    end = models.DateTimeField(_("end"), null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)  # consecutive failed attempts
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(default=utc_now)
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        indexes = [
            models.Index(fields=["organisation", "resource_type", "status"], name="sub_org_type"),
        ]

    def __str__(self) -> str:
        return f"{self.criteria} → {self.endpoint}"


class AllowedHost(models.Model):
    """A host an organisation admin allowed as an endpoint although it resolves to a private,
    loopback or otherwise internal address (an integration engine inside the hospital)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    host = models.CharField(_("host"), max_length=255)  # lower case, as in the URL
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    added_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = _("allowed endpoint host")
        verbose_name_plural = _("allowed endpoint hosts")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "host"], name="uniq_allowed_host")
        ]

    def __str__(self) -> str:
        return self.host


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_key = models.CharField(max_length=200)  # "<type>/<id>/<version>/<digest>"
    resource_type = models.CharField(max_length=40)
    resource_id = models.CharField(max_length=64)
    resource_version = models.CharField(max_length=40)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=80, blank=True)
    claim_expires = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_key"], name="uniq_delivery_per_change"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="delivery_due",
            ),
            models.Index(fields=["subscription", "created_at"], name="delivery_sub_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_key} [{self.status}]"


class ScanMark(models.Model):
    """How far the catch-up scan has looked at one table (rows written without model signals:
    bulk inserts of readings and alerts)."""

    name = models.CharField(max_length=40, unique=True)
    scanned_until = models.DateTimeField()

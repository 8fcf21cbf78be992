"""Patient portal sign-ins: each signed-in phone or browser is one PortalSession row."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.kit.clock import utc_now
from careloop.patients.models import Caregiver, Patient


class PortalSession(models.Model):
    """A signed-in browser. The cookie holds a random token; only its digest is stored here.

    Ending the row (sign-out, revocation by staff, the patient's record merged or closed)
    ends the session at the next request. A caregiver session acts for the patient by proxy.
    """

    class Method(models.TextChoices):
        CODE = "code", _("One-time SMS code")
        INVITATION = "invitation", _("Invitation link")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    caregiver = models.ForeignKey(
        Caregiver, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    token_digest = models.CharField(max_length=64, unique=True)
    method = models.CharField(max_length=12, choices=Method.choices)
    source = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    last_seen = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, blank=True)

    class Meta:
        verbose_name = _("portal session")
        verbose_name_plural = _("portal sessions")
        indexes = [models.Index(fields=["patient", "ended_at"], name="portal_session_patient")]


class SignInCode(models.Model):
    """One "send me a code" request: a six-digit code for a phone number, bound to a browser.

    A row is written for every request, whether or not the number belongs to anyone (then no
    code is sent and none can match), so the answer and the rate limits are the same for both.
    Only keyed digests are kept: of the number (the patients' blind index), of the requesting
    address, of the browser's nonce and of the code. A code is used once, for ten minutes, with
    at most five wrong tries.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    phone_index = models.CharField(max_length=64)
    ip_digest = models.CharField(max_length=64)
    browser_digest = models.CharField(max_length=64)
    code_digest = models.CharField(max_length=64, blank=True)
    sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField()
    tries = models.PositiveSmallIntegerField(default=0)
    verified_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # After a correct code for a number known in several records: which ones to choose from.
    choices = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = _("sign-in code")
        verbose_name_plural = _("sign-in codes")
        indexes = [
            models.Index(fields=["phone_index", "created_at"], name="portal_code_phone"),
            models.Index(fields=["ip_digest", "created_at"], name="portal_code_ip"),
            models.Index(fields=["organisation", "created_at"], name="portal_code_org"),
        ]


class Invitation(models.Model):
    """A single-use sign-in link made by staff (shown once, also as a QR code)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    token_digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("portal invitation")
        verbose_name_plural = _("portal invitations")
        indexes = [models.Index(fields=["patient", "created_at"], name="portal_invite_patient")]


class PortalProxy(models.Model):
    """A family member's access to a patient's portal, given with the patient's consent.

    ``phone_index`` is the blind index of the caregiver's phone when access was granted: it is
    how the caregiver signs in with a code. Revoking ends access and the caregiver's sessions.
    """

    class ConsentSource(models.TextChoices):
        PAPER = "paper", _("Signed paper form")
        VERBAL = "verbal", _("Verbal, recorded by staff")
        PORTAL = "portal", _("Patient portal")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    caregiver = models.ForeignKey(Caregiver, on_delete=models.PROTECT, related_name="+")
    phone_index = models.CharField(max_length=64, db_index=True)
    consented_at = models.DateTimeField()
    consent_source = models.CharField(max_length=10, choices=ConsentSource.choices)
    consent_text = models.TextField(blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    notify_missed_doses = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("family access")
        verbose_name_plural = _("family access")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "caregiver"],
                condition=models.Q(revoked_at__isnull=True),
                name="uniq_active_portal_proxy",
            )
        ]

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class PushSubscription(models.Model):
    """A browser's Web Push subscription, made from the portal's Me page."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    endpoint = models.TextField()
    endpoint_digest = models.CharField(max_length=64)
    keys = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=utc_now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "endpoint_digest"],
                condition=models.Q(revoked_at__isnull=True),
                name="uniq_active_push_subscription",
            )
        ]

    def as_address(self) -> str:
        """The subscription as the web push adapter takes it (``Message.to``)."""
        return json.dumps({"endpoint": self.endpoint, "keys": self.keys}, sort_keys=True)


class ProxyNotice(models.Model):
    """One missed-dose SMS to a family member: at most one per patient, caregiver and day."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    proxy = models.ForeignKey(PortalProxy, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    dedupe_key = models.CharField(max_length=80, unique=True)
    status = models.CharField(max_length=10, default="pending")  # pending | sent | failed
    tries = models.PositiveSmallIntegerField(default=0)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    sent_at = models.DateTimeField(null=True, blank=True)

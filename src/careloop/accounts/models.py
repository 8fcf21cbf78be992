"""Tenancy and people: Organisation -> Department -> CareTeam, and staff accounts."""

from __future__ import annotations

import hashlib

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.roles import ROLE_CHOICES, Role
from careloop.kit.crypto import EncryptedTextField


class Organisation(models.Model):
    """A hospital or clinic group: the tenant every row of patient data belongs to."""

    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    code = models.SlugField(_("code"), max_length=50, unique=True)
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")
    # Administrators always need a second factor; this asks it of everyone else too.
    second_factor_for_all = models.BooleanField(
        _("second factor for all staff"),
        default=False,
        help_text=_("Every staff member signs in with an authenticator code, not only admins."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name


class Department(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="departments"
    )
    code = models.SlugField(_("code"), max_length=50)
    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="uniq_department_code")
        ]
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str | None) -> str:
        if language and language.startswith("en") and self.name_en:
            return self.name_en
        return self.name


class StaffManager(UserManager["Staff"]):
    pass


class Staff(AbstractUser):
    """A staff account. Its organisation and departments bound everything it can reach."""

    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="staff",
        null=True,
        blank=True,
        help_text=_("Empty only for platform superusers, who see no patient data."),
    )
    role = models.CharField(_("role"), max_length=20, choices=ROLE_CHOICES, default=Role.NURSE)
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=[("zh-hans", "简体中文"), ("en", "English")],
        default="zh-hans",
    )
    departments = models.ManyToManyField(
        Department, through="Membership", related_name="staff", blank=True
    )

    objects = StaffManager()  # type: ignore[misc]

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")

    def __str__(self) -> str:
        return self.display_name or self.username


class Membership(models.Model):
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["staff", "department"], name="uniq_membership")
        ]


class CareTeam(models.Model):
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="care_teams")
    name = models.CharField(pgettext_lazy("of a thing", "name"), max_length=200)
    responsible_doctor = models.ForeignKey(
        Staff,
        on_delete=models.PROTECT,
        related_name="responsible_for",
        null=True,
        blank=True,
        verbose_name=_("responsible doctor"),
    )
    members = models.ManyToManyField(Staff, through="CareTeamMember", related_name="care_teams")

    class Meta:
        verbose_name = _("care team")
        verbose_name_plural = _("care teams")

    def __str__(self) -> str:
        return self.name


class CareTeamMember(models.Model):
    class TeamRole(models.TextChoices):
        DOCTOR = "doctor", _("Doctor")
        NURSE = "nurse", _("Nurse")
        OTHER = "other", _("Other")

    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="memberships")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="team_memberships")
    team_role = models.CharField(max_length=10, choices=TeamRole.choices, default=TeamRole.NURSE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "staff"], name="uniq_team_member")]


class ApiToken(models.Model):
    """A bearer token for the JSON and FHIR APIs. Only its SHA-256 is stored."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # SMART v2 scopes (careloop.fhir.scopes); blank: unrestricted, the user's role alone decides.
    scopes = models.TextField(_("scopes"), blank=True)
    # The one patient a token with patient/ scopes reaches.
    patient = models.ForeignKey(
        "patients.Patient",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_tokens",
        verbose_name=_("patient"),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    @staticmethod
    def digest_of(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()


class LoginFailure(models.Model):
    """One failed login, kept to throttle and lock out guessing."""

    username = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(db_index=True)


class SecondFactor(models.Model):
    """A staff member's authenticator (TOTP). The secret is encrypted with the field keys; the
    last accepted time step keeps any code from being accepted twice."""

    staff = models.OneToOneField(Staff, on_delete=models.CASCADE, related_name="second_factor")
    secret = EncryptedTextField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_step = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("second factor")
        verbose_name_plural = _("second factors")

"""Tables of engagement: the points ledger, check-ins, badges, rewards and the community.

Writes go through services.py only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Organisation
from careloop.patients.models import Patient
from careloop.portal import events


class PointRule(models.Model):
    """An organisation's own points for one kind of patient event (else domain.DEFAULT_RULES)."""

    KIND_CHOICES = [(k, k) for k in events.KINDS]

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("event"), max_length=20, choices=KIND_CHOICES)
    points = models.PositiveIntegerField(_("points"))
    daily_cap = models.PositiveIntegerField(
        _("daily cap"), help_text=_("Most points this kind can earn in one day (0: no cap).")
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "kind"], name="eng_rule_org_kind")
        ]


class Wallet(models.Model):
    """One per patient: the row locked while the ledger is read and written, the streak figures,
    and the patient's community nickname and leaderboard choice."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="+")
    current_streak = models.PositiveIntegerField(default=0)
    longest_streak = models.PositiveIntegerField(default=0)
    last_check_in = models.DateField(null=True, blank=True)
    nickname = models.CharField(_("nickname"), max_length=24, blank=True)
    on_leaderboard = models.BooleanField(_("show me on the leaderboard"), default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "nickname"],
                condition=~Q(nickname=""),
                name="eng_wallet_org_nickname",
            )
        ]


class AppendOnly(models.Model):
    """Rows that are written once and never changed or deleted (a ledger)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise RuntimeError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{type(self).__name__} rows are append-only")


class PointEntry(AppendOnly):
    """One line of a patient's points ledger; the balance is the sum of ``points``.

    ``(patient, kind, ref)`` is unique, so an event delivered twice pays once, and a
    redemption is charged and refunded at most once each.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20)
    ref = models.CharField(max_length=80)
    points = models.IntegerField()
    day = models.DateField(help_text="the patient's local day")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "kind", "ref"], name="eng_point_once")
        ]
        indexes = [
            models.Index(fields=["patient", "kind", "day"], name="eng_point_day"),
            models.Index(fields=["organisation", "created_at"], name="eng_point_org_time"),
        ]


class CheckIn(AppendOnly):
    """A daily check-in (打卡): at most one per patient and local day."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "day"], name="eng_checkin_once")]


class BadgeAward(AppendOnly):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=40)
    awarded_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "code"], name="eng_badge_once")]


class Reward(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=80)
    description = models.TextField(_("description"), max_length=500, blank=True)
    cost = models.PositiveIntegerField(_("points cost"))
    stock = models.PositiveIntegerField(_("stock"))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cost", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="eng_reward_stock"),
            models.CheckConstraint(condition=Q(cost__gt=0), name="eng_reward_cost"),
        ]

    def __str__(self) -> str:
        return self.name


class Redemption(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be collected")
        FULFILLED = "fulfilled", _("Collected")
        CANCELLED = "cancelled", _("Cancelled")

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    cost = models.PositiveIntegerField()
    code = models.CharField(max_length=12, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="eng_redeem_patient")]


class Community(models.Model):
    class Condition(models.TextChoices):
        HYPERTENSION = "hypertension", _("Hypertension")
        DIABETES = "diabetes", _("Diabetes")
        POST_OPERATIVE = "post_operative", _("After an operation")
        HEART = "heart", _("Heart disease")
        GENERAL = "general", _("Everyone")

    class Moderation(models.TextChoices):
        PRE = "pre", _("Review posts before they are shown")
        POST = "post", _("Show posts at once, review afterwards")

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=80)
    condition = models.CharField(_("condition"), max_length=20, choices=Condition.choices)
    description = models.TextField(_("description"), max_length=500, blank=True)
    # Which diagnoses let a patient join: ICD-10 code prefixes, comma separated; empty: anyone.
    icd10_prefixes = models.CharField(
        _("ICD-10 prefixes"),
        max_length=200,
        blank=True,
        help_text=_("Patients with an active diagnosis starting with one of these may join, "
                    "e.g. I10, I11. Empty: every patient."),
    )  # fmt: skip
    moderation = models.CharField(
        _("moderation"), max_length=4, choices=Moderation.choices, default=Moderation.PRE
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name

    @property
    def prefixes(self) -> list[str]:
        return [p.strip().upper() for p in self.icd10_prefixes.split(",") if p.strip()]


class Membership(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="members")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "patient"], name="eng_member_once")
        ]


class Post(models.Model):
    """A post (no parent) or a reply. Patients post under their nickname; staff as experts."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for review")
        PUBLISHED = "published", _("Published")
        HIDDEN = "hidden", _("Hidden by a moderator")
        REMOVED = "removed", _("Removed by a moderator")

    MAX_LENGTH = 1000

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="posts")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    nickname = models.CharField(max_length=40)
    body = models.TextField(max_length=MAX_LENGTH)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    moderated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    moderated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["community", "status", "-created_at"], name="eng_post_list")
        ]


class Report(models.Model):
    """A patient's report of abuse in a post; moderators work the open ones."""

    class Outcome(models.TextChoices):
        OPEN = "open", _("Open")
        DISMISSED = "dismissed", _("No action needed")
        ACTED = "acted", _("Post hidden or removed")

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="reports")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(_("reason"), max_length=300)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OPEN)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "patient"], name="eng_report_once")]


class ExpertSession(models.Model):
    """An online Q&A with an expert: questions before and during, answers published after."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="sessions")
    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    topic = models.CharField(_("topic"), max_length=120)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")),
                                   name="eng_session_order")
        ]  # fmt: skip


class ExpertQuestion(models.Model):
    session = models.ForeignKey(ExpertSession, on_delete=models.CASCADE, related_name="questions")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    nickname = models.CharField(max_length=40)
    body = models.TextField(max_length=500)
    answer = models.TextField(max_length=2000, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]

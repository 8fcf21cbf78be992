"""Tables of health education: the content library, what was delivered to whom, reads, and the
plain-language summaries written after each visit. Writes go through services.py only."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import Organisation
from careloop.patients.models import Encounter, Patient


class Kind(models.TextChoices):
    ARTICLE = "article", _("Article")
    VIDEO = "video", _("Video")


class Stage(models.TextChoices):
    """When in a care plan an item is pushed: days since the enrolment started (domain.STAGES)."""

    ANY = "any", _("Any time")
    AFTER_DISCHARGE = "after_discharge", _("Just after discharge (days 0–3)")
    WEEK_1 = "week_1", _("Week 1")
    WEEK_2 = "week_2", _("Week 2")
    WEEKS_3_4 = "weeks_3_4", _("Weeks 3–4")
    MONTH_2 = "month_2", _("Month 2")
    MONTH_3 = "month_3", _("Month 3")
    LATER = "later", _("After month 3")


class Level(models.TextChoices):
    EASY = "easy", _("Easy reading")
    STANDARD = "standard", _("Standard")


class Language(models.TextChoices):
    ZH = "zh-hans", "简体中文"
    EN = "en", "English"


class ContentItem(models.Model):
    """An article or a video of the organisation's library."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(_("title"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.ARTICLE)
    # Plain text with a few marks (headings, lists, bold, https links), rendered by
    # education.rendering; HTML typed here is shown as text.
    body = models.TextField(_("text"), max_length=20000, blank=True)
    video_file = models.FileField(_("video file"), upload_to="education/%Y/%m/", blank=True)
    video_type = models.CharField(max_length=20, blank=True)
    video_size = models.PositiveBigIntegerField(default=0)
    video_url = models.URLField(_("video link"), max_length=500, blank=True)
    # Condition tags: ICD-10 code prefixes (I10, E11) and SNOMED CT concept ids. None: general.
    icd10_prefixes = models.JSONField(_("ICD-10 prefixes"), default=list, blank=True)
    snomed_codes = models.JSONField(_("SNOMED CT concepts"), default=list, blank=True)
    stage = models.CharField(
        _("plan stage"), max_length=20, choices=Stage.choices, default=Stage.ANY
    )
    language = models.CharField(
        _("language"), max_length=10, choices=Language.choices, default=Language.ZH
    )
    reading_level = models.CharField(
        _("reading level"), max_length=10, choices=Level.choices, default=Level.EASY
    )
    for_everyone = models.BooleanField(
        _("in every patient's library"),
        default=False,
        help_text=_("Shown to all patients of this language in the portal, without a push."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    version = models.PositiveIntegerField(default=1)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("education item")
        verbose_name_plural = _("education items")
        indexes = [models.Index(fields=["organisation", "status", "language"], name="edu_org_st")]

    def __str__(self) -> str:
        return self.title

    @property
    def condition_tags(self) -> list[str]:
        return [*self.icd10_prefixes, *(f"SNOMED {c}" for c in self.snomed_codes)]


class Delivery(models.Model):
    """An item placed in one patient's Learn list (once per patient and item)."""

    class Source(models.TextChoices):
        PLAN = "plan", _("Plan stage")
        STAFF = "staff", _("Sent by staff")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="deliveries")
    enrolment = models.ForeignKey(
        "careplans.Enrolment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PLAN)
    plan_day = models.IntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["patient", "item"], name="uniq_edu_delivery")
        ]


class ContentRead(models.Model):
    """A patient opening an item, or reading it through (once per patient and item)."""

    class Event(models.TextChoices):
        OPEN = "open", pgettext_lazy("education read", "Opened")
        READ_THROUGH = "read_through", _("Read through")

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="reads")
    event = models.CharField(max_length=15, choices=Event.choices)
    at = models.DateTimeField()
    seconds = models.PositiveIntegerField(default=0)
    by_caregiver = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("content read")
        verbose_name_plural = _("content reads")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "item"],
                condition=Q(event="read_through"),
                name="uniq_edu_read_through",
            )
        ]
        indexes = [models.Index(fields=["item", "event"], name="edu_read_item")]


class PushRun(models.Model):
    """One row per day the stage push ran, so that any number of workers run it once a day."""

    day = models.DateField(unique=True)
    started_at = models.DateTimeField()
    delivered = models.PositiveIntegerField(default=0)


class VisitSummary(models.Model):
    """The plain-language summary of one visit, in the patient's language (content as data)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    encounter = models.OneToOneField(Encounter, on_delete=models.PROTECT, related_name="+")
    visit_date = models.DateField()
    language = models.CharField(max_length=10, choices=Language.choices)
    content = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    generated_at = models.DateTimeField()
    generated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("visit summary")
        verbose_name_plural = _("visit summaries")
        indexes = [models.Index(fields=["patient", "visit_date"], name="edu_summary_patient")]

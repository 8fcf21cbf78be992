"""Tables of the unified patient record. Writes go through services.py only."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.accounts.models import CareTeam, Department, Organisation
from careloop.kit.clock import utc_now
from careloop.kit.crypto import EncryptedTextField, blind_index
from careloop.kit.identifiers import phone_tail


class Sex(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")
    UNKNOWN = "unknown", _("Unknown")


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    WECHAT = "wechat", _("WeChat")
    VOICE = "voice", _("Voice call")
    PUSH = "push", _("App push")
    EMAIL = "email", _("Email")


class Versioned(models.Model):
    """Optimistic concurrency and authorship for every clinical row."""

    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        abstract = True


class Patient(Versioned):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    record_number = models.CharField(_("record number"), max_length=40, blank=True)
    name = models.CharField(_("name"), max_length=100)
    sex = models.CharField(_("sex"), max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    date_of_birth = models.DateField(_("date of birth"))
    national_id = EncryptedTextField(_("resident ID number"), blank=True)
    national_id_index = models.CharField(max_length=64, blank=True, db_index=True)
    address = EncryptedTextField(_("address"), blank=True)
    preferred_language = models.CharField(
        _("preferred language"),
        max_length=10,
        choices=[("zh-hans", "简体中文"), ("en", "English")],
        default="zh-hans",
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")
    contact_window_start = models.TimeField(_("contact from"), null=True, blank=True)
    contact_window_end = models.TimeField(_("contact until"), null=True, blank=True)
    preferred_channels = models.JSONField(_("preferred channels"), default=list, blank=True)
    quiet_hours_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_hours_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    deceased_on = models.DateField(_("date of death"), null=True, blank=True)
    # The day the patient was registered, in the organisation's time zone (analytics count
    # months since registration from it). Filled on first save when not given; NULL only for
    # rows bulk-inserted without it, which analytics read as created_at's day in the
    # organisation's zone.
    registered_on = models.DateField(_("registered on"), null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_from"
    )
    departments = models.ManyToManyField(Department, through="PatientDepartment", related_name="+")
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        indexes = [
            models.Index(fields=["organisation", "name"], name="patient_org_name"),
            models.Index(fields=["organisation", "date_of_birth"], name="patient_org_dob"),
            models.Index(fields=["organisation", "national_id_index"], name="patient_org_nid"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.national_id_index = (
            blind_index("national_id", self.national_id) if self.national_id else ""
        )
        if self.registered_on is None and self.organisation_id:
            self.registered_on = _organisation_today(self.organisation)
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.merged_into_id is None


def _organisation_today(organisation: Organisation) -> date:
    """Today in the organisation's time zone (Asia/Shanghai when the zone is unknown)."""
    try:
        zone = ZoneInfo(organisation.time_zone)
    except (ValueError, KeyError):
        zone = ZoneInfo("Asia/Shanghai")
    return utc_now().astimezone(zone).date()


class PatientDepartment(models.Model):
    """The departments (and care team) that look after a patient."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="department_links")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    care_team = models.ForeignKey(
        CareTeam, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    since = models.DateField(_("since"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "department"], name="uniq_patient_dept")
        ]
        indexes = [models.Index(fields=["department", "patient"], name="patdept_dept")]


class PatientPhone(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="phones")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    number = EncryptedTextField()
    number_index = models.CharField(max_length=64, db_index=True)
    tail_index = models.CharField(max_length=64, db_index=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.number_index = blind_index("phone", self.number)
        self.tail_index = blind_index("phone_tail", phone_tail(self.number))
        super().save(*args, **kwargs)


class Concept(models.Model):
    """A code the organisation's records may use (ICD-10 categories, SNOMED CT concepts)."""

    class System(models.TextChoices):
        ICD10 = "icd10", "ICD-10"
        SNOMED = "snomed", "SNOMED CT"

    system = models.CharField(max_length=10, choices=System.choices)
    code = models.CharField(max_length=32)
    display_zh = models.CharField(max_length=200)
    display_en = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "code"], name="uniq_concept")]

    def __str__(self) -> str:
        return f"{self.code} {self.display_zh}"


class PatientRecord(Versioned):
    """A row of the record that belongs to one patient; never hard-deleted."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Condition(PatientRecord):
    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("condition status", "Active")
        REMISSION = "remission", _("In remission")
        RESOLVED = "resolved", _("Resolved")
        INACTIVE = "inactive", _("Inactive")

    icd10_code = models.CharField(_("ICD-10 code"), max_length=20)
    snomed_code = models.CharField(_("SNOMED CT code"), max_length=18, blank=True)
    # Filled from the terminology when only a code is given (see ConditionForm).
    display = models.CharField(_("diagnosis"), max_length=200, blank=True)
    onset_date = models.DateField(_("onset"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE
    )
    note = models.TextField(_("note"), blank=True, max_length=2000)
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("condition")
        verbose_name_plural = _("conditions")
        indexes = [models.Index(fields=["organisation", "icd10_code"], name="cond_org_code")]


class Allergy(PatientRecord):
    class Severity(models.TextChoices):
        MILD = "mild", _("Mild")
        MODERATE = "moderate", _("Moderate")
        SEVERE = "severe", _("Severe")

    class Category(models.TextChoices):
        DRUG = "medication", _("Medication")
        FOOD = "food", _("Food")
        ENVIRONMENT = "environment", _("Environment")
        OTHER = "other", _("Other")

    substance = models.CharField(_("substance"), max_length=200)
    category = models.CharField(
        _("category"), max_length=12, choices=Category.choices, default=Category.DRUG
    )
    reaction = models.CharField(_("reaction"), max_length=200, blank=True)
    severity = models.CharField(
        _("severity"), max_length=10, choices=Severity.choices, default=Severity.MODERATE
    )
    noted_on = models.DateField(_("noted on"), null=True, blank=True)
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("allergy")
        verbose_name_plural = _("allergies")


class Frequency(models.TextChoices):
    """Dosing frequencies as written on Chinese prescriptions (Latin abbreviations)."""

    QD = "qd", _("qd — once a day")
    BID = "bid", _("bid — twice a day")
    TID = "tid", _("tid — three times a day")
    QID = "qid", _("qid — four times a day")
    QN = "qn", _("qn — every night")
    QOD = "qod", _("qod — every other day")
    QW = "qw", _("qw — once a week")
    PRN = "prn", _("prn — as needed")
    ST = "st", _("st — at once")
    # An order received from another system without dosing instructions: listed, never reminded.
    UD = "ud", _("ud — as directed")


class Route(models.TextChoices):
    PO = "po", _("Oral")
    SL = "sl", _("Sublingual")
    SC = "sc", _("Subcutaneous")
    IM = "im", _("Intramuscular")
    IV = "iv", _("Intravenous")
    INH = "inh", _("Inhaled")
    TOP = "top", _("Topical")


class Medication(PatientRecord):
    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("medication status", "Active")
        STOPPED = "stopped", _("Stopped")
        COMPLETED = "completed", _("Completed")

    class Origin(models.TextChoices):
        PRESCRIBED = "prescribed", _("Prescribed")
        REPORTED = "reported", _("Reported by the patient or another provider")

    name = models.CharField(_("medicine"), max_length=200)
    code = models.CharField(_("code"), max_length=40, blank=True)
    # Empty only for an order received without dosing instructions (frequency "ud").
    dose = models.DecimalField(_("dose"), max_digits=10, decimal_places=3, null=True, blank=True)
    unit = models.CharField(_("unit"), max_length=20, blank=True)
    route = models.CharField(_("route"), max_length=4, choices=Route.choices, default=Route.PO)
    frequency = models.CharField(_("frequency"), max_length=4, choices=Frequency.choices)
    start_date = models.DateField(_("start"), null=True, blank=True)
    end_date = models.DateField(_("end"), null=True, blank=True)
    prescriber = models.CharField(_("prescriber"), max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    # A prescription written for the patient, or an entry of their medication list that the
    # patient or another provider reported (FHIR MedicationStatement).
    origin = models.CharField(
        _("origin"), max_length=10, choices=Origin.choices, default=Origin.PRESCRIBED
    )
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("medication")
        verbose_name_plural = _("medications")


class Dispense(PatientRecord):
    """One dispensing (fill) of a medicine: what was handed over, how much and for how many
    days. Days supply is what adherence by proportion of days covered (PDC) counts."""

    class Status(models.TextChoices):
        # The FHIR R4 MedicationDispense status codes.
        PREPARATION = "preparation", _("Preparation")
        IN_PROGRESS = "in-progress", _("In progress")
        CANCELLED = "cancelled", _("Cancelled")
        ON_HOLD = "on-hold", _("On hold")
        COMPLETED = "completed", _("Handed over")
        ENTERED_IN_ERROR = "entered-in-error", _("Entered in error")
        STOPPED = "stopped", _("Stopped")
        DECLINED = "declined", _("Declined")
        UNKNOWN = "unknown", _("Unknown")

    class Source(models.TextChoices):
        HIS = "his", _("Hospital information system")
        FHIR = "fhir", _("FHIR interface")
        STAFF = "staff", _("Entered by staff")
        IMPORT = "import", _("Imported")

    prescription = models.ForeignKey(
        Medication,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="dispenses",
        verbose_name=_("prescription"),
    )
    name = models.CharField(_("medicine"), max_length=200)
    code = models.CharField(_("code"), max_length=40, blank=True)
    code_system = models.CharField(
        _("code system"),
        max_length=200,
        blank=True,
        help_text=_(
            "For example http://www.nlm.nih.gov/research/umls/rxnorm, or blank for a local code."
        ),
    )
    drug_class = models.CharField(
        _("drug class"),
        max_length=100,
        blank=True,
        help_text=_("The class adherence is measured by, e.g. statins or RAS antagonists."),
    )
    quantity = models.DecimalField(
        _("quantity"), max_digits=10, decimal_places=3, null=True, blank=True
    )
    quantity_unit = models.CharField(_("quantity unit"), max_length=20, blank=True)
    days_supply = models.PositiveSmallIntegerField(_("days supply"))
    when_handed_over = models.DateField(_("handed over on"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.COMPLETED
    )
    source = models.CharField(
        _("source"), max_length=10, choices=Source.choices, default=Source.STAFF
    )
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("dispensing")
        verbose_name_plural = _("dispensings")
        indexes = [
            models.Index(fields=["patient", "when_handed_over"], name="dispense_patient_date"),
            # PDC reads a whole organisation's fills for a period from this index alone.
            models.Index(
                fields=[
                    "organisation",
                    "when_handed_over",
                    "patient",
                    "days_supply",
                    "drug_class",
                    "code",
                    "name",
                ],
                condition=Q(status="completed", deleted_at__isnull=True),
                name="dispense_pdc",
            ),
        ]


class HistoryEntry(PatientRecord):
    class Kind(models.TextChoices):
        PAST = "past", _("Past medical history")
        SURGICAL = "surgical", _("Surgical history")
        FAMILY = "family", _("Family history")
        SOCIAL = "social", _("Social history")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    description = models.CharField(_("description"), max_length=500)
    relation = models.CharField(_("relative"), max_length=50, blank=True)
    year = models.PositiveSmallIntegerField(_("year"), null=True, blank=True)

    class Meta:
        verbose_name = _("history entry")
        verbose_name_plural = _("history")


class Lifestyle(PatientRecord):
    class Smoking(models.TextChoices):
        NEVER = "never", _("Never smoked")
        FORMER = "former", _("Former smoker")
        CURRENT = "current", _("Current smoker")

    class Alcohol(models.TextChoices):
        NONE = "none", _("None")
        OCCASIONAL = "occasional", _("Occasional")
        REGULAR = "regular", _("Regular")
        HEAVY = "heavy", _("Heavy")

    class Exercise(models.TextChoices):
        NONE = "none", _("None")
        LIGHT = "light", _("Light")
        MODERATE = "moderate", _("Moderate")
        VIGOROUS = "vigorous", _("Vigorous")

    recorded_on = models.DateField(_("recorded on"))
    smoking = models.CharField(_("smoking"), max_length=10, choices=Smoking.choices)
    cigarettes_per_day = models.PositiveSmallIntegerField(
        _("cigarettes a day"), null=True, blank=True
    )
    alcohol = models.CharField(_("alcohol"), max_length=12, choices=Alcohol.choices)
    exercise = models.CharField(_("exercise"), max_length=10, choices=Exercise.choices)
    exercise_minutes_per_week = models.PositiveSmallIntegerField(
        _("exercise minutes a week"), null=True, blank=True
    )
    diet = models.CharField(_("diet"), max_length=200, blank=True)
    sleep_hours = models.DecimalField(
        _("sleep hours a night"), max_digits=3, decimal_places=1, null=True, blank=True
    )

    class Meta:
        verbose_name = _("lifestyle")
        verbose_name_plural = _("lifestyle")


class Encounter(PatientRecord):
    class Kind(models.TextChoices):
        OUTPATIENT = "outpatient", _("Outpatient")
        INPATIENT = "inpatient", _("Inpatient")
        EMERGENCY = "emergency", _("Emergency")
        FOLLOW_UP = "follow_up", _("Follow-up")

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="+", verbose_name=_("department")
    )
    attending = models.CharField(_("attending doctor"), max_length=100, blank=True)
    diagnoses = models.CharField(_("diagnoses"), max_length=500, blank=True)
    admitted_on = models.DateField(_("admitted / visit date"))
    discharged_on = models.DateField(_("discharged"), null=True, blank=True)
    summary = models.TextField(_("summary"), blank=True, max_length=4000)
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("visit")
        verbose_name_plural = _("visits")


class Report(PatientRecord):
    class Kind(models.TextChoices):
        LAB = "lab", _("Laboratory")
        IMAGING = "imaging", _("Imaging")
        ECG = "ecg", _("ECG")
        PATHOLOGY = "pathology", _("Pathology")
        DISCHARGE = "discharge", _("Discharge summary")
        OTHER = "other", _("Other")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    title = models.CharField(_("title"), max_length=200)
    reported_on = models.DateField(_("report date"))
    file = models.FileField(_("file"), upload_to="reports/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(default=0)
    results = models.JSONField(_("results"), default=list, blank=True)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")


class Caregiver(PatientRecord):
    name = models.CharField(_("name"), max_length=100)
    relation = models.CharField(_("relation"), max_length=50)
    phone = EncryptedTextField(_("phone"))
    is_emergency_contact = models.BooleanField(_("emergency contact"), default=False)
    receives_notifications = models.BooleanField(_("receives notifications"), default=False)
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("caregiver")
        verbose_name_plural = _("caregivers and family")


class Consent(PatientRecord):
    """One consent decision (PIPL): the latest per purpose and channel is in force."""

    class Purpose(models.TextChoices):
        CARE = "care_reminders", _("Care reminders")
        EDUCATION = "education", _("Health education")
        RESEARCH = "research", _("Research (de-identified)")
        SHARING = "data_sharing", _("Sharing with partner providers")

    class Source(models.TextChoices):
        PAPER = "paper", _("Signed paper form")
        VERBAL = "verbal", _("Verbal, recorded by staff")
        PORTAL = "portal", _("Patient portal")

    purpose = models.CharField(_("purpose"), max_length=20, choices=Purpose.choices)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    granted = models.BooleanField(_("granted"))
    decided_on = models.DateField(_("decided on"))
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    note = models.CharField(_("note"), max_length=500, blank=True)
    # FHIR elements CareLoop does not model, kept so that a resource reads back as it was sent.
    fhir_extra = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")


class RecordVersion(models.Model):
    """Version history of clinical rows: who changed what, when."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20)
    object_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    change = models.CharField(max_length=10)  # create | update | delete | merge
    snapshot = models.JSONField(default=dict)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "object_id", "version"], name="uniq_record_version"
            )
        ]
        indexes = [models.Index(fields=["patient", "at"], name="recver_patient_at")]

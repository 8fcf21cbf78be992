"""Validation of every input to the record: one form per kind, shared by pages and the API."""

from __future__ import annotations

import zoneinfo
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from careloop.kit.clock import utc_now
from careloop.kit.identifiers import (
    icd10_category,
    normalise_phone,
    normalise_resident_id,
    resident_id_birthdate,
    resident_id_problem,
    resident_id_sex,
    snomed_id_valid,
)
from careloop.patients import models as m

MAX_PHONES = 4
_ID_MESSAGES = {
    "format": _("A resident ID number has 17 digits followed by a digit or X."),
    "checksum": _("This resident ID number's check digit is wrong; please check every digit."),
    "birthdate": _("This resident ID number contains an impossible date of birth."),
}


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """IANA zone names (reading them scans the zone database, so once per process)."""
    return frozenset(zoneinfo.available_timezones())


def _today() -> date:
    return utc_now().date()


def _not_future(value: date | None) -> None:
    if value and value > _today() + timedelta(days=1):
        raise forms.ValidationError(_("This date is in the future."))


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", **kwargs)


class PhoneListField(forms.Field):
    """Phone numbers as a list or a comma/newline separated string; each normalised."""

    def to_python(self, value: Any) -> list[str]:
        if value in (None, ""):
            return []
        items = (
            value if isinstance(value, list | tuple) else str(value).replace("\n", ",").split(",")
        )
        numbers: list[str] = []
        for raw in items:
            raw = str(raw).strip()
            if not raw:
                continue
            number = normalise_phone(raw)
            if number is None:
                raise forms.ValidationError(
                    _("“%(value)s” is not a valid mobile (11 digits) or landline number."),
                    params={"value": raw[:30]},
                )
            if number not in numbers:
                numbers.append(number)
        if len(numbers) > MAX_PHONES:
            raise forms.ValidationError(_("At most %(n)d phone numbers."), params={"n": MAX_PHONES})
        return numbers

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value


class PatientForm(forms.ModelForm):
    phones = PhoneListField(
        label=_("phone numbers"),
        required=True,
        help_text=_("The first is used for reminders; separate several with commas."),
    )
    preferred_channels = forms.MultipleChoiceField(
        label=_("preferred channels"),
        choices=m.Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = m.Patient
        fields = [
            "name",
            "sex",
            "date_of_birth",
            "national_id",
            "record_number",
            "phones",
            "address",
            "preferred_language",
            "time_zone",
            "preferred_channels",
            "contact_window_start",
            "contact_window_end",
            "quiet_hours_start",
            "quiet_hours_end",
            "deceased_on",
        ]
        widgets = {
            "date_of_birth": DateInput(),
            "deceased_on": DateInput(),
            "contact_window_start": TimeInput(),
            "contact_window_end": TimeInput(),
            "quiet_hours_start": TimeInput(),
            "quiet_hours_end": TimeInput(),
            "address": forms.TextInput(),
            "national_id": forms.TextInput(),
        }

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("This field is required."))
        return name

    def clean_date_of_birth(self) -> date:
        born = self.cleaned_data["date_of_birth"]
        _not_future(born)
        if born < date(_today().year - 130, 1, 1):
            raise forms.ValidationError(
                _("A date of birth more than 130 years ago is not plausible.")
            )
        return born

    def clean_deceased_on(self) -> date | None:
        value = self.cleaned_data.get("deceased_on")
        _not_future(value)
        return value

    def clean_national_id(self) -> str:
        value = normalise_resident_id(self.cleaned_data.get("national_id", ""))
        if not value:
            return ""
        problem = resident_id_problem(value)
        if problem:
            raise forms.ValidationError(_ID_MESSAGES[problem])
        return value

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"].strip()
        if value not in known_time_zones():
            raise forms.ValidationError(
                _("Unknown time zone; use an IANA name such as Asia/Shanghai.")
            )
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        nid, born, sex = data.get("national_id"), data.get("date_of_birth"), data.get("sex")
        if nid and born and resident_id_birthdate(nid) != born:
            self.add_error(
                "national_id",
                _("The date of birth in this ID number does not match the date of birth."),
            )
        elif nid and sex in (m.Sex.MALE, m.Sex.FEMALE) and resident_id_sex(nid) != sex:
            self.add_error("national_id", _("The sex encoded in this ID number does not match."))
        for start, end in (
            ("contact_window_start", "contact_window_end"),
            ("quiet_hours_start", "quiet_hours_end"),
        ):
            if bool(data.get(start)) != bool(data.get(end)):
                self.add_error(
                    end if data.get(start) else start, _("Give both the start and the end time.")
                )
        if data.get("deceased_on") and born and data["deceased_on"] < born:
            self.add_error("deceased_on", _("The date of death is before the date of birth."))
        return data


class RecordForm(forms.ModelForm):
    """Base for every patient sub-record form."""

    date_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in self.date_fields:
            try:
                _not_future(data.get(name))
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        return data


class ConditionForm(RecordForm):
    date_fields = ("onset_date",)

    class Meta:
        model = m.Condition
        fields = ["icd10_code", "snomed_code", "display", "onset_date", "status", "note"]
        widgets = {"onset_date": DateInput(), "note": forms.Textarea(attrs={"rows": 2})}

    def clean_icd10_code(self) -> str:
        code = self.cleaned_data["icd10_code"].strip().upper().replace("X", "x")
        code = code[:1].upper() + code[1:]
        category = icd10_category(code)
        known = m.Concept.objects.filter(system=m.Concept.System.ICD10)
        if category is None or not known.filter(code=category).exists():
            raise forms.ValidationError(
                _("Unknown ICD-10 code “%(code)s”."), params={"code": code[:20]}
            )
        return code

    def clean_snomed_code(self) -> str:
        code = self.cleaned_data.get("snomed_code", "").strip()
        if code and not snomed_id_valid(code):
            raise forms.ValidationError(
                _("“%(code)s” is not a valid SNOMED CT identifier."), params={"code": code[:20]}
            )
        return code

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        code = data.get("icd10_code")
        if code and not data.get("display"):
            # Fill the diagnosis text from the terminology when the user gave only a code.
            concept = (
                m.Concept.objects.filter(system="icd10", code=code).first()
                or m.Concept.objects.filter(system="icd10", code=icd10_category(code)).first()
            )
            if concept:
                data["display"] = concept.display_zh
                self.instance.display = concept.display_zh
        if not data.get("display") and "display" not in self.errors:
            self.add_error("display", _("This field is required."))
        return data


class AllergyForm(RecordForm):
    date_fields = ("noted_on",)

    class Meta:
        model = m.Allergy
        fields = ["substance", "category", "reaction", "severity", "noted_on"]
        widgets = {"noted_on": DateInput()}


class MedicationForm(RecordForm):
    date_fields = ("start_date",)

    class Meta:
        model = m.Medication
        fields = [
            "name",
            "code",
            "dose",
            "unit",
            "route",
            "frequency",
            "start_date",
            "end_date",
            "prescriber",
            "status",
            "origin",
        ]
        widgets = {"start_date": DateInput(), "end_date": DateInput()}

    def clean_dose(self) -> Any:
        dose = self.cleaned_data["dose"]
        if dose is not None and dose <= 0:
            raise forms.ValidationError(_("The dose must be greater than zero."))
        return dose

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", _("The end date is before the start date."))
        if data.get("frequency") not in (m.Frequency.UD, m.Frequency.PRN):
            # A scheduled medicine needs its amount: reminders say how much to take. Only an
            # order to be taken as needed or as directed may come without one.
            if data.get("dose") is None and "dose" not in self.errors:
                self.add_error("dose", _("This field is required."))
            if not data.get("unit") and "unit" not in self.errors:
                self.add_error("unit", _("This field is required."))
        return data


MAX_DAYS_SUPPLY = 365


class DispenseForm(RecordForm):
    """A dispensing. The prescription it fills can only be one of the same patient's."""

    date_fields = ("when_handed_over",)

    class Meta:
        model = m.Dispense
        fields = [
            "name",
            "code",
            "code_system",
            "drug_class",
            "prescription",
            "quantity",
            "quantity_unit",
            "days_supply",
            "when_handed_over",
            "status",
            "source",
        ]
        widgets = {"when_handed_over": DateInput()}

    def __init__(self, *args: Any, patient_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = patient_id or (self.instance.patient_id if self.instance.pk else None)
        field = self.fields["prescription"]
        field.queryset = m.Medication.objects.filter(  # type: ignore[attr-defined]
            patient_id=owner or 0, deleted_at__isnull=True
        ).order_by("-start_date", "-id")
        field.label_from_instance = lambda med: f"{med.name} ({med.start_date or '—'})"  # type: ignore[attr-defined]

    def clean_quantity(self) -> Any:
        quantity = self.cleaned_data.get("quantity")
        if quantity is not None and quantity <= 0:
            raise forms.ValidationError(_("The quantity must be greater than zero."))
        return quantity

    def clean_days_supply(self) -> Any:
        days = self.cleaned_data.get("days_supply")
        if days is not None and not (1 <= days <= MAX_DAYS_SUPPLY):
            raise forms.ValidationError(
                _("Enter between 1 and %(n)d days."), params={"n": MAX_DAYS_SUPPLY}
            )
        return days

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (
            data.get("status") == m.Dispense.Status.COMPLETED
            and not data.get("when_handed_over")
            and "when_handed_over" not in self.errors
        ):
            self.add_error("when_handed_over", _("Give the date the medicine was handed over."))
        return data


class HistoryEntryForm(RecordForm):
    class Meta:
        model = m.HistoryEntry
        fields = ["kind", "description", "relation", "year"]

    def clean_year(self) -> int | None:
        year = self.cleaned_data.get("year")
        if year is not None and not (1900 <= year <= _today().year):
            raise forms.ValidationError(_("Enter a year between 1900 and this year."))
        return year

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kind") == m.HistoryEntry.Kind.FAMILY and not data.get("relation"):
            self.add_error("relation", _("Say which relative (e.g. father, mother)."))
        return data


class LifestyleForm(RecordForm):
    date_fields = ("recorded_on",)

    class Meta:
        model = m.Lifestyle
        fields = [
            "recorded_on",
            "smoking",
            "cigarettes_per_day",
            "alcohol",
            "exercise",
            "exercise_minutes_per_week",
            "diet",
            "sleep_hours",
        ]
        widgets = {"recorded_on": DateInput()}

    def clean_sleep_hours(self) -> Any:
        hours = self.cleaned_data.get("sleep_hours")
        if hours is not None and not (0 <= hours <= 24):
            raise forms.ValidationError(_("Enter between 0 and 24 hours."))
        return hours


class EncounterForm(RecordForm):
    date_fields = ("admitted_on", "discharged_on")

    class Meta:
        model = m.Encounter
        fields = [
            "kind",
            "department",
            "attending",
            "diagnoses",
            "admitted_on",
            "discharged_on",
            "summary",
        ]
        widgets = {
            "admitted_on": DateInput(),
            "discharged_on": DateInput(),
            "summary": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, organisation_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the organisation's own departments can be chosen.
        self.fields["department"].queryset = self.fields["department"].queryset.filter(  # type: ignore[attr-defined]
            organisation_id=organisation_id
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("admitted_on"), data.get("discharged_on")
        if start and end and end < start:
            self.add_error("discharged_on", _("Discharge is before admission."))
        return data


ALLOWED_UPLOADS = {
    # content type: (extensions, magic prefix)
    "application/pdf": ((".pdf",), b"%PDF-"),
    "image/png": ((".png",), b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": ((".jpg", ".jpeg"), b"\xff\xd8\xff"),
}


class ReportForm(RecordForm):
    date_fields = ("reported_on",)
    results = forms.JSONField(
        label=_("structured results"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_('A list such as [{"name": "HbA1c", "value": 7.2, "unit": "%"}].'),
    )

    class Meta:
        model = m.Report
        fields = ["kind", "title", "reported_on", "file", "results"]
        widgets = {"reported_on": DateInput()}

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if not upload or not hasattr(upload, "content_type"):
            return upload
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB."),
                params={"mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024)},
            )
        head = upload.read(16)
        upload.seek(0)
        name = upload.name.lower()
        for ctype, (exts, magic) in ALLOWED_UPLOADS.items():
            if name.endswith(exts) and head.startswith(magic):
                upload.content_type = ctype
                return upload
        raise forms.ValidationError(_("Only PDF, PNG and JPEG files are accepted."))

    def clean_results(self) -> list[dict[str, Any]]:
        value = self.cleaned_data.get("results") or []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise forms.ValidationError(_("Results must be a list of objects."))
        if len(value) > 200:
            raise forms.ValidationError(_("At most 200 results per report."))
        for row in value:
            if not str(row.get("name", "")).strip():
                raise forms.ValidationError(_("Every result needs a name."))
        return value


class CaregiverForm(RecordForm):
    class Meta:
        model = m.Caregiver
        fields = [
            "name",
            "relation",
            "phone",
            "is_emergency_contact",
            "receives_notifications",
            "note",
        ]
        widgets = {"phone": forms.TextInput()}

    def clean_phone(self) -> str:
        number = normalise_phone(self.cleaned_data.get("phone", ""))
        if number is None:
            raise forms.ValidationError(_("Enter a valid mobile (11 digits) or landline number."))
        return number


class ConsentForm(RecordForm):
    date_fields = ("decided_on",)

    class Meta:
        model = m.Consent
        fields = ["purpose", "channel", "granted", "decided_on", "source", "note"]
        widgets = {"decided_on": DateInput()}

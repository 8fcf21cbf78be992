"""The kinds of rows in a patient's record, and how each is shown, validated and guarded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db.models import ForeignKey, Model
from django.db.models.fields.files import FieldFile
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from careloop.accounts.roles import Action
from careloop.kit.crypto import EncryptedTextField, blind_index
from careloop.patients import forms as f
from careloop.patients import models as m


@dataclass(frozen=True)
class RecordKind:
    key: str
    model: type[m.PatientRecord]
    form: type[f.RecordForm]
    label: Promise
    ordering: tuple[str, ...]
    columns: tuple[str, ...]
    write_action: Action = Action.CLINICAL_WRITE
    view_action: Action = Action.CLINICAL_VIEW

    @property
    def fields(self) -> list[str]:
        return list(self.form._meta.fields or [])


KINDS: dict[str, RecordKind] = {
    k.key: k
    for k in (
        RecordKind(
            "conditions",
            m.Condition,
            f.ConditionForm,
            _("Conditions"),
            ("-onset_date", "-id"),
            ("icd10_code", "display", "onset_date", "status"),
        ),
        RecordKind(
            "allergies",
            m.Allergy,
            f.AllergyForm,
            _("Allergies"),
            ("-id",),
            ("substance", "category", "reaction", "severity"),
        ),
        RecordKind(
            "medications",
            m.Medication,
            f.MedicationForm,
            _("Medications"),
            ("status", "-start_date", "-id"),
            ("name", "dose", "unit", "route", "frequency", "start_date", "status"),
        ),
        RecordKind(
            "dispenses",
            m.Dispense,
            f.DispenseForm,
            _("Dispensings"),
            ("-when_handed_over", "-id"),
            ("when_handed_over", "name", "quantity", "quantity_unit", "days_supply"),
        ),
        RecordKind(
            "history",
            m.HistoryEntry,
            f.HistoryEntryForm,
            _("History"),
            ("kind", "-year", "-id"),
            ("kind", "description", "relation", "year"),
        ),
        RecordKind(
            "lifestyle",
            m.Lifestyle,
            f.LifestyleForm,
            _("Lifestyle"),
            ("-recorded_on", "-id"),
            ("recorded_on", "smoking", "alcohol", "exercise", "diet", "sleep_hours"),
        ),
        RecordKind(
            "visits",
            m.Encounter,
            f.EncounterForm,
            _("Visits"),
            ("-admitted_on", "-id"),
            ("admitted_on", "kind", "department", "attending", "diagnoses", "discharged_on"),
        ),
        RecordKind(
            "reports",
            m.Report,
            f.ReportForm,
            _("Reports"),
            ("-reported_on", "-id"),
            ("reported_on", "kind", "title", "file_name"),
        ),
        RecordKind(
            "caregivers",
            m.Caregiver,
            f.CaregiverForm,
            _("Caregivers and family"),
            ("-is_emergency_contact", "id"),
            ("name", "relation", "phone", "is_emergency_contact"),
        ),
        RecordKind(
            "consents",
            m.Consent,
            f.ConsentForm,
            _("Consents"),
            ("-decided_on", "-id"),
            ("purpose", "channel", "granted", "decided_on", "source"),
            write_action=Action.CONSENT_WRITE,
        ),
    )
}

KIND_OF_MODEL = {k.model: k for k in KINDS.values()}


def plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, FieldFile):
        return value.name or None
    return value


def serialise(obj: Model, fields: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"id": obj.pk}
    for name in fields:
        if name == "phones":  # the patient's numbers live in their own table
            data[name] = [p.number for p in obj.phones.all()]  # type: ignore[attr-defined]
            continue
        field = obj._meta.get_field(name)
        raw = getattr(obj, field.attname) if isinstance(field, ForeignKey) else getattr(obj, name)
        data[name] = plain(raw)
    for extra in ("version", "created_at", "updated_at"):
        data[extra] = plain(getattr(obj, extra))
    return data


def snapshot(obj: Model, fields: list[str]) -> dict[str, Any]:
    """What version history keeps: encrypted fields only as keyed digests, never plaintext."""
    data = serialise(obj, fields)
    for name in fields:
        if name == "phones":
            joined = ",".join(data[name])
            data[name] = f"#{blind_index('history:phones', joined)[:16]}" if joined else ""
            continue
        field = obj._meta.get_field(name)
        if isinstance(field, EncryptedTextField):
            value = getattr(obj, name)
            data[name] = f"#{blind_index('history:' + name, value)[:16]}" if value else ""
    data.pop("created_at", None)
    data.pop("updated_at", None)
    return data

"""Input of the vitals tab: a reading, a symptom-diary entry, an adverse drug reaction report
and a personal threshold. The forms read and type-check what staff typed; the services decide
what may be stored (observations/domain.py holds the limits of what is possible)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.kit.clock import utc_now
from careloop.observations import domain
from careloop.observations import models as om

# What staff enter by hand, in the order of the kind menu.
ENTRY_KINDS = ("bp", "glucose", "heart_rate", "weight", "spo2", "temperature", "hba1c")
KIND_LABELS = {
    "bp": _("Blood pressure"),
    "glucose": _("Glucose"),
    "hba1c": _("HbA1c"),
    "heart_rate": _("Heart rate"),
    "weight": _("Weight"),
    "spo2": _("SpO2"),
    "temperature": _("Temperature"),
    "steps": _("Steps"),
    "sleep": _("Sleep"),
}
# UCUM units as staff read them.
UNIT_LABELS = {
    "mm[Hg]": "mmHg",
    "/min": pgettext_lazy("unit", "/min"),
    "Cel": "°C",
    "/d": pgettext_lazy("unit", "steps/day"),
    "h": pgettext_lazy("unit", "h"),
}
GLUCOSE_UNITS = [("mmol/L", "mmol/L"), ("mg/dL", "mg/dL")]
CONTEXTS = [
    ("fasting", pgettext_lazy("glucose", "Fasting")),
    ("random", pgettext_lazy("glucose", "Random")),
    ("postprandial", pgettext_lazy("glucose", "After a meal")),
]
LOCAL_INPUT = "%Y-%m-%dT%H:%M"


def unit_label(unit: str) -> str:
    return str(UNIT_LABELS.get(unit, unit))


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format=LOCAL_INPUT, **kwargs)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class WallClockField(forms.Field):
    """A date and time as the clock on the wall reads it (naive; the form knows whose clock)."""

    widget = LocalDateTimeInput
    default_error_messages = {"invalid": _("Enter a date and time.")}  # noqa: RUF012

    def to_python(self, value: Any) -> datetime | None:
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        text = str(value or "").strip()
        if not text:
            return None
        for fmt in (LOCAL_INPUT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.strptime(text, fmt)  # noqa: DTZ007 - a wall-clock time
            except ValueError:
                continue
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


def local_now(zone: str) -> datetime:
    """Now on the patient's clock, to the minute (the default time of a new entry)."""
    return utc_now().astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0, tzinfo=None)


def _number(**attrs: Any) -> forms.FloatField:
    return forms.FloatField(
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", **attrs}),
    )


class _PatientTimeForm(forms.Form):
    """A form whose time field is on the patient's clock (naive in the form, zoned here)."""

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        self.zone = zone
        kwargs.setdefault("initial", {}).setdefault("effective", local_now(zone))
        super().__init__(*args, **kwargs)

    def _zoned(self, name: str = "effective") -> datetime | None:
        value = self.cleaned_data.get(name)
        if value is None:
            return None
        aware = value.replace(tzinfo=ZoneInfo(self.zone))
        if aware > utc_now():
            self.add_error(name, _("The time cannot be in the future."))
            return None
        return aware


class ReadingForm(_PatientTimeForm):
    kind = forms.ChoiceField(
        label=_("Reading"), choices=[(k, KIND_LABELS[k]) for k in ENTRY_KINDS], initial="bp"
    )
    systolic = _number(min="0", max="400", placeholder="120")
    diastolic = _number(min="0", max="300", placeholder="80")
    value = _number()
    unit = forms.ChoiceField(label=_("Unit"), choices=GLUCOSE_UNITS, required=False)
    context = forms.ChoiceField(
        label=pgettext_lazy("glucose", "When"), choices=CONTEXTS, required=False, initial="fasting"
    )
    effective = WallClockField(label=_("Time"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["systolic"].label = _("Systolic (mmHg)")
        self.fields["diastolic"].label = _("Diastolic (mmHg)")
        self.fields["value"].label = _("Value")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        kind = data.get("kind")
        if kind == "bp":
            self._bp(data)
        elif kind:
            self._single(kind, data)
        data["at"] = self._zoned()
        return data

    def _bp(self, data: dict[str, Any]) -> None:
        spec = domain.KINDS["bp"]
        sys_, dia = data.get("systolic"), data.get("diastolic")
        for name, value, (low, high) in (
            ("systolic", sys_, (spec.low, spec.high)),
            ("diastolic", dia, domain.DIASTOLIC),
        ):
            if value is None:
                if name not in self.errors:
                    self.add_error(name, _("Enter a number."))
            elif not low <= value <= high:
                self.add_error(name, _impossible(value, "mmHg", low, high))
        if sys_ is not None and dia is not None and "diastolic" not in self.errors:
            if dia >= sys_:
                self.add_error(
                    "diastolic", _("The diastolic value must be lower than the systolic.")
                )

    def _single(self, kind: str, data: dict[str, Any]) -> None:
        spec = domain.KINDS[kind]
        value = data.get("value")
        unit = (data.get("unit") or "mmol/L") if kind == "glucose" else spec.unit
        if kind == "glucose" and not data.get("context"):
            self.add_error("context", _("Choose when the glucose was measured."))
        if value is None:
            if "value" not in self.errors:
                self.add_error("value", _("Enter a number."))
            return
        factor, offset = domain.UNITS[kind][unit]
        low, high = (spec.low - offset) / factor, (spec.high - offset) / factor
        if not low <= value <= high:
            self.add_error("value", _impossible(value, unit_label(unit), low, high))

    def units_json(self) -> str:
        """The unit of the value field per kind (the page shows the one of the chosen kind)."""
        return json.dumps(
            {
                k: unit_label(domain.KINDS[k].unit)
                for k in ENTRY_KINDS
                if k not in ("bp", "glucose")
            },
            ensure_ascii=False,
        )

    def item(self) -> dict[str, Any]:
        """The reading as observations.services.record_one takes it."""
        d = self.cleaned_data
        when: datetime = d["at"]
        item: dict[str, Any] = {"code": d["kind"], "effective": when.isoformat()}
        if d["kind"] == "bp":
            item.update(systolic=d["systolic"], diastolic=d["diastolic"])
        else:
            item["value"] = d["value"]
            if d["kind"] == "glucose":
                item.update(unit=d.get("unit") or "mmol/L", context=d.get("context") or "random")
        return item


def _impossible(value: float, unit: str, low: float, high: float) -> str:
    return str(
        _("%(value)s %(unit)s is not a possible reading; enter a value from %(low)s to %(high)s.")
        % {"value": f"{value:g}", "unit": unit, "low": f"{low:g}", "high": f"{high:.4g}"}
    )


# Where a refusal of the service is shown, by the field it names.
READING_FIELDS = {
    "code": "kind",
    "time_zone": "effective",
    "source": "kind",
    "device": "kind",
    "patient": "kind",
}


class SymptomForm(_PatientTimeForm):
    """A symptom-diary entry (its ids differ from the reading form's on the same tab)."""

    symptom = forms.CharField(label=_("Symptom"), max_length=100)
    severity = forms.IntegerField(
        label=_("Severity (0–10)"),
        min_value=0,
        max_value=10,
        initial=3,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    effective = WallClockField(label=_("Time"))
    note = forms.CharField(label=_("Note"), max_length=1000, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "symptom-%s")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        data["at"] = self._zoned()
        return data


OTHER_DRUG = "other"


class ReactionForm(forms.Form):
    medication = forms.ChoiceField(label=_("Medicine"), required=False)
    drug = forms.CharField(label=_("Or type the drug"), max_length=200, required=False)
    symptom = forms.CharField(label=_("Reaction"), max_length=200)
    severity = forms.TypedChoiceField(
        label=_("Severity"), choices=om.AdverseReaction.Severity.choices, coerce=int, initial=1
    )
    onset = forms.DateField(label=_("Onset"), widget=DateInput())
    note = forms.CharField(label=_("Note"), max_length=1000, required=False)

    def __init__(self, *args: Any, medications: list[tuple[int, str]], today: date, **kw: Any):
        kw.setdefault("initial", {}).setdefault("onset", today)
        kw.setdefault("auto_id", "reaction-%s")
        super().__init__(*args, **kw)
        menu = cast(forms.ChoiceField, self.fields["medication"])
        menu.choices = [
            ("", "—"),
            *[(str(pk), name) for pk, name in medications],
            (OTHER_DRUG, _("Another drug (type it)")),
        ]
        self.fields["drug"].widget.attrs["placeholder"] = _("e.g. amlodipine")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        chosen = data.get("medication") or ""
        data["medication_id"] = int(chosen) if chosen.isdigit() else None
        if data["medication_id"] is None and not (data.get("drug") or "").strip():
            self.add_error("drug", _("Choose one of the patient's medicines or type the drug."))
        return data


class ThresholdForm(forms.Form):
    """One rule's personal thresholds: a number per parameter; all empty removes them."""

    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)

    def __init__(
        self,
        *args: Any,
        params: dict[str, float],
        current: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("auto_id", "threshold-%s")
        super().__init__(*args, **kw)
        self.param_names = list(params)
        for name, default in params.items():
            field = forms.FloatField(
                label=name,
                required=False,
                widget=forms.NumberInput(
                    attrs={"step": "any", "inputmode": "decimal", "placeholder": f"{default:g}"}
                ),
            )
            if current and name in current:
                field.initial = current[name]
            self.fields[f"p_{name}"] = field

    def params(self) -> dict[str, float]:
        return {
            name: self.cleaned_data[f"p_{name}"]
            for name in self.param_names
            if self.cleaned_data.get(f"p_{name}") is not None
        }

    def param_fields(self) -> list[Any]:
        return [self[f"p_{name}"] for name in self.param_names]

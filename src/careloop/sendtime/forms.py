"""The send-time settings form and the report's period."""

from __future__ import annotations

from datetime import time
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.sendtime import models as m

WINDOW_LABELS = {
    "measurement": _("Measurements"),
    "questionnaire": _("Questionnaires"),
    "education": _("Education"),
}


def _hhmm(value: time | None) -> str:
    return f"{value:%H:%M}" if value is not None else ""


class SettingsForm(forms.Form):
    enabled = forms.BooleanField(label=_("Learn send times every hour"), required=False)
    control_percent = forms.IntegerField(
        label=_("Control group (percent of patients)"),
        min_value=0,
        max_value=90,
        help_text=_("These patients keep the planned time, so the lift can be measured."),
    )
    prior_strength = forms.FloatField(
        label=_("Prior strength"),
        min_value=0,
        max_value=100,
        help_text=_(
            "How many reminders' worth of the organisation's experience a new patient starts from."
        ),
    )
    measurement_from = forms.TimeField(label=_("from"), required=False)
    measurement_until = forms.TimeField(label=_("until"), required=False)
    questionnaire_from = forms.TimeField(label=_("from"), required=False)
    questionnaire_until = forms.TimeField(label=_("until"), required=False)
    education_from = forms.TimeField(label=_("from"), required=False)
    education_until = forms.TimeField(label=_("until"), required=False)
    medication_minutes = forms.IntegerField(
        label=_("Medication: minutes either side of the dose time"),
        required=False,
        min_value=0,
        max_value=m.MAX_AROUND_MINUTES,
        help_text=_("Whole hours within this are tried. Leave empty to keep dose times."),
    )

    @classmethod
    def initial_from(cls, settings: m.Settings) -> dict[str, Any]:
        windows = settings.windows or {}
        initial: dict[str, Any] = {
            "enabled": settings.enabled,
            "control_percent": round(settings.control_share * 100),
            "prior_strength": settings.prior_strength,
            "medication_minutes": windows.get(m.MEDICATION),
        }
        for kind in m.WINDOW_KINDS:
            pair = windows.get(kind) or ["", ""]
            initial[f"{kind}_from"], initial[f"{kind}_until"] = pair[0], pair[1]
        return initial

    def windows(self) -> list[tuple[str, Any, forms.BoundField, forms.BoundField]]:
        return [
            (kind, WINDOW_LABELS[kind], self[f"{kind}_from"], self[f"{kind}_until"])
            for kind in m.WINDOW_KINDS
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        windows: dict[str, Any] = {}
        for kind in m.WINDOW_KINDS:
            start, end = data.get(f"{kind}_from"), data.get(f"{kind}_until")
            if f"{kind}_from" in self.errors or f"{kind}_until" in self.errors:
                continue
            if (start is None) != (end is None):
                self.add_error(
                    f"{kind}_until" if end is None else f"{kind}_from",
                    _("Give both times, or leave both empty to keep the planned time."),
                )
                continue
            if start is not None:
                windows[kind] = [_hhmm(start), _hhmm(end)]
        minutes = data.get("medication_minutes")
        if minutes is not None:
            windows[m.MEDICATION] = minutes
        try:
            m.validate_windows(windows)
        except ValidationError as exc:
            for kind, messages in exc.message_dict.items():
                field = "medication_minutes" if kind == m.MEDICATION else f"{kind}_until"
                for message in messages:
                    self.add_error(field, message)
        data["windows"] = windows
        return data

    def apply(self, settings: m.Settings) -> m.Settings:
        data = self.cleaned_data
        settings.enabled = bool(data["enabled"])
        settings.control_share = data["control_percent"] / 100
        settings.prior_strength = float(data["prior_strength"])
        settings.windows = data["windows"]
        return settings


class PeriodForm(forms.Form):
    start = forms.DateField(label=pgettext_lazy("period", "From"), required=False)
    end = forms.DateField(label=pgettext_lazy("period", "Until"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end of the period is before its start."))
        if start and end and (end - start).days > 366 * 2:
            self.add_error("end", _("Choose a period of at most two years."))
        return data

"""Validation of clinic schedules, shared by the pages and the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.dates import WEEKDAYS as DJANGO_WEEKDAYS
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from careloop.appointments import domain

# Django's own weekday names (0 = Monday), translated by Django's catalogue.
WEEKDAY_CHOICES = [(str(i + 1), DJANGO_WEEKDAYS[i]) for i in range(7)]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class ScheduleForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("of a thing", "name"), max_length=200)
    department = forms.TypedChoiceField(label=_("Department"), coerce=int)
    doctor = forms.TypedChoiceField(label=_("doctor"), coerce=int, required=False, empty_value=None)
    weekdays = forms.TypedMultipleChoiceField(
        label=_("weekdays"),
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
    )
    sessions = forms.CharField(
        label=_("sessions"),
        max_length=200,
        help_text=_("Start-end of each session, e.g. 08:00-11:30, 13:30-16:30."),
    )
    slot_minutes = forms.IntegerField(
        label=_("minutes per slot"),
        min_value=domain.MIN_SLOT_MINUTES,
        max_value=domain.MAX_SLOT_MINUTES,
        initial=30,
    )
    capacity = forms.IntegerField(
        label=_("places per slot"), min_value=1, max_value=domain.MAX_CAPACITY, initial=1
    )
    valid_from = forms.DateField(label=_("valid from"), widget=DateInput())
    valid_to = forms.DateField(label=_("valid until"), widget=DateInput(), required=False)
    active = forms.BooleanField(label=_("active"), required=False, initial=True)

    def __init__(
        self,
        *args: Any,
        departments: list[tuple[int, str]],
        doctors: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", "—"), *departments]  # type: ignore[attr-defined]
        self.fields["doctor"].choices = [("", "—"), *doctors]  # type: ignore[attr-defined]

    def clean_sessions(self) -> list[dict[str, str]]:
        try:
            return [s.as_dict() for s in domain.parse_sessions(self.cleaned_data["sessions"])]
        except domain.PatternError as exc:
            raise forms.ValidationError(str(exc.message)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("valid_from"), data.get("valid_to")
        if start and end and end < start:
            self.add_error("valid_to", _("The end date must not be before the start date."))
        if all(data.get(k) for k in ("weekdays", "sessions", "slot_minutes", "capacity")):
            try:
                domain.pattern_of(
                    data["weekdays"],
                    domain.parse_sessions(domain.sessions_text(data["sessions"])),
                    data["slot_minutes"],
                    data["capacity"],
                )
            except domain.PatternError as exc:
                self.add_error(exc.field, str(exc.message))
        return data

"""The report e-mail schedule form (validation shared by the page and the services)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Staff
from careloop.analytics.reports.models import LANGUAGE_CHOICES, LAST_DAY


class StaffChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        name = obj.display_name or obj.username
        return f"{name} <{obj.email}>"


class ScheduleForm(forms.Form):
    active = forms.BooleanField(label=_("Send the report by e-mail every month"), required=False)
    day = forms.TypedChoiceField(
        label=_("Day of the month"),
        choices=[(d, str(d)) for d in range(1, LAST_DAY + 1)],
        coerce=int,
        help_text=_(
            "On this day (in the organisation's time zone) the report of the previous month"
            " is sent."
        ),
    )
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGE_CHOICES)
    extra_recipients = StaffChoice(
        label=_("Other recipients"),
        queryset=Staff.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The department heads always receive it. Only staff of the organisation."),
    )

    def __init__(self, *args: Any, candidates: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["extra_recipients"]
        assert isinstance(field, forms.ModelMultipleChoiceField)  # noqa: S101 - narrows the type
        field.queryset = candidates if candidates is not None else Staff.objects.none()

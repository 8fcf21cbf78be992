"""Forms of the onboarding pages: the upload, and the mapping of columns to patient fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.onboarding import reading


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("Patient list"),
        help_text=_("CSV (UTF-8 or GB 18030, as Excel saves it) or XLSX; one patient per row."),
    )
    department = forms.ModelChoiceField(
        label=_("Department for rows that name none"),
        queryset=Department.objects.none(),
        required=False,
    )

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
        if not actor.is_org_wide:
            qs = qs.filter(pk__in=actor.department_ids)
        self.fields["department"].queryset = qs.order_by("code")  # type: ignore[attr-defined]
        self.fields["file"].widget.attrs.update(
            {"data-testid": "onboarding-file", "accept": ".csv,.xlsx,text/csv"}
        )
        self.fields["department"].widget.attrs["data-testid"] = "onboarding-department"


class MappingForm(forms.Form):
    """One choice per column of the file: the patient field it holds, or nothing."""

    def __init__(self, *args: Any, headers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _("— not imported —")), *reading.FIELDS.items()]
        for i, header in enumerate(headers):
            self.fields[f"col_{i}"] = forms.ChoiceField(
                label=header or f"#{i + 1}", choices=choices, required=False
            )
            self.fields[f"col_{i}"].widget.attrs["data-testid"] = f"map-{i}"

    def mapping(self) -> dict[str, str]:
        return {
            name.removeprefix("col_"): value
            for name, value in self.cleaned_data.items()
            if name.startswith("col_") and value
        }

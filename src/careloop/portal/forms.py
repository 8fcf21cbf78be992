"""Portal sign-in and Me forms (validation only; the services do the work)."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from careloop.kit.identifiers import normalise_phone
from careloop.portal.models import PortalProxy

_MOBILE = re.compile(r"^1\d{10}$")


class PhoneForm(forms.Form):
    phone = forms.CharField(
        label=_("Mobile phone number"),
        max_length=30,
        widget=forms.TextInput(
            attrs={"inputmode": "tel", "autocomplete": "tel", "placeholder": "138 0000 0000"}
        ),
    )

    def clean_phone(self) -> str:
        value = normalise_phone(self.cleaned_data["phone"])
        if not value or not _MOBILE.match(value):
            raise forms.ValidationError(_("Enter the mobile number your clinic has for you."))
        return value


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("The 6-digit code from the SMS"),
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "pattern": "[0-9 ]*",
                "maxlength": "12",
            }
        ),
    )

    def clean_code(self) -> str:
        value = re.sub(r"\s+", "", self.cleaned_data["code"])
        if not re.fullmatch(r"\d{6}", value):
            raise forms.ValidationError(_("The code has 6 digits."))
        return value


class StaffGrantForm(forms.Form):
    caregiver = forms.TypedChoiceField(label=_("Family member"), coerce=int)
    source = forms.ChoiceField(
        label=_("How the patient consented"),
        choices=[
            (PortalProxy.ConsentSource.PAPER, PortalProxy.ConsentSource.PAPER.label),
            (PortalProxy.ConsentSource.VERBAL, PortalProxy.ConsentSource.VERBAL.label),
        ],
    )
    consent = forms.BooleanField(label=_("The patient consented to this access"))
    notify = forms.BooleanField(label=_("SMS the family member about missed doses"), required=False)

    def __init__(self, *args: object, caregivers: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["caregiver"].choices = caregivers  # type: ignore[attr-defined]

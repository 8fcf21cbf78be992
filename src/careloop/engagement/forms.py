"""Validation of engagement input, shared by the staff pages, the portal and the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from careloop.engagement import domain
from careloop.engagement import models as em
from careloop.portal import events


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def check_personal_data(text: str) -> None:
    """Refuse text that contains a phone number, an ID card number or an e-mail address."""
    found = domain.personal_data_problems(text)
    if found:
        what = ", ".join(str(domain.PERSONAL_DATA_LABELS[k]) for k in found)
        raise forms.ValidationError(
            _("For your safety, remove %(what)s before posting. Your care team can reach you "
              "through Messages.") % {"what": what},
            code="personal_data",
        )  # fmt: skip


class RewardForm(forms.Form):
    name = forms.CharField(label=_("name"), max_length=80)
    description = forms.CharField(
        label=_("description"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    cost = forms.IntegerField(label=_("points cost"), min_value=1, max_value=1_000_000)
    stock = forms.IntegerField(label=_("stock"), min_value=0, max_value=1_000_000)
    active = forms.BooleanField(label=_("active"), required=False, initial=True)


class PointRulesForm(forms.Form):
    """Points and daily cap for each kind of patient event."""

    def __init__(self, *args: Any, initial_rules: dict[str, domain.Rule], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in events.KINDS:
            rule = initial_rules[kind]
            label = domain.EVENT_LABELS[kind]
            self.fields[f"{kind}_points"] = forms.IntegerField(
                label=_("%(event)s: points") % {"event": label},
                min_value=0, max_value=1000, initial=rule.points,
            )  # fmt: skip
            self.fields[f"{kind}_cap"] = forms.IntegerField(
                label=_("%(event)s: daily cap") % {"event": label},
                min_value=0, max_value=10_000, initial=rule.daily_cap,
                help_text=_("0: no cap"),
            )  # fmt: skip

    def rules(self) -> dict[str, domain.Rule]:
        data = self.cleaned_data
        return {
            k: domain.Rule(points=data[f"{k}_points"], daily_cap=data[f"{k}_cap"])
            for k in events.KINDS
        }


class ProfileForm(forms.Form):
    nickname = forms.CharField(
        label=_("Nickname"),
        min_length=2,
        max_length=24,
        help_text=_("Shown instead of your name. Do not use your real name."),
    )
    on_leaderboard = forms.BooleanField(label=_("Show me on the leaderboard"), required=False)

    def __init__(self, *args: Any, patient_name: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patient_name = patient_name

    def clean_nickname(self) -> str:
        nickname = " ".join(str(self.cleaned_data["nickname"]).split())
        name = "".join(self.patient_name.split())
        squeezed = "".join(nickname.split())
        if name and (name in squeezed or (len(squeezed) >= 2 and squeezed in name)):
            raise forms.ValidationError(_("Choose a nickname that is not your name."))
        check_personal_data(nickname)
        return nickname


class PostForm(forms.Form):
    body = forms.CharField(
        label=_("Your post"),
        max_length=em.Post.MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": em.Post.MAX_LENGTH}),
    )

    def clean_body(self) -> str:
        body = str(self.cleaned_data["body"]).strip()
        if not body:
            raise forms.ValidationError(_("Write something first."))
        check_personal_data(body)
        return body


class QuestionForm(forms.Form):
    body = forms.CharField(
        label=_("Your question"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": 500}),
    )

    def clean_body(self) -> str:
        body = str(self.cleaned_data["body"]).strip()
        check_personal_data(body)
        return body


class ReportForm(forms.Form):
    reason = forms.CharField(label=_("What is wrong with this post?"), max_length=300)


class ModerateForm(forms.Form):
    DECISIONS = [
        ("approve", _("Approve")),
        ("hide", _("Hide")),
        ("remove", _("Remove")),
    ]
    decision = forms.ChoiceField(choices=DECISIONS)
    reason = forms.CharField(label=_("reason"), max_length=200, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") in ("hide", "remove") and not data.get("reason", "").strip():
            self.add_error("reason", _("Give a reason for hiding or removing a post."))
        return data


class CommunityForm(forms.Form):
    name = forms.CharField(label=_("name"), max_length=80)
    condition = forms.ChoiceField(label=_("condition"), choices=em.Community.Condition.choices)
    description = forms.CharField(
        label=_("description"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    icd10_prefixes = forms.CharField(
        label=_("ICD-10 prefixes"),
        max_length=200,
        required=False,
        help_text=_("Comma separated, e.g. I10, I11. Empty: every patient may join."),
    )
    moderation = forms.ChoiceField(
        label=_("moderation"),
        choices=em.Community.Moderation.choices,
        initial=em.Community.Moderation.PRE,
    )
    active = forms.BooleanField(label=_("active"), required=False, initial=True)

    def clean_icd10_prefixes(self) -> str:
        raw = str(self.cleaned_data.get("icd10_prefixes") or "")
        parts = [p.strip().upper() for p in raw.replace("，", ",").split(",") if p.strip()]
        for part in parts:
            if not (part[:1].isalpha() and part[1:].replace(".", "").isalnum() and len(part) <= 8):
                raise forms.ValidationError(
                    _("%(code)s is not an ICD-10 code prefix.") % {"code": part}
                )
        return ", ".join(parts)


class SessionForm(forms.Form):
    community = forms.TypedChoiceField(label=_("community"), coerce=int)
    expert = forms.TypedChoiceField(label=_("expert"), coerce=int)
    topic = forms.CharField(label=_("topic"), max_length=120)
    starts_at = forms.DateTimeField(label=_("starts"), widget=DateTimeInput())
    ends_at = forms.DateTimeField(label=_("ends"), widget=DateTimeInput())

    def __init__(
        self,
        *args: Any,
        communities: list[tuple[int, str]],
        experts: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["community"].choices = communities  # type: ignore[attr-defined]
        self.fields["expert"].choices = experts  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", _("The session must end after it starts."))
        return data


class AnswerForm(forms.Form):
    answer = forms.CharField(
        label=_("Answer"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


def errors_of(form: forms.Form) -> dict[str, list[str]]:
    return {field: [str(e) for e in errs] for field, errs in form.errors.items()}

"""The form that creates an experiment or changes a draft."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django import forms
from django.apps import apps
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import Department
from careloop.careplans.models import ActivityKind
from careloop.experiments import design
from careloop.experiments.models import Experiment, Factor, Outcome, Population
from careloop.kit.errors import ValidationFailed

KIND_CHOICES = [
    *[(k.value, k.label) for k in ActivityKind if k != ActivityKind.CALL],
    ("appointment", _("Appointment reminder")),
]


class ExperimentForm(forms.Form):
    code = forms.SlugField(label=_("code"), max_length=50, help_text=_("Letters, digits, - or _."))
    name = forms.CharField(label=_("name"), max_length=200)
    hypothesis = forms.CharField(
        label=_("hypothesis"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    factor = forms.ChoiceField(label=_("factor"), choices=Factor.choices)
    kinds = forms.MultipleChoiceField(
        label=_("reminders it applies to"),
        choices=KIND_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )
    population = forms.ChoiceField(label=_("population"), choices=Population.choices)
    department = forms.ModelChoiceField(
        label=_("department"), queryset=Department.objects.none(), required=False
    )
    segment_code = forms.CharField(label=_("segment code"), max_length=50, required=False)
    arms = forms.CharField(
        label=_("arms"),
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "mono"}),
        help_text=_(
            'A JSON list; each arm: {"code", "name", "weight" (1–10), "control": true for '
            'exactly one arm, "params"}. Params per factor: wording {"wording": {"zh-hans": '
            '"…{link}", "en": "…{link}"}} with the placeholders {name} {time} {link} {clinic}; '
            'channel {"channel": "sms"}; time {"hour": 19, "minute": 0}; cadence {"every": 2}.'
        ),
    )
    primary_outcome = forms.ChoiceField(label=_("primary outcome"), choices=Outcome.choices)
    min_per_arm = forms.IntegerField(
        label=_("patients per arm before any early stop"),
        min_value=5,
        max_value=100_000,
        initial=50,
    )
    max_per_arm = forms.IntegerField(
        label=_("patients per arm at completion"), min_value=5, max_value=100_000, initial=200
    )
    looks = forms.IntegerField(
        label=_("planned analyses"), min_value=1, max_value=10, initial=4,
        help_text=_("Interim analyses, the final one included."),
    )  # fmt: skip
    alpha = forms.FloatField(
        label=_("significance level"), min_value=0.001, max_value=0.2, initial=0.05
    )
    end_date = forms.DateField(
        label=_("last day"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    seed = forms.IntegerField(
        label=_("random seed"), min_value=0, max_value=2**31 - 1, required=False,
        help_text=_("Leave empty to draw one; the same seed gives the same randomisation."),
    )  # fmt: skip

    def __init__(self, *args: Any, organisation_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organisation_id = organisation_id
        field: Any = self.fields["department"]
        field.queryset = Department.objects.filter(organisation_id=organisation_id)

    @classmethod
    def initial_for(cls, exp: Experiment | None, factor: str = Factor.WORDING) -> dict[str, Any]:
        if exp is None:
            return {
                "factor": factor,
                "kinds": ["medication"],
                "arms": json.dumps(design.example_arms(factor), ensure_ascii=False, indent=2),
                "min_per_arm": 50,
                "max_per_arm": 200,
                "looks": 4,
                "alpha": 0.05,
            }
        return {
            "code": exp.code,
            "name": exp.name,
            "hypothesis": exp.hypothesis,
            "factor": exp.factor,
            "kinds": list(exp.kinds),
            "population": exp.population,
            "department": exp.department_id,
            "segment_code": exp.segment_code,
            "arms": json.dumps(exp.arms, ensure_ascii=False, indent=2),
            "primary_outcome": exp.primary_outcome,
            "min_per_arm": exp.min_per_arm,
            "max_per_arm": exp.max_per_arm,
            "looks": exp.looks,
            "alpha": exp.alpha,
            "end_date": exp.end_date,
            "seed": exp.seed,
        }

    def _quiet(self) -> tuple[Any, Any]:
        from careloop.reminders.services import settings_for

        settings = settings_for(self.organisation_id)
        return settings.quiet_start, settings.quiet_end

    def clean_arms(self) -> list[dict[str, Any]]:
        raw = self.cleaned_data.get("arms") or ""
        try:
            arms = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                _("The arms are not valid JSON (line {line}, column {column}).").format(
                    line=exc.lineno, column=exc.colno
                )
            ) from exc
        factor = self.data.get("factor") or ""
        if factor not in Factor.values:
            return []  # the factor's own error says what is wrong
        try:
            return design.check_arms(factor, arms, self._quiet())
        except ValidationFailed as exc:
            raise forms.ValidationError(list(exc.details.get("arms", []))) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        population = data.get("population")
        if population == Population.DEPARTMENT and not data.get("department"):
            self.add_error("department", _("Choose the department."))
        if population == Population.SEGMENT:
            code = (data.get("segment_code") or "").strip()
            if not code:
                self.add_error("segment_code", _("Give the segment's code."))
            elif not _segment_exists(self.organisation_id, code):
                self.add_error("segment_code", _("There is no segment with this code."))
        low, high = data.get("min_per_arm"), data.get("max_per_arm")
        if low is not None and high is not None and high < low:
            self.add_error("max_per_arm", _("Must be at least the patients before an early stop."))
        if data.get("seed") is None:
            data["seed"] = secrets.randbelow(2**31 - 1)
        if population != Population.DEPARTMENT:
            data["department"] = None
        if population != Population.SEGMENT:
            data["segment_code"] = ""
        data["hypothesis"] = data.get("hypothesis") or ""
        return data


def _segment_exists(organisation_id: int, code: str) -> bool:
    """Whether the segments app knows the code (shipped defaults or the organisation's own)."""
    try:
        segment = apps.get_model("segments", "Segment")
    except LookupError:
        return False
    from django.db.models import Q

    return bool(
        segment.objects.filter(
            Q(organisation_id=organisation_id) | Q(organisation__isnull=True), code=code
        ).exists()
    )

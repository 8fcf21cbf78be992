"""Build or edit a questionnaire in Django admin: the FHIR Questionnaire JSON is edited directly
and checked by the same engine the import uses (errors by element path); url, version, title,
language and scoring are taken from the JSON. Organisation admins edit their own
organisation's questionnaires; the shipped ones are not listed here (copy one by importing it).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgScoped
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.questionnaires import fhir, scoring, services
from careloop.questionnaires import models as qm

STARTER = {
    "resourceType": "Questionnaire",
    "status": "draft",
    "language": "zh-CN",
    "title": "",
    "item": [{"linkId": "q1", "type": "string", "text": "", "required": True}],
}


class QuestionnaireForm(forms.ModelForm):  # type: ignore[type-arg]
    organisation_id: int | None = None  # the admin's organisation, set by get_form
    resource = forms.CharField(
        label=_("FHIR Questionnaire (JSON)"),
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false"}),
        help_text=_(
            "Item types: choice, integer, decimal, string, text, date, boolean, group, display, "
            "quantity; enableWhen, required, repeats (choice), answerOption with valueCoding "
            "(scores in the ordinalValue extension), maxLength, minValue/maxValue."
        ),
    )

    class Meta:
        model = qm.Questionnaire
        fields = ("status",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source = self.instance.resource if self.instance.pk else STARTER
        self.initial["resource"] = json.dumps(source, ensure_ascii=False, indent=1)
        self.definition: fhir.Definition | None = None

    def clean_resource(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cleaned_data["resource"])
        except ValueError as exc:
            raise ValidationError(_("This is not JSON: %(e)s"), params={"e": exc}) from None
        try:
            self.definition = services.parse(data)
        except fhir.InvalidResource as exc:
            raise ValidationError(
                [f"{path}: {'; '.join(problems)}" for path, problems in exc.errors.items()]
            ) from None
        if not self.definition.url:
            raise ValidationError(_("url: a canonical URL is required"))
        return dict(data)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        d = self.definition
        if d is not None:
            org = self.instance.organisation_id if self.instance.pk else self.organisation_id
            clash = (
                services.same_organisation(org)
                .filter(url=d.url, version=d.version)
                .exclude(pk=self.instance.pk)
            )
            if clash.exists():
                raise ValidationError(_("This url and version exist already."))
        return cleaned


@admin.register(qm.Questionnaire)
class QuestionnaireAdmin(OrgScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    form = QuestionnaireForm
    list_display = ("title", "version", "status", "instrument", "url")
    list_filter = ("status", "instrument")
    search_fields = ("title", "url")

    def get_queryset(self, request: HttpRequest) -> QuerySet[qm.Questionnaire]:
        qs: QuerySet[qm.Questionnaire] = super().get_queryset(request)
        return qs.filter(organisation__isnull=False)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        assert issubclass(form, QuestionnaireForm)  # noqa: S101 - Django builds it from `form`
        form.organisation_id = getattr(request.user, "organisation_id", None)
        return form

    def save_model(
        self, request: HttpRequest, obj: qm.Questionnaire, form: Any, change: bool
    ) -> None:
        d: fhir.Definition = form.definition
        resource = {**form.cleaned_data["resource"], "status": obj.status}
        if not change:
            obj.organisation_id = getattr(request.user, "organisation_id", None)
        obj.resource = resource
        obj.url = d.url[:255]
        obj.version = d.version[:40]
        obj.name = d.name[:120]
        obj.title = d.title[:200]
        obj.language = d.language[:20]
        obj.instrument = scoring.instrument_of(d)
        obj.updated_at = utc_now()
        super().save_model(request, obj, form, change)
        audit.record(
            Actor.from_request(request, channel="admin"),
            "questionnaire.edit" if change else "questionnaire.create",
            obj=obj,
            detail={"url": obj.url, "version": obj.version},
        )

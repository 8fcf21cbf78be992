"""Django admin for plan templates and enrolment rules, scoped to the admin's organisation.

Shared templates (no organisation) are read-only for organisation admins, who copy one into
their organisation to change it. A template is saved through ``services.save_template`` with
its activities, so every change bumps the version and replans the future of active enrolments.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgInline, OrgScoped
from careloop.accounts.models import Department, Organisation
from careloop.audit import services as audit
from careloop.careplans import domain, services
from careloop.careplans import models as cm
from careloop.kit.errors import NotFound
from careloop.patients import models as pm

ICD10_PREFIX = re.compile(r"^[A-Z](\d{1,2}(\.[0-9A-Za-z]{1,4})?)?$")
JSON_ACTIVITY_FIELDS = ("schedule", "channels", "escalation", "applicability")


def _org_id(request: HttpRequest) -> int | None:
    return getattr(request.user, "organisation_id", None)


def _record(request: HttpRequest, action: str, obj: Any, detail: dict[str, Any]) -> None:
    audit.record(Actor.from_request(request, channel="admin"), action, obj=obj, detail=detail)


# --- plan templates ----------------------------------------------------------------------------


_EMPTY: dict[str, Any] = {"channels": [], "escalation": [], "schedule": {}, "applicability": {}}


def _activity_spec(data: dict[str, Any]) -> dict[str, Any]:
    """An activity's definition, as in a plan file, from the cleaned form input."""
    spec: dict[str, Any] = {"code": data.get("code")}
    for name in services.ACTIVITY_FIELDS:
        value = data.get(name)
        spec[name] = _EMPTY.get(name, "") if value is None else value
    return spec


class ActivityForm(forms.ModelForm):
    """One activity; checked by the same rules as the plan files (``validate_activity``)."""

    class Meta:
        model = cm.PlanActivity
        fields = (
            "position",
            "code",
            "kind",
            "title",
            "title_en",
            "schedule",
            "channels",
            "escalation",
            "applicability",
            "measurement",
            "call_by",
        )
        widgets = {
            name: forms.Textarea(attrs={"rows": 2, "cols": 60}) for name in JSON_ACTIVITY_FIELDS
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        spec = _activity_spec(data)
        for field, problems in services.validate_activity(spec).items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)
        if not isinstance(spec["applicability"], dict):
            self.add_error("applicability", _("Enter an object, e.g. {}."))
        return data


class ActivityFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        codes: set[str] = set()
        live = 0
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            live += 1
            code = data.get("code")
            if code in codes:
                form.add_error("code", _("Two activities of the plan have this code."))
            codes.add(code)
        if live == 0:
            raise ValidationError(_("A plan needs at least one activity."))


class ActivityInline(OrgInline):
    model = cm.PlanActivity
    form = ActivityForm
    formset = ActivityFormSet
    extra = 0

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0

    def _editable(self, request: HttpRequest, obj: Any) -> bool:
        return super().has_change_permission(request, obj) and _may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)


def _may_edit(request: HttpRequest, tpl: Any) -> bool:
    """Shared templates are read-only except for superusers."""
    if tpl is None or request.user.is_superuser:
        return True
    return tpl.organisation_id is not None and tpl.organisation_id == _org_id(request)


class TemplateForm(forms.ModelForm):
    anchor = forms.ChoiceField(
        label=gettext_lazy("anchor"),
        choices=[(a, a) for a in domain.ANCHORS],
        initial="enrolment",
        help_text=gettext_lazy("What day offsets count from: enrolment, discharge or last_visit."),
    )
    # Set by the admin: the organisation the template is saved in (None: shared).
    target_organisation: Organisation | None = None

    class Meta:
        model = cm.PlanTemplate
        fields = (
            "code",
            "name",
            "name_en",
            "description",
            "description_en",
            "anchor",
            "applicability",
            "active",
        )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        if self.instance.pk is None:
            org = self.target_organisation
            if cm.PlanTemplate.objects.filter(organisation=org, code=code).exists():
                raise ValidationError(_("A plan with this code exists already."))
        return code

    def clean_applicability(self) -> Any:
        value = self.cleaned_data.get("applicability")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError(_("Enter an object, e.g. {}."))
        return value


@admin.register(cm.PlanTemplate)
class PlanTemplateAdmin(OrgScoped, admin.ModelAdmin):
    form = TemplateForm
    inlines = [ActivityInline]
    list_display = ("name", "code", "version", "is_shared", "active", "updated_at")
    list_filter = ("active",)
    search_fields = ("code", "name", "name_en")
    actions = ["copy_to_organisation"]
    change_form_template = "admin/careplans/plantemplate/change_form.html"

    @admin.display(boolean=True, description=gettext_lazy("shared"))
    def is_shared(self, obj: cm.PlanTemplate) -> bool:
        return obj.organisation_id is None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(Q(organisation_id=_org_id(request)) | Q(organisation__isnull=True))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _may_edit(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # save_template finds a template by its code: the code of a saved one stays.
        return ("code", "version", "updated_at") if obj else ("version",)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        if obj is not None:
            target = obj.organisation
        elif request.user.is_superuser:
            target = None
        else:
            target = Organisation.objects.filter(pk=_org_id(request) or 0).first()
        return type(form.__name__, (form,), {"target_organisation": target})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing yet: the template is saved with its activities in ``save_related``."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = form.cleaned_data
        instance = form.instance
        activities = []
        for formset in formsets:
            rows = [
                f.cleaned_data
                for f in formset.forms
                if getattr(f, "cleaned_data", None) and not f.cleaned_data.get("DELETE")
            ]
            rows.sort(key=lambda r: r.get("position") or 0)
            activities += [_activity_spec(row) for row in rows]
        spec = {
            "code": instance.code if change else data["code"],
            "name": data["name"],
            "name_en": data.get("name_en", ""),
            "description": data.get("description", ""),
            "description_en": data.get("description_en", ""),
            "anchor": data.get("anchor") or "enrolment",
            "applicability": data.get("applicability") or {},
            "active": bool(data.get("active")),
            "activities": activities,
        }
        stored = cm.PlanTemplate.objects.filter(pk=instance.pk).first() if change else None
        if stored is not None and spec == services.template_spec(stored):
            return  # nothing changed: the version stays
        tpl, outcome = services.save_template(spec, organisation=form.target_organisation)
        for name in ("pk", "id", "version", "organisation_id", "source_digest", "updated_at"):
            setattr(instance, name, getattr(tpl, name))
        _record(
            request,
            f"careplan.template.{outcome}",
            tpl,
            {"code": tpl.code, "version": tpl.version},
        )

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        # The inline formsets were not saved by Django (save_template saved the rows).
        return super().construct_change_message(request, form, [], add)

    # --- copy a shared template --------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:object_id>/copy/",
                self.admin_site.admin_view(self.copy_view),
                name="careplans_plantemplate_copy",
            )
        ]
        return extra + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        tpl = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        extra["can_copy"] = bool(
            tpl is not None
            and tpl.organisation_id is None
            and _org_id(request) is not None
            and self.has_add_permission(request)
        )
        return super().change_view(request, object_id, form_url, extra)

    def _copy(self, request: HttpRequest, tpl: cm.PlanTemplate) -> cm.PlanTemplate:
        org = Organisation.objects.filter(pk=_org_id(request) or 0).first()
        if org is None or tpl.organisation_id is not None:
            raise NotFound()
        own = cm.PlanTemplate.objects.filter(organisation=org, code=tpl.code).first()
        if own is not None:
            return own
        copy, _outcome = services.save_template(services.template_spec(tpl), organisation=org)
        _record(
            request,
            "careplan.template.copy",
            copy,
            {"code": copy.code, "from": tpl.pk, "from_version": tpl.version},
        )
        return copy

    def copy_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tpl = self.get_object(request, str(object_id))
        if tpl is None or not self.has_add_permission(request) or tpl.organisation_id:
            return redirect("admin:careplans_plantemplate_changelist")
        existed = cm.PlanTemplate.objects.filter(
            organisation_id=_org_id(request) or 0, code=tpl.code
        ).exists()
        try:
            copy = self._copy(request, tpl)
        except NotFound:
            return redirect("admin:careplans_plantemplate_changelist")
        if existed:
            messages.info(request, _("Your organisation already has its own copy of this plan."))
        else:
            messages.success(
                request, _("Copied to your organisation. Changes here apply to your patients only.")
            )
        return redirect(reverse("admin:careplans_plantemplate_change", args=[copy.pk]))

    @admin.action(description=gettext_lazy("Copy to my organisation"))
    def copy_to_organisation(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        org_id = _org_id(request)
        if org_id is None:
            return
        made = 0
        for tpl in queryset.filter(organisation__isnull=True):
            if not cm.PlanTemplate.objects.filter(organisation_id=org_id, code=tpl.code).exists():
                self._copy(request, tpl)
                made += 1
        messages.success(request, _("%(n)d plan(s) copied to your organisation.") % {"n": made})


# --- enrolment rules ---------------------------------------------------------------------------


class RuleForm(forms.ModelForm):
    class Meta:
        model = cm.EnrolmentRule
        fields = (
            "trigger",
            "template",
            "icd10_prefixes",
            "departments",
            "encounter_kinds",
            "active",
        )

    def clean_icd10_prefixes(self) -> list[str]:
        value = self.cleaned_data.get("icd10_prefixes") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(_('Enter a list of codes, e.g. ["I10", "E11"].'))
        clean = [v.strip().upper() for v in value]
        bad = [v for v in clean if not ICD10_PREFIX.match(v)]
        if bad:
            raise ValidationError(_("Not an ICD-10 code or prefix: %s") % ", ".join(bad))
        return clean

    def clean_encounter_kinds(self) -> list[str]:
        value = self.cleaned_data.get("encounter_kinds") or []
        kinds = pm.Encounter.Kind.values
        if not isinstance(value, list) or any(v not in kinds for v in value):
            raise ValidationError(_("Enter a list of: %s") % ", ".join(kinds))
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("trigger") == cm.EnrolmentRule.Trigger.CONDITION and not data.get(
            "icd10_prefixes"
        ):
            self.add_error("icd10_prefixes", _("A diagnosis rule needs at least one code."))
        return data


@admin.register(cm.EnrolmentRule)
class EnrolmentRuleAdmin(OrgScoped, admin.ModelAdmin):
    form = RuleForm
    list_display = ("__str__", "trigger", "template", "active")
    list_filter = ("trigger", "active")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "template":
            kwargs["queryset"] = services.templates_for(_org_id(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "departments" and not request.user.is_superuser:
            kwargs["queryset"] = Department.objects.filter(organisation_id=_org_id(request) or 0)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser or not obj.organisation_id:
            obj.organisation_id = _org_id(request)
        super().save_model(request, obj, form, change)
        _record(
            request,
            "careplan.rule.update" if change else "careplan.rule.create",
            obj,
            {"fields": list(form.changed_data), "template": obj.template_id},
        )

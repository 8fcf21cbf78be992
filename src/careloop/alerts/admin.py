"""Django admin for alert rules, personal thresholds and the on-call rota, scoped to the admin's
organisation.

An admin-edited rule replaces the file rule of the same code for its organisation. Before it is
saved it is compiled together with the organisation's other rules, so a rule that does not
compile never reaches the engine; the error names the rule and the field.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgScoped
from careloop.accounts.models import Department, Organisation, Staff
from careloop.alerts import evaluation
from careloop.alerts import models as am
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.rules import RuleError, RuleSet

MAX_DEFINITION = 20_000  # characters of JSON; a rule is a few hundred


def _org_id(request: HttpRequest) -> int | None:
    return getattr(request.user, "organisation_id", None)


def _record(request: HttpRequest, action: str, obj: Any, detail: dict[str, Any]) -> None:
    audit.record(Actor.from_request(request, channel="admin"), action, obj=obj, detail=detail)


def _file_rule(code: str) -> dict[str, Any] | None:
    return next((d for d in evaluation.file_rules() if d.get("code") == code), None)


# --- rules ------------------------------------------------------------------------------------


class RuleDefinitionForm(forms.ModelForm):
    """A rule as JSON (the fields of a [[rules]] table of the rule file)."""

    # Set per request by the admin: the organisation the rule belongs to.
    organisation_id: int | None = None

    class Meta:
        model = am.RuleDefinition
        fields = ("organisation", "code", "definition", "enabled")
        widgets = {"definition": forms.Textarea(attrs={"rows": 18, "cols": 90})}
        help_texts = {
            "code": gettext_lazy(
                "A rule of the rule file with this code is replaced for your organisation; "
                "a new code adds a rule."
            ),
            "definition": gettext_lazy(
                'The rule as a JSON object, e.g. {"kind": "threshold", "event": "bp", '
                '"condition": "value >= sys", "params": {"sys": 170}, …}. '
                "The code and enabled fields above take precedence."
            ),
        }

    def clean_definition(self) -> Any:
        value = self.cleaned_data.get("definition")
        if not isinstance(value, dict):
            raise ValidationError(_("Enter the rule as a JSON object."))
        if len(json.dumps(value)) > MAX_DEFINITION:
            raise ValidationError(_("This rule is too long."))
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        code = data.get("code") or getattr(self.instance, "code", "")
        definition = data.get("definition")
        org = data.get("organisation")
        org_id = org.pk if isinstance(org, Organisation) else self.organisation_id
        if self.errors or not code or not isinstance(definition, dict) or org_id is None:
            return data
        candidate = {**definition, "code": code, "enabled": bool(data.get("enabled"))}
        others = [d for d in evaluation.definitions_for(org_id) if d.get("code") != code]
        try:
            RuleSet.compile([*others, candidate])
        except RuleError as exc:
            # The error names the rule and the field; a field of this rule is shown under the
            # definition, anything else (another rule no longer compiling) above the form.
            field: str | None = "code" if exc.field == "code" else "definition"
            if exc.code not in ("", code):
                field = None
            self.add_error(
                field,
                _("Rule “%(code)s”, field “%(field)s”: %(message)s")
                % {"code": exc.code or code, "field": exc.field, "message": exc.message},
            )
        return data


@admin.register(am.RuleDefinition)
class RuleDefinitionAdmin(OrgScoped, admin.ModelAdmin):
    form = RuleDefinitionForm
    list_display = ("code", "kind", "enabled", "replaces_file_rule", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("code",)
    ordering = ("code",)

    @admin.display(description=gettext_lazy("kind"))
    def kind(self, obj: am.RuleDefinition) -> str:
        return str((obj.definition or {}).get("kind", ""))

    @admin.display(boolean=True, description=gettext_lazy("replaces a file rule"))
    def replaces_file_rule(self, obj: am.RuleDefinition) -> bool:
        return _file_rule(obj.code) is not None

    @admin.display(description=gettext_lazy("rule file default"))
    def file_default(self, obj: am.RuleDefinition | None) -> Any:
        found = _file_rule(obj.code) if obj is not None else None
        if found is None:
            return "—"
        text = json.dumps(found, ensure_ascii=False, indent=2, sort_keys=True)
        return format_html("<pre>{}</pre>", text)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["code", "definition", "enabled"]
        if obj is not None:
            fields.append("file_default")
        if request.user.is_superuser and obj is None:
            fields.insert(0, "organisation")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Engine state and alerts refer to a rule by its code: a saved rule keeps it.
        return ("code", "file_default", "updated_at") if obj else ()

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        org_id = obj.organisation_id if obj is not None else _org_id(request)
        return type(form.__name__, (form,), {"organisation_id": org_id})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not obj.organisation_id:
            obj.organisation_id = _org_id(request)
        obj.updated_at = utc_now()
        super().save_model(request, obj, form, change)
        org_id = obj.organisation_id
        transaction.on_commit(lambda: evaluation.forget_rules(org_id))
        _record(
            request,
            "alert.rule.update" if change else "alert.rule.create",
            obj,
            {"code": obj.code, "fields": list(form.changed_data), "enabled": obj.enabled},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        org_id, code = obj.organisation_id, obj.code
        super().delete_model(request, obj)
        transaction.on_commit(lambda: evaluation.forget_rules(org_id))
        _record(request, "alert.rule.delete", None, {"code": code, "organisation": org_id})

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in list(queryset):
            self.delete_model(request, obj)


# --- personal thresholds ----------------------------------------------------------------------


@admin.register(am.PersonalThreshold)
class PersonalThresholdAdmin(OrgScoped, admin.ModelAdmin):
    """Read-only: clinicians set personal thresholds on the patient's page, with a reason."""

    org_path = "patient__organisation"
    list_display = ("patient_id", "rule", "params", "reason", "set_by", "set_at")
    list_filter = ("rule",)
    list_select_related = ("set_by",)
    ordering = ("-set_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        _record(request, "personal_threshold.list", None, {"via": "admin"})
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        found = self.get_object(request, object_id)
        if found is not None:
            audit.record(
                Actor.from_request(request, channel="admin"),
                "personal_threshold.read",
                patient_id=found.patient_id,
                obj=found,
            )
        return super().change_view(request, object_id, form_url, extra_context)


# --- on-call rota -----------------------------------------------------------------------------


class OnCallForm(forms.ModelForm):
    class Meta:
        model = am.OnCall
        fields = ("department", "staff", "starts_at", "ends_at", "phone", "email")
        help_texts = {
            "phone": gettext_lazy("Urgent alerts are sent here by SMS (no patient names)."),
            "email": gettext_lazy("And here by e-mail, when given."),
        }

    def clean_phone(self) -> str:
        phone = "".join((self.cleaned_data.get("phone") or "").split())
        digits = phone[1:] if phone.startswith("+") else phone
        if phone and (not digits.isdigit() or not 7 <= len(digits) <= 15):
            raise ValidationError(_("Enter a phone number, e.g. 13800000000 or +8613800000000."))
        return phone

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", _("The shift must end after it starts."))
        staff, dept = data.get("staff"), data.get("department")
        if isinstance(staff, Staff) and isinstance(dept, Department):
            if staff.organisation_id != dept.organisation_id:
                self.add_error("staff", _("Choose someone of this department's organisation."))
            elif not staff.is_active:
                self.add_error("staff", _("This account is disabled."))
        return data


@admin.register(am.OnCall)
class OnCallAdmin(OrgScoped, admin.ModelAdmin):
    form = OnCallForm
    org_path = "department__organisation"
    list_display = ("department", "staff", "starts_at", "ends_at", "phone", "email")
    list_filter = ("department",)
    list_select_related = ("department", "staff")
    ordering = ("department", "-starts_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Rota rows are planning, not records: the organisation's admins remove their own.
        return self.has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _record(
            request,
            "oncall.update" if change else "oncall.create",
            obj,
            {"department": obj.department_id, "staff": obj.staff_id},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        detail = {"department": obj.department_id, "staff": obj.staff_id, "id": obj.pk}
        super().delete_model(request, obj)
        _record(request, "oncall.delete", None, detail)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in list(queryset):
            self.delete_model(request, obj)

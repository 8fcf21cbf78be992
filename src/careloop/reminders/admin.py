"""Django admin for reminder settings and message templates, scoped to the admin's organisation.

Message templates are untrusted text: only the placeholders of ``rendering.PLACEHOLDERS`` are
accepted, bodies are kept short enough for their channel, and everything is shown escaped.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgScoped
from careloop.audit import services as audit
from careloop.careplans.models import ActivityKind
from careloop.channels.models import KIND_CHOICES
from careloop.reminders import models as rm
from careloop.reminders import rendering

# The longest body per channel, counted on the template text. A template for any channel may
# go out as an SMS, so it gets the SMS limit.
BODY_LIMITS = {"sms": 300, "voice": 200, "push": 200, "wechat": 600, "email": 1000, "outbox": 1000}
ANY_CHANNEL_LIMIT = BODY_LIMITS["sms"]
KINDS: list[tuple[str, Any]] = [
    *ActivityKind.choices,
    ("appointment", gettext_lazy("Appointment")),
    ("queue", gettext_lazy("Queue call")),
    ("message", gettext_lazy("Message from the care team")),
]


def _org_id(request: HttpRequest) -> int | None:
    return getattr(request.user, "organisation_id", None)


def _record(request: HttpRequest, action: str, obj: Any, detail: dict[str, Any]) -> None:
    audit.record(Actor.from_request(request, channel="admin"), action, obj=obj, detail=detail)


# --- message templates -------------------------------------------------------------------------


class MessageTemplateForm(forms.ModelForm):
    kind = forms.ChoiceField(label=gettext_lazy("kind"), choices=KINDS)
    channel = forms.ChoiceField(
        label=gettext_lazy("channel"),
        choices=[("", gettext_lazy("Any channel")), *KIND_CHOICES],
        required=False,
    )
    language = forms.ChoiceField(label=gettext_lazy("language"), choices=settings.LANGUAGES)
    organisation_id: int | None = None

    class Meta:
        model = rm.MessageTemplate
        fields = ("kind", "channel", "language", "subject", "body", "provider_template_code")
        widgets = {"body": forms.Textarea(attrs={"rows": 4, "cols": 60})}
        help_texts = {
            "body": gettext_lazy(
                "Plain text. Placeholders: {name} {time} {link} {clinic}. Never name a "
                "diagnosis: the link leads to the details."
            )
        }

    def _placeholders(self, field: str) -> str:
        text = self.cleaned_data.get(field) or ""
        unknown = rendering.unknown_placeholders(text)
        if unknown:
            raise forms.ValidationError(
                _("Unknown placeholders: %(found)s. Use only %(allowed)s.")
                % {
                    "found": ", ".join("{" + u + "}" for u in unknown),
                    "allowed": " ".join("{" + p + "}" for p in rendering.PLACEHOLDERS),
                }
            )
        return text

    def clean_subject(self) -> str:
        return self._placeholders("subject")

    def clean_body(self) -> str:
        return self._placeholders("body")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        body = data.get("body") or ""
        channel = data.get("channel") or ""
        limit = BODY_LIMITS.get(channel, ANY_CHANNEL_LIMIT)
        if body and len(body) > limit:
            self.add_error(
                "body",
                _("At most %(limit)d characters for this channel (now %(n)d).")
                % {"limit": limit, "n": len(body)},
            )
        if "kind" in data and "language" in data:
            owner = (
                Q(organisation_id=self.organisation_id)
                if self.organisation_id
                else Q(organisation__isnull=True)
            )
            taken = rm.MessageTemplate.objects.filter(
                owner,
                kind=data["kind"],
                channel=channel,
                language=data["language"],
            )
            if self.instance.pk:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise forms.ValidationError(
                    _("There is a template for this kind, channel and language already.")
                )
        return data


@admin.register(rm.MessageTemplate)
class MessageTemplateAdmin(OrgScoped, admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("kind", "channel", "language", "subject", "is_shared")
    list_filter = ("kind", "channel", "language")
    search_fields = ("subject", "body")

    @admin.display(boolean=True, description=gettext_lazy("shared"))
    def is_shared(self, obj: rm.MessageTemplate) -> bool:
        return obj.organisation_id is None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(Q(organisation_id=_org_id(request)) | Q(organisation__isnull=True))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.organisation_id is None and not request.user.is_superuser:
            return False  # shared templates are read-only
        return super().has_change_permission(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        org = obj.organisation_id if obj is not None else _org_id(request)
        if obj is None and request.user.is_superuser:
            org = None
        return type(form.__name__, (form,), {"organisation_id": org})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.organisation_id = _org_id(request)
        super().save_model(request, obj, form, change)
        _record(
            request,
            "message_template.update" if change else "message_template.create",
            obj,
            {"fields": list(form.changed_data), "kind": obj.kind, "channel": obj.channel},
        )


# --- reminder settings -------------------------------------------------------------------------

BOUNDS = {"daily_cap": (1, 50), "horizon_days": (1, 60), "link_ttl_hours": (1, 720)}


class SettingsForm(forms.ModelForm):
    class Meta:
        model = rm.ReminderSettings
        fields = (
            "quiet_start",
            "quiet_end",
            "daily_cap",
            "horizon_days",
            "end_of_day",
            "link_ttl_hours",
            "dispatch_paused",
            "paused_reason",
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name, (low, high) in BOUNDS.items():
            value = data.get(name)
            if value is not None and not low <= value <= high:
                self.add_error(name, _("From %(low)d to %(high)d.") % {"low": low, "high": high})
        if data.get("dispatch_paused") and not (data.get("paused_reason") or "").strip():
            self.add_error("paused_reason", _("Say why sending is paused."))
        if not data.get("dispatch_paused"):
            data["paused_reason"] = ""
        return data


@admin.register(rm.ReminderSettings)
class ReminderSettingsAdmin(OrgScoped, admin.ModelAdmin):
    form = SettingsForm
    list_display = (
        "organisation",
        "quiet_start",
        "quiet_end",
        "daily_cap",
        "horizon_days",
        "dispatch_paused",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not super().has_add_permission(request):
            return False
        if request.user.is_superuser:
            return True
        return not rm.ReminderSettings.objects.filter(
            organisation_id=_org_id(request) or 0
        ).exists()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if request.user.is_superuser and "organisation" not in fields:
            fields.insert(0, "organisation")
        return fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser or not obj.organisation_id:
            obj.organisation_id = _org_id(request)
        before: dict[str, Any] = {}
        if obj.pk:
            before = dict(rm.ReminderSettings.objects.filter(pk=obj.pk).values().first() or {})
        super().save_model(request, obj, form, change)
        changes = {
            name: [_plain(before.get(name)), _plain(getattr(obj, name))]
            for name in form.changed_data
        }
        _record(request, "reminders.settings.update", obj, {"changes": changes})
        if "dispatch_paused" in form.changed_data:
            _record(
                request,
                "reminders.dispatch.pause" if obj.dispatch_paused else "reminders.dispatch.resume",
                obj,
                {"reason": obj.paused_reason},
            )


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | str) or value is None else str(value)

"""Django admin for reply templates and messaging settings (reply SLA, extra urgent words),
scoped to the admin's organisation. Threads and messages are patient data: not in the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgScoped
from careloop.audit import services as audit
from careloop.messaging.models import MessagingSettings, ReplyTemplate


class _OrgFilled(OrgScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    audit_action = ""

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f != "organisation"]
        if request.user.is_superuser:
            fields.insert(0, "organisation")
        return fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser or not obj.organisation_id:
            obj.organisation_id = getattr(request.user, "organisation_id", None)
        super().save_model(request, obj, form, change)
        audit.record(
            Actor.from_request(request, channel="admin"),
            self.audit_action,
            obj=obj,
            detail={"changed": list(form.changed_data)},
        )


@admin.register(ReplyTemplate)
class ReplyTemplateAdmin(_OrgFilled):
    audit_action = "message.template.save"
    list_display = ("title", "language")
    list_filter = ("language",)
    search_fields = ("title", "body")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


@admin.register(MessagingSettings)
class MessagingSettingsAdmin(_OrgFilled):
    audit_action = "message.settings.save"
    list_display = ("organisation", "sla_hours")

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not super().has_add_permission(request):
            return False
        if request.user.is_superuser:
            return True
        org = getattr(request.user, "organisation_id", None) or 0
        return not MessagingSettings.objects.filter(organisation_id=org).exists()

"""Django admin: the library (org-scoped), deliveries and summaries read-only. Videos are
uploaded on the education pages, where their content is checked."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from careloop.accounts.admin import OrgScoped
from careloop.education import models as em


@admin.register(em.ContentItem)
class ContentItemAdmin(OrgScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "kind", "language", "stage", "reading_level", "status", "version")
    list_filter = ("status", "kind", "language", "stage", "reading_level")
    search_fields = ("title", "body")
    exclude = ("created_by", "updated_by")
    readonly_fields = ("video_file", "video_type", "video_size", "version", "published_at")


class _ReadOnly(OrgScoped):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(em.Delivery)
class DeliveryAdmin(_ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "item",
        "patient_id",
        "source",
        "plan_day",
        "delivered_at",
        "opened_at",
        "read_at",
    )
    list_filter = ("source",)


@admin.register(em.VisitSummary)
class VisitSummaryAdmin(_ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("patient_id", "visit_date", "language", "version", "generated_at")

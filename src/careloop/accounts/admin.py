"""Django admin for organisation set-up: organisations, departments, care teams, staff."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import (
    CareTeam,
    CareTeamMember,
    Department,
    Membership,
    Organisation,
    Staff,
)


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "time_zone")
    search_fields = ("name", "code")


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "name_en", "code", "organisation")
    list_filter = ("organisation",)
    search_fields = ("name", "name_en", "code")


class CareTeamMemberInline(admin.TabularInline):
    model = CareTeamMember
    extra = 1
    autocomplete_fields = ("staff",)


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    list_display = ("name", "department", "responsible_doctor")
    list_filter = ("department",)
    inlines = [CareTeamMemberInline]
    autocomplete_fields = ("responsible_doctor",)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Staff)
class StaffAdmin(UserAdmin):
    list_display = ("username", "display_name", "role", "organisation", "is_active", "last_login")
    list_filter = ("role", "organisation", "is_active")
    search_fields = ("username", "display_name", "email")
    inlines = [MembershipInline]
    fieldsets = (
        *UserAdmin.fieldsets,  # type: ignore[misc]
        (_("CareLoop"), {"fields": ("organisation", "role", "display_name", "language")}),
    )
    add_fieldsets = (
        *UserAdmin.add_fieldsets,
        (_("CareLoop"), {"fields": ("organisation", "role", "display_name", "language")}),
    )

"""Django admin for organisation set-up, scoped to the signed-in org admin's own organisation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from careloop.accounts.models import (
    CareTeam,
    CareTeamMember,
    Department,
    Membership,
    Organisation,
    Staff,
)
from careloop.accounts.roles import Action, allowed
from careloop.audit import services as audit

admin.site.site_header = _("CareLoop administration")
admin.site.site_title = _("CareLoop administration")


def _sign_in_through_careloop(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    """The admin site has no sign-in of its own: CareLoop's (password, then second factor)."""
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({'next': target})}")


admin.site.login = _sign_in_through_careloop  # type: ignore[method-assign]


def _org(request: HttpRequest) -> int | None:
    """The signed-in admin's organisation."""
    return getattr(request.user, "organisation_id", None)


def _org_admin(request: HttpRequest) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (
            user.is_superuser
            or (
                getattr(user, "organisation_id", None)
                and allowed(getattr(user, "role", ""), Action.ORG_MANAGE)
            )
        )
    )


class OrgScoped:
    """Org admins manage their own organisation only; superusers manage every organisation."""

    org_path = "organisation"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _org_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _org_admin(request)

    has_change_permission = has_view_permission
    has_add_permission = has_module_permission

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return qs
        return qs.filter(**{self.org_path: _org(request)})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        _limit_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


def _limit_choices(db_field: Any, request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """Drop-downs offer only the admin's own organisation's rows."""
    if request.user.is_superuser:
        return
    scopes = {
        Organisation: "pk",
        Department: "organisation",
        Staff: "organisation",
        CareTeam: "department__organisation",
    }
    if db_field.related_model in scopes:
        kwargs["queryset"] = db_field.related_model.objects.filter(
            **{scopes[db_field.related_model]: _org(request) or 0}
        )


def _audit(request: HttpRequest, action: str, obj: Any, detail: dict[str, Any]) -> None:
    audit.append(
        action=action,
        actor_id=request.user.pk,
        actor_name=request.user.get_username(),
        organisation_id=getattr(request.user, "organisation_id", None),
        object_type=obj._meta.label_lower,
        object_id=obj.pk,
        source=str(request.META.get("REMOTE_ADDR", ""))[:64],
        detail=detail,
    )


@admin.register(Organisation)
class OrganisationAdmin(OrgScoped, admin.ModelAdmin):
    org_path = "pk"
    list_display = ("name", "code", "time_zone")
    search_fields = ("name", "code")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Department)
class DepartmentAdmin(OrgScoped, admin.ModelAdmin):
    list_display = ("name", "name_en", "code")
    search_fields = ("name", "name_en", "code")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.organisation_id = _org(request)
        super().save_model(request, obj, form, change)
        _audit(
            request,
            "department.update" if change else "department.create",
            obj,
            {"fields": list(form.changed_data)},
        )

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if request.user.is_superuser else ("organisation",)


class OrgInline(admin.TabularInline):
    """Rows edited inside an org-scoped page: same permissions, same choice limits."""

    extra = 1

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _org_admin(request)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        _limit_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CareTeamMemberInline(OrgInline):
    model = CareTeamMember


@admin.register(CareTeam)
class CareTeamAdmin(OrgScoped, admin.ModelAdmin):
    org_path = "department__organisation"
    list_display = ("name", "department", "responsible_doctor")
    list_filter = ("department",)
    inlines = [CareTeamMemberInline]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _audit(
            request,
            "careteam.update" if change else "careteam.create",
            obj,
            {"fields": list(form.changed_data)},
        )


class MembershipInline(OrgInline):
    model = Membership


@admin.register(Staff)
class StaffAdmin(OrgScoped, UserAdmin):
    list_display = ("username", "display_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    search_fields = ("username", "display_name", "email")
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Person"), {"fields": ("display_name", "first_name", "last_name", "email", "language")}),
        (_("Access"), {"fields": ("organisation", "role", "is_active", "is_staff")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "password1", "password2")}),
        (_("Access"), {"fields": ("organisation", "role", "display_name", "language")}),
    )
    readonly_fields = ("last_login", "date_joined")
    actions = ["reset_second_factor"]

    @admin.action(description=_("Reset the second factor (set up again at next sign-in)"))
    def reset_second_factor(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from careloop.accounts import second_factor
        from careloop.accounts.actor import Actor

        actor = Actor.from_request(request, channel="admin")
        for staff in queryset:
            second_factor.reset(actor, staff.pk)
        self.message_user(request, _("Second factors reset: %(n)d.") % {"n": queryset.count()})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["organisation", "is_staff"]
        return fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.organisation_id = _org(request)
            obj.is_superuser = False
        obj.is_staff = allowed(obj.role, Action.ORG_MANAGE) or obj.is_superuser
        super().save_model(request, obj, form, change)
        # Role and account changes are security events: they go on the audit trail.
        _audit(
            request,
            "staff.update" if change else "staff.create",
            obj,
            {
                "fields": [
                    f for f in form.changed_data if f not in ("password", "password1", "password2")
                ],
                "role": obj.role,
                "active": obj.is_active,
            },
        )
        if change and "is_active" in form.changed_data and not obj.is_active:
            from careloop.accounts import services

            services.revoke_tokens(obj)

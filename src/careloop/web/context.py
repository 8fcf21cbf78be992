"""Template context shared by every staff page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from careloop.accounts.roles import ROLE_LABELS, Action, Role, allowed


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    role = getattr(user, "role", "")
    role_label: Any
    try:
        role_label = ROLE_LABELS[Role(role)]
    except ValueError:
        role_label = role
    return {
        "nav": {
            "patients": allowed(role, Action.PATIENT_SEARCH),
            "appointments": allowed(role, Action.APPOINTMENT_BOOK),
            "plans": allowed(role, Action.CLINICAL_VIEW),
            "tasks": allowed(role, Action.TASK_WORK),
            "operations": allowed(role, Action.REMINDERS_OPERATE),
            "analytics": allowed(role, Action.ANALYTICS_VIEW),
            "segments": allowed(role, Action.ANALYTICS_VIEW) or allowed(role, Action.ORG_MANAGE),
            "audit": allowed(role, Action.AUDIT_VIEW),
            "admin": user.is_staff,
            "interfaces": allowed(role, Action.ORG_MANAGE),
            "role_label": role_label,
        }
    }

"""The role x action matrix. Deny by default: an action no role lists is allowed to nobody."""

from __future__ import annotations

from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class Role(StrEnum):
    ORG_ADMIN = "org_admin"
    DEPT_HEAD = "dept_head"
    DOCTOR = "doctor"
    NURSE = "nurse"
    AUDITOR = "auditor"


ROLE_LABELS = {
    Role.ORG_ADMIN: _("Organisation admin"),
    Role.DEPT_HEAD: _("Department head"),
    Role.DOCTOR: _("Doctor"),
    Role.NURSE: _("Nurse / care coordinator"),
    Role.AUDITOR: _("Auditor"),
}
ROLE_CHOICES = [(r.value, ROLE_LABELS[r]) for r in Role]


class Action(StrEnum):
    PATIENT_VIEW = "patient.view"
    PATIENT_SEARCH = "patient.search"
    PATIENT_CREATE = "patient.create"
    PATIENT_UPDATE = "patient.update"
    PATIENT_MERGE = "patient.merge"
    CLINICAL_VIEW = "clinical.view"
    CLINICAL_WRITE = "clinical.write"
    CONSENT_WRITE = "consent.write"
    AUDIT_VIEW = "audit.view"
    AUDIT_EXPORT = "audit.export"
    ORG_MANAGE = "org.manage"
    API_TOKEN = "api.token"  # noqa: S105 - an action name, not a secret
    CAREPLAN_ENROL = "careplan.enrol"
    REMINDERS_OPERATE = "reminders.operate"
    TASK_WORK = "task.work"
    APPOINTMENT_BOOK = "appointment.book"
    SCHEDULE_MANAGE = "schedule.manage"
    # The analytics dashboards (aggregate figures; drill-down lists also need PATIENT_VIEW).
    ANALYTICS_VIEW = "analytics.view"


_CLINICAL = {
    Action.PATIENT_VIEW,
    Action.PATIENT_SEARCH,
    Action.PATIENT_CREATE,
    Action.PATIENT_UPDATE,
    Action.CLINICAL_VIEW,
    Action.CLINICAL_WRITE,
    Action.CONSENT_WRITE,
    Action.API_TOKEN,
    Action.CAREPLAN_ENROL,
    Action.TASK_WORK,
    Action.APPOINTMENT_BOOK,
}

MATRIX: dict[Role, frozenset[Action]] = {
    # Admins set up the organisation and manage identities; they read clinical data but do
    # not write it (minimum necessary), and they merge duplicates.
    Role.ORG_ADMIN: frozenset(
        {
            Action.PATIENT_VIEW,
            Action.PATIENT_SEARCH,
            Action.PATIENT_CREATE,
            Action.PATIENT_UPDATE,
            Action.PATIENT_MERGE,
            Action.CLINICAL_VIEW,
            Action.CONSENT_WRITE,
            Action.ORG_MANAGE,
            Action.API_TOKEN,
            Action.REMINDERS_OPERATE,
            Action.SCHEDULE_MANAGE,
            Action.APPOINTMENT_BOOK,
            Action.ANALYTICS_VIEW,
        }
    ),
    # Department heads also run the reminder operations and the clinic schedules.
    Role.DEPT_HEAD: frozenset(
        _CLINICAL
        | {
            Action.PATIENT_MERGE,
            Action.REMINDERS_OPERATE,
            Action.SCHEDULE_MANAGE,
            Action.ANALYTICS_VIEW,
        }
    ),
    Role.DOCTOR: frozenset(_CLINICAL | {Action.PATIENT_MERGE, Action.ANALYTICS_VIEW}),
    # Nurses (care coordinators) run the follow-up work, so they see their departments'
    # dashboards too (careloop.analytics.selectors: department level, no per-staff tables).
    Role.NURSE: frozenset(_CLINICAL | {Action.ANALYTICS_VIEW}),
    # Auditors read the audit trail and nothing clinical.
    Role.AUDITOR: frozenset({Action.AUDIT_VIEW, Action.AUDIT_EXPORT}),
}


def allowed(role: str | None, action: Action) -> bool:
    if not role:
        return False
    try:
        return action in MATRIX[Role(role)]
    except (ValueError, KeyError):
        return False

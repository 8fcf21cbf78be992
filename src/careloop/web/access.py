"""Who may use each route: the access model of every page and API operation, as data.

Pages are keyed by URL name (``patients:detail``), API operations by ``METHOD path-template``
(``GET /api/patients/{patient_id}``). A requirement is one of:

- ``PUBLIC``: anyone, signed in or not;
- ``LOGIN``: any signed-in user (a page session, or an API bearer token);
- ``ADMIN_SITE``: Django's admin, which applies its own checks (is_staff, model permissions);
- ``NOTHING``: serves nothing to anyone (answers 404);
- ``SIGNED``: provider callbacks, applied only with the provider's signature or token (else 403);
- a tuple of ``Action``: the user's role must allow every one of them.

Pages whose ``<kind>`` path parameter picks a kind of record carry one requirement per kind.
Role is only half of the decision: a patient outside the user's departments (or organisation)
answers 404 whatever the role. The security tests walk the URL configuration and fail on any
route without a rule here, so a new route grants nothing until it is listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from careloop.accounts.roles import Action, allowed

PUBLIC = "public"
LOGIN = "login"
ADMIN_SITE = "admin-site"
NOTHING = "nothing"
# Anyone may call, but only a request carrying the provider's own signature or token is applied;
# a session grants nothing (provider callbacks). Unsigned requests answer 403.
SIGNED = "signed"

Requirement = str | tuple[Action, ...]

A = Action
_VIEW = (A.PATIENT_VIEW,)
_CLINICAL_VIEW = (A.PATIENT_VIEW, A.CLINICAL_VIEW)
# Appointment pages and operations show whose appointment it is.
_BOOK = (A.PATIENT_VIEW, A.APPOINTMENT_BOOK)

# Each kind of record in a patient's file, and the action that writes it.
RECORD_WRITE: dict[str, Action] = {
    "conditions": A.CLINICAL_WRITE,
    "allergies": A.CLINICAL_WRITE,
    "medications": A.CLINICAL_WRITE,
    "history": A.CLINICAL_WRITE,
    "lifestyle": A.CLINICAL_WRITE,
    "visits": A.CLINICAL_WRITE,
    "reports": A.CLINICAL_WRITE,
    "caregivers": A.CLINICAL_WRITE,
    "consents": A.CONSENT_WRITE,
}


@dataclass(frozen=True)
class Page:
    """A staff page: what it requires and the HTTP methods it serves."""

    requires: Requirement | Mapping[str, Requirement]
    methods: tuple[str, ...] = ("GET",)


_GET_POST = ("GET", "POST")
_POST = ("POST",)


def _per_kind(*base: Action, view: bool = False) -> dict[str, Requirement]:
    """One requirement per kind of record: the base actions plus that kind's write action."""
    return {kind: (*base, *(() if view else (write,))) for kind, write in RECORD_WRITE.items()}


PAGES: dict[str, Page] = {
    "home": Page(LOGIN),
    "healthz": Page(PUBLIC),
    "readyz": Page(PUBLIC),
    "login": Page(PUBLIC, _GET_POST),
    "logout": Page(PUBLIC, _POST),
    "language": Page(PUBLIC, _POST),
    # Provider callbacks: signed or token-checked by the channel, no session.
    "channels:callback": Page(SIGNED, _GET_POST),
    "patients:list": Page((A.PATIENT_SEARCH,)),
    "patients:create": Page((A.PATIENT_CREATE,), _GET_POST),
    # The record page opens on the overview tab, which lists clinical rows.
    "patients:detail": Page(_CLINICAL_VIEW),
    "patients:edit": Page((*_VIEW, A.PATIENT_UPDATE), _GET_POST),
    "patients:merge": Page((*_VIEW, A.PATIENT_MERGE), _GET_POST),
    "patients:tab": Page(_CLINICAL_VIEW),
    "patients:report_file": Page(_CLINICAL_VIEW),
    "patients:record_create": Page(_per_kind(*_VIEW), _GET_POST),
    "patients:record_edit": Page(_per_kind(*_CLINICAL_VIEW), _GET_POST),
    "patients:record_delete": Page(_per_kind(*_CLINICAL_VIEW), _GET_POST),
    "appointments:day": Page(_BOOK),
    "appointments:book": Page(_BOOK, _GET_POST),
    "appointments:patient_search": Page((A.PATIENT_SEARCH, A.APPOINTMENT_BOOK)),
    "appointments:queue": Page(_BOOK),
    "appointments:call_next": Page(_BOOK, _POST),
    "appointments:overdue": Page(_BOOK),
    "appointments:call_result": Page(_BOOK, _POST),
    "appointments:patient": Page(_BOOK),
    "appointments:detail": Page(_BOOK),
    "appointments:reschedule": Page(_BOOK, _GET_POST),
    "appointments:cancel": Page(_BOOK, _GET_POST),
    "appointments:check_in": Page(_BOOK, _POST),
    "appointments:no_show": Page(_BOOK, _POST),
    "appointments:complete": Page(_BOOK, _POST),
    "appointments:schedules": Page((A.SCHEDULE_MANAGE,)),
    "appointments:schedule_create": Page((A.SCHEDULE_MANAGE,), _GET_POST),
    "appointments:schedule_edit": Page((A.SCHEDULE_MANAGE,), _GET_POST),
    "appointments:slot_status": Page((A.SCHEDULE_MANAGE,), _POST),
    # Care plans: reading them is clinical; enrolling, ending and adjusting need CAREPLAN_ENROL.
    "careplans:index": Page(_CLINICAL_VIEW),
    "careplans:enrolment": Page(_CLINICAL_VIEW),
    "careplans:calendar": Page(_CLINICAL_VIEW),
    "careplans:enrol": Page((*_VIEW, A.CAREPLAN_ENROL), _GET_POST),
    "careplans:preview": Page((*_VIEW, A.CAREPLAN_ENROL)),
    "careplans:end": Page((*_VIEW, A.CAREPLAN_ENROL), _GET_POST),
    "careplans:adjust": Page((*_VIEW, A.CAREPLAN_ENROL), _GET_POST),
    "careplans:preferences": Page((*_CLINICAL_VIEW, A.PATIENT_UPDATE), _GET_POST),
    # The page behind a reminder's message link: the opaque, expiring token is the credential.
    "reminders:link": Page(PUBLIC, _GET_POST),
    "tasks:list": Page((A.TASK_WORK,)),
    "tasks:close": Page((A.TASK_WORK,), _GET_POST),
    "audit:list": Page((A.AUDIT_VIEW,)),
    "audit:export": Page((A.AUDIT_EXPORT,)),
    # django-ninja's own pages: the OpenAPI description and its viewer, and the root marker.
    "api:openapi-json": Page(PUBLIC),
    "api:openapi-view": Page(PUBLIC),
    "api:api-root": Page(NOTHING),
}

# Reminder operations: the figures and dead letters name patients, so they also need PATIENT_VIEW.
_OPERATE = (A.REMINDERS_OPERATE, A.PATIENT_VIEW)
PAGES.update(
    {
        "operations:dashboard": Page(_OPERATE),
        "operations:retry": Page(_OPERATE, _POST),
        "operations:dispatch": Page((A.REMINDERS_OPERATE,), _POST),
    }
)

# URL-name patterns covered by one rule.
PAGE_PREFIXES: dict[str, Requirement] = {
    "admin:*": ADMIN_SITE,
}

# Files served by WhiteNoise before URL routing: CSS, JavaScript, icons.
STATIC: Requirement = PUBLIC

_P = "/api/patients"
_ONE = f"{_P}/{{patient_id}}"

API: dict[str, Requirement] = {
    "GET /api/me": LOGIN,
    f"GET {_P}": (A.PATIENT_SEARCH,),
    f"POST {_P}": (A.PATIENT_CREATE,),
    f"GET {_ONE}": _VIEW,
    f"PATCH {_ONE}": (*_VIEW, A.PATIENT_UPDATE),
    f"POST {_ONE}/merge": (*_VIEW, A.PATIENT_MERGE),
    f"GET {_ONE}/timeline": _CLINICAL_VIEW,
    f"POST {_ONE}/reports/{{record_id}}/file": (*_CLINICAL_VIEW, A.CLINICAL_WRITE),
    f"GET {_ONE}/reports/{{record_id}}/file": _CLINICAL_VIEW,
    "GET /api/audit/events": (A.AUDIT_VIEW,),
}
_AP = "/api/appointments"
_AP_ONE = f"{_AP}/{{appointment_id}}"
API.update(
    {
        f"GET {_AP}/slots": (A.APPOINTMENT_BOOK,),
        f"POST {_AP}": _BOOK,
        f"GET {_AP}/queue": _BOOK,
        f"POST {_AP}/queue/call-next": _BOOK,
        f"GET {_AP}/overdue": _BOOK,
        f"GET {_AP_ONE}": _BOOK,
        f"POST {_AP_ONE}/reschedule": _BOOK,
        f"POST {_AP_ONE}/cancel": _BOOK,
        f"POST {_AP_ONE}/check-in": _BOOK,
        f"POST {_AP_ONE}/no-show": _BOOK,
        f"POST {_AP_ONE}/complete": _BOOK,
    }
)
# Care plans and reminders.
_ENROL = (A.PATIENT_VIEW, A.CAREPLAN_ENROL)
API.update(
    {
        "GET /api/plans/templates": (A.CAREPLAN_ENROL,),
        f"GET {_ONE}/enrolments": _CLINICAL_VIEW,
        f"POST {_ONE}/enrolments/preview": _ENROL,
        f"POST {_ONE}/enrolments": _ENROL,
        "POST /api/enrolments/{enrolment_id}/end": _ENROL,
        "PATCH /api/enrolments/{enrolment_id}": _ENROL,
        f"GET {_ONE}/occurrences": _CLINICAL_VIEW,
        f"PUT {_ONE}/reminder-preferences": (*_VIEW, A.PATIENT_UPDATE),
        # Staff record a confirmation the patient gave on the phone.
        "POST /api/occurrences/{occurrence_id}/acknowledge": (*_VIEW, A.TASK_WORK),
        "GET /api/operations": _OPERATE,
        "POST /api/operations/dead-letters/{occurrence_id}/retry": _OPERATE,
    }
)
for _kind, _write in RECORD_WRITE.items():
    API.update(
        {
            f"GET {_ONE}/{_kind}": _CLINICAL_VIEW,
            f"POST {_ONE}/{_kind}": (*_VIEW, _write),
            f"GET {_ONE}/{_kind}/{{record_id}}": _CLINICAL_VIEW,
            f"PATCH {_ONE}/{_kind}/{{record_id}}": (*_CLINICAL_VIEW, _write),
            f"DELETE {_ONE}/{_kind}/{{record_id}}": (*_CLINICAL_VIEW, _write),
        }
    )

# Actions that concern a patient's record: routes needing one of them handle patient data.
PATIENT_DATA_ACTIONS = frozenset(
    {
        A.PATIENT_VIEW,
        A.PATIENT_SEARCH,
        A.PATIENT_CREATE,
        A.PATIENT_UPDATE,
        A.PATIENT_MERGE,
        A.CLINICAL_VIEW,
        A.CLINICAL_WRITE,
        A.CONSENT_WRITE,
    }
)


def page_rule(url_name: str, kind: str | None = None) -> Requirement | None:
    """The requirement of a page by URL name (and record kind, for per-kind pages)."""
    page = PAGES.get(url_name)
    if page is None:
        for prefix, requirement in PAGE_PREFIXES.items():
            if url_name.startswith(prefix.rstrip("*")):
                return requirement
        return None
    if isinstance(page.requires, Mapping):
        return page.requires.get(kind) if kind is not None else None
    return page.requires


def api_rule(method: str, path: str) -> Requirement | None:
    """The requirement of an API operation, e.g. api_rule("GET", "/api/patients/{patient_id}")."""
    return API.get(f"{method.upper()} {path}")


def permits(requirement: Requirement, user: Any) -> bool:
    """Whether a user (or AnonymousUser) meets a requirement, by role alone (not scope)."""
    signed_in = bool(user is not None and user.is_authenticated and user.is_active)
    if requirement == PUBLIC:
        return True
    if requirement in (NOTHING, SIGNED):
        return False
    if requirement == LOGIN:
        return signed_in
    if requirement == ADMIN_SITE:
        return signed_in and bool(user.is_staff)
    if isinstance(requirement, tuple):
        return (
            signed_in
            and getattr(user, "organisation_id", None) is not None
            and all(allowed(user.role, action) for action in requirement)
        )
    raise ValueError(f"unknown requirement {requirement!r}")


def handles_patient_data(requirement: Requirement) -> bool:
    return isinstance(requirement, tuple) and bool(PATIENT_DATA_ACTIONS.intersection(requirement))

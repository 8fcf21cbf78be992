"""Who may use each route: the access model of every page and API operation, as data.

Pages are keyed by URL name (``patients:detail``), API operations by ``METHOD path-template``
(``GET /api/patients/{patient_id}``). A requirement is one of:

- ``PUBLIC``: anyone, signed in or not;
- ``LOGIN``: any signed-in user (a page session, or an API bearer token);
- ``ADMIN_SITE``: Django's admin, which applies its own checks (is_staff, model permissions);
- ``NOTHING``: serves nothing to anyone (answers 404);
- ``SIGNED``: provider callbacks, applied only with the provider's signature or token (else 403);
- ``PATIENT``: a patient (or a caregiver with proxy access) signed in to the portal; every
  portal page shows only that patient's own record, anything else answers 404. Staff sessions
  grant nothing here, and a portal session grants nothing on staff pages;
- ``FHIR``: the FHIR interface at /fhir: a staff session or an API bearer token, within the
  token's SMART scopes; each resource type then requires its own role actions
  (``careloop.fhir.registry``: reads PATIENT_VIEW, plus CLINICAL_VIEW for clinical types;
  writes CLINICAL_WRITE or the patient actions) and answers 404 outside the patient scope.
  Callers without a sign-in or token get 401 as an OperationOutcome;
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
# A portal sign-in (patient or caregiver by proxy); others are sent to the portal sign-in page.
PATIENT = "patient"
# The FHIR interface: any staff sign-in or token; the resource type decides the role actions.
FHIR = "fhir"

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
    "dispenses": A.CLINICAL_WRITE,
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
    # The second step answers only within a session that has just passed the password.
    "login_code": Page(PUBLIC, _GET_POST),
    "login_setup": Page(PUBLIC, _GET_POST),
    "logout": Page(PUBLIC, _POST),
    "language": Page(PUBLIC, _POST),
    # Provider callbacks: signed or token-checked by the channel, no session.
    "channels:callback": Page(SIGNED, _GET_POST),
    # --- the patient portal: sign-in, shell (manifest, service worker), me -------------------
    # Signing in is public (the SMS code or the single-use link is the credential).
    "portal:sign_in": Page(PUBLIC, _GET_POST),
    "portal:sign_in_code": Page(PUBLIC, _GET_POST),
    "portal:sign_in_choose": Page(PUBLIC, _GET_POST),
    "portal:invitation": Page(PUBLIC, _GET_POST),
    "portal:sign_out": Page(PUBLIC, _POST),
    "portal:manifest": Page(PUBLIC),
    "portal:service_worker": Page(PUBLIC),
    "portal:me": Page(PATIENT),
    "portal:elder_mode": Page(PATIENT, _POST),
    "portal:family_grant": Page(PATIENT, _POST),
    "portal:family_revoke": Page(PATIENT, _POST),
    "portal:family_notify": Page(PATIENT, _POST),
    "portal:push_subscribe": Page(PATIENT, _POST),
    "portal:push_unsubscribe": Page(PATIENT, _POST),
    # Staff: invitation links and ending sessions change how the patient reaches their record;
    # family access is recorded with the patient's consent.
    "portal_staff:panel": Page((A.PATIENT_VIEW, A.PATIENT_UPDATE)),
    "portal_staff:invite": Page((A.PATIENT_VIEW, A.PATIENT_UPDATE), _POST),
    "portal_staff:revoke_sessions": Page((A.PATIENT_VIEW, A.PATIENT_UPDATE), _POST),
    "portal_staff:proxy_grant": Page((A.PATIENT_VIEW, A.PATIENT_UPDATE, A.CONSENT_WRITE), _POST),
    "portal_staff:proxy_revoke": Page((A.PATIENT_VIEW, A.PATIENT_UPDATE, A.CONSENT_WRITE), _POST),
    # --- the patient portal: today, history, plan, care team, appointments ------------------
    "portal:today": Page(PATIENT),
    "portal:dose": Page(PATIENT, _POST),
    "portal:reading": Page(PATIENT, _POST),
    "portal:appointments": Page(PATIENT),
    "portal:appointment_book": Page(PATIENT, _GET_POST),
    "portal:appointment_reschedule": Page(PATIENT, _GET_POST),
    "portal:appointment_cancel": Page(PATIENT, _GET_POST),
    "portal:history": Page(PATIENT),
    "portal:plan": Page(PATIENT),
    "portal:team": Page(PATIENT),
    # --- messaging: portal threads and the staff inbox ---------------------------------------
    "portal:messages": Page(PATIENT, _GET_POST),
    "portal:thread": Page(PATIENT),
    "portal:message_send": Page(PATIENT, _POST),
    "portal:attachment": Page(PATIENT),
    # The inbox names patients and shows their messages; answering is a clinical write.
    "messaging:inbox": Page(_CLINICAL_VIEW),
    "messaging:thread": Page(_CLINICAL_VIEW),
    "messaging:attachment": Page(_CLINICAL_VIEW),
    "messaging:patient": Page(_CLINICAL_VIEW),
    "messaging:reply": Page((*_CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
    "messaging:assign": Page((*_CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
    "messaging:close": Page((*_CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
    "messaging:reopen": Page((*_CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
    # --- questionnaires: portal answering and staff management -------------------------------
    "portal:questionnaires": Page(PATIENT),
    "portal:questionnaire_answer": Page(PATIENT, _GET_POST),
    "portal:questionnaire_result": Page(PATIENT),
    # The library holds no patient data; importing and retiring shape what the organisation
    # sends, an administrator's job. Responses are clinical data; sending one is a clinical act.
    "questionnaires:library": Page((A.CLINICAL_VIEW,)),
    "questionnaires:detail": Page((A.CLINICAL_VIEW,)),
    "questionnaires:import": Page((A.ORG_MANAGE,), _GET_POST),
    "questionnaires:status": Page((A.ORG_MANAGE,), _POST),
    "questionnaires:patient": Page(_CLINICAL_VIEW),
    "questionnaires:patient_section": Page(_CLINICAL_VIEW),
    "questionnaires:send": Page((*_VIEW, A.CLINICAL_WRITE), _POST),
    "questionnaires:response": Page(_CLINICAL_VIEW),
    # --- education: portal library and staff content management -----------------------------
    "portal:learn": Page(PATIENT),
    "portal:learn_item": Page(PATIENT),
    "portal:learn_progress": Page(PATIENT, _POST),
    "portal:learn_video": Page(PATIENT),
    "portal:learn_summary": Page(PATIENT),
    # The library names no patient: reading it is clinical, writing and publishing a clinical
    # write. Visit summaries are a patient's record.
    "education:list": Page((A.CLINICAL_VIEW,)),
    "education:detail": Page((A.CLINICAL_VIEW,)),
    "education:video": Page((A.CLINICAL_VIEW,)),
    "education:create": Page((A.CLINICAL_WRITE,), _GET_POST),
    "education:edit": Page((A.CLINICAL_VIEW, A.CLINICAL_WRITE), _GET_POST),
    "education:publish": Page((A.CLINICAL_VIEW, A.CLINICAL_WRITE), _GET_POST),
    "education:unpublish": Page((A.CLINICAL_VIEW, A.CLINICAL_WRITE), _GET_POST),
    "education:summaries": Page(_CLINICAL_VIEW),
    "education:summary": Page(_CLINICAL_VIEW),
    "education:summary_generate": Page((*_CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
    # --- engagement: points, rewards, leaderboard, community --------------------------------
    "portal:rewards": Page(PATIENT),
    "portal:check_in": Page(PATIENT, _POST),
    "portal:redeem": Page(PATIENT, _GET_POST),
    "portal:redemption": Page(PATIENT),
    "portal:redemption_cancel": Page(PATIENT, _POST),
    "portal:leaderboard": Page(PATIENT, _GET_POST),
    "portal:community": Page(PATIENT),
    "portal:community_detail": Page(PATIENT),
    "portal:community_join": Page(PATIENT, _POST),
    "portal:community_leave": Page(PATIENT, _POST),
    "portal:post_create": Page(PATIENT, _POST),
    "portal:post": Page(PATIENT),
    "portal:post_reply": Page(PATIENT, _POST),
    "portal:post_edit": Page(PATIENT, _GET_POST),
    "portal:post_report": Page(PATIENT, _POST),
    "portal:expert_session": Page(PATIENT, _GET_POST),
    # Staff: moderators (who work the task lists) run the community and its expert sessions;
    # organisation admins keep the reward catalogue, point rules and redemptions. These pages
    # show patients' nicknames and redemption codes only, never names.
    "engagement:community": Page((A.TASK_WORK,)),
    "engagement:community_create": Page((A.TASK_WORK,), _GET_POST),
    "engagement:community_edit": Page((A.TASK_WORK,), _GET_POST),
    "engagement:post_moderate": Page((A.TASK_WORK,), _POST),
    "engagement:report_dismiss": Page((A.TASK_WORK,), _POST),
    "engagement:session_create": Page((A.TASK_WORK,), _GET_POST),
    "engagement:session": Page((A.TASK_WORK,)),
    "engagement:answer": Page((A.TASK_WORK,), _POST),
    "engagement:rewards": Page((A.ORG_MANAGE,), _GET_POST),
    "engagement:reward_edit": Page((A.ORG_MANAGE,), _GET_POST),
    "engagement:rules": Page((A.ORG_MANAGE,), _GET_POST),
    "analytics_estimates:list": Page((A.ORG_MANAGE,), _GET_POST),
    "analytics_estimates:delete": Page((A.ORG_MANAGE,), _POST),
    "engagement:redemptions": Page((A.ORG_MANAGE,)),
    "engagement:redemption_fulfil": Page((A.ORG_MANAGE,), _POST),
    "engagement:redemption_cancel": Page((A.ORG_MANAGE,), _POST),
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
    # The HL7 v2 message log and its replay: organisation admins, who run the HIS interface.
    "hl7v2:list": Page((A.ORG_MANAGE,)),
    "hl7v2:replay": Page((A.ORG_MANAGE,), _POST),
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

# The vitals tab's parts and forms (careloop.observations.views): reading them is clinical;
# entering readings, symptoms, reactions and personal thresholds is a clinical write.
_CLINICAL_WRITE = (*_VIEW, A.CLINICAL_WRITE)
PAGES.update(
    {
        "vitals:charts": Page(_CLINICAL_VIEW),
        "vitals:readings": Page(_CLINICAL_VIEW),
        "vitals:alerts": Page(_CLINICAL_VIEW),
        "vitals:reading_create": Page(_CLINICAL_WRITE, _GET_POST),
        "vitals:symptom_create": Page(_CLINICAL_WRITE, _GET_POST),
        "vitals:reaction_create": Page(_CLINICAL_WRITE, _GET_POST),
        "vitals:thresholds": Page(_CLINICAL_WRITE, _GET_POST),
    }
)

# The staff worklist and alert pages (careloop.alerts.views): they name patients, so they also
# need PATIENT_VIEW; recording a call result is the overdue list's action as well.
_WORK = (A.PATIENT_VIEW, A.TASK_WORK)
PAGES.update(
    {
        "worklist:index": Page(_WORK),
        "worklist:assign": Page(_WORK, _POST),
        "worklist:call_result": Page((*_WORK, A.APPOINTMENT_BOOK), _POST),
        "alerts:list": Page(_WORK),
        "alerts:detail": Page(_WORK),
        "alerts:acknowledge": Page(_WORK, _POST),
        "alerts:resolve": Page(_WORK, _POST),
        "alerts:dismiss": Page(_WORK, _POST),
    }
)

# Reading imports (careloop.observations.import_views): uploading a file of readings is a
# clinical write; its progress and line report are read by the uploader's department colleagues.
_IMPORT = (A.PATIENT_VIEW, A.CLINICAL_WRITE)
PAGES.update(
    {
        "imports:list": Page(_CLINICAL_VIEW),
        "imports:upload": Page(_IMPORT, _POST),
        "imports:detail": Page(_CLINICAL_VIEW),
        "imports:problems": Page(_CLINICAL_VIEW),
    }
)

# Patient-list onboarding (careloop.onboarding.views): registering patients from a file.
_ONBOARD = (A.PATIENT_VIEW, A.PATIENT_CREATE)
PAGES.update(
    {
        "onboarding:list": Page(_ONBOARD),
        "onboarding:upload": Page(_ONBOARD, _POST),
        "onboarding:detail": Page(_ONBOARD),
        "onboarding:mapping": Page(_ONBOARD, _POST),
        "onboarding:run": Page(_ONBOARD, _POST),
        "onboarding:report": Page(_ONBOARD),
    }
)

# FHIR file import from the onboarding page (careloop.onboarding.fhir_views): organisation
# admins only, as the import writes across the organisation's departments.
_FHIR_IMPORT = (A.PATIENT_CREATE, A.ORG_MANAGE)
PAGES.update(
    {
        "fhirimport:list": Page(_FHIR_IMPORT),
        "fhirimport:upload": Page(_FHIR_IMPORT, _POST),
        "fhirimport:detail": Page(_FHIR_IMPORT),
    }
)

# The API tokens page (careloop.accounts.views): each user manages their own tokens; org admins
# see and revoke the organisation's. A token never reaches beyond its user's role and scope.
PAGES.update(
    {
        "tokens:list": Page((A.API_TOKEN,), _GET_POST),
        "tokens:revoke": Page((A.API_TOKEN,), _GET_POST),
    }
)

# FHIR subscriptions (careloop.subscriptions.views): organisation admins see every subscription
# of their organisation with its deliveries, retry or turn them off, and keep the allow-list of
# internal endpoint hosts. Creating subscriptions is the FHIR Subscription type (API_TOKEN).
PAGES.update(
    {
        "subscriptions:list": Page((A.ORG_MANAGE,)),
        "subscriptions:retry": Page((A.ORG_MANAGE,), _POST),
        "subscriptions:off": Page((A.ORG_MANAGE,), _POST),
        "subscriptions:allow_host": Page((A.ORG_MANAGE,), _POST),
        "subscriptions:remove_host": Page((A.ORG_MANAGE,), _POST),
    }
)

# The FHIR R4 interface (careloop.fhir): the CapabilityStatement is public; every other route
# authorises per resource type and interaction (see FHIR above). Writes (POST of a resource or
# a Bundle, PUT, DELETE) take a FHIR JSON body and are exercised by tests/fhir.
PAGES.update(
    {
        "fhir:metadata": Page(PUBLIC),
        "fhir_base": Page(FHIR),
        "fhir:root": Page(FHIR),
        "fhir:type": Page(FHIR),
        "fhir:search": Page(FHIR, _POST),
        "fhir:instance": Page(FHIR),
        "fhir:history": Page(FHIR),
        "fhir:vread": Page(FHIR),
    }
)

# FHIR Bulk Data $export (careloop.fhir.bulk): each type exported needs the same role actions
# and scopes as reading it. The kick-offs answer only asynchronous requests (`Prefer:
# respond-async` and `Accept: application/fhir+json`; 400 otherwise), which tests/fhir/scene.py
# sends in the route matrix. A group export holds only types narrowed to patients, which an
# auditor may not read (403 where the matrix expects any staff role through): its methods are
# not walked there, and tests/fhir/test_bulk_export.py calls it as every role and anonymously.
# Status (GET; DELETE cancels) and files answer only the user who started the export; anyone
# else gets 404.
PAGES.update(
    {
        "fhir:export": Page(FHIR),
        "fhir:patient_export": Page(FHIR),
        "fhir:group_export": Page(FHIR, ()),
        "fhir:export_status": Page(FHIR),
        "fhir:export_file": Page(FHIR),
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

# The worklist, alerts and personal thresholds (careloop.alerts.api).
API.update(
    {
        "GET /api/worklist": _WORK,
        "GET /api/alerts": _WORK,
        "GET /api/alerts/{alert_id}": _WORK,
        "POST /api/alerts/{alert_id}/acknowledge": _WORK,
        "POST /api/alerts/{alert_id}/resolve": _WORK,
        "POST /api/alerts/{alert_id}/dismiss": _WORK,
        "POST /api/assign": _WORK,
        f"GET {_ONE}/thresholds": _CLINICAL_VIEW,
        f"PUT {_ONE}/thresholds": (*_VIEW, A.CLINICAL_WRITE),
    }
)

# Readings, adverse drug reactions and the symptom diary (careloop.observations.api).
API.update(
    {
        "POST /api/observations": _IMPORT,
        "POST /api/observations/batch": _IMPORT,
        f"GET {_ONE}/observations": _CLINICAL_VIEW,
        f"GET {_ONE}/adverse-reactions": _CLINICAL_VIEW,
        f"POST {_ONE}/adverse-reactions": (*_VIEW, A.CLINICAL_WRITE),
        f"GET {_ONE}/symptoms": _CLINICAL_VIEW,
        f"POST {_ONE}/symptoms": (*_VIEW, A.CLINICAL_WRITE),
    }
)

# The staff inbox (careloop.messaging.api).
API.update(
    {
        "GET /api/messages": _CLINICAL_VIEW,
        "GET /api/messages/{thread_id}": _CLINICAL_VIEW,
        "POST /api/messages/{thread_id}/reply": (*_CLINICAL_VIEW, A.CLINICAL_WRITE),
        "POST /api/messages/{thread_id}/assign": (*_CLINICAL_VIEW, A.CLINICAL_WRITE),
        "POST /api/messages/{thread_id}/close": (*_CLINICAL_VIEW, A.CLINICAL_WRITE),
    }
)

# Questionnaires (careloop.questionnaires.api).
API.update(
    {
        "GET /api/questionnaires": (A.CLINICAL_VIEW,),
        "POST /api/questionnaires": (A.ORG_MANAGE,),
        "POST /api/questionnaires/assignments": (*_VIEW, A.CLINICAL_WRITE),
        "GET /api/questionnaires/patients/{patient_id}/responses": _CLINICAL_VIEW,
    }
)

# Analytics dashboards (careloop.analytics): aggregate figures need ANALYTICS_VIEW; the lists of
# patients behind a figure (and their downloads) also need PATIENT_VIEW.
_ANALYTICS = (A.ANALYTICS_VIEW,)
_ANALYTICS_PATIENTS = (A.ANALYTICS_VIEW, A.PATIENT_VIEW)
PAGES.update(
    {
        "analytics:dashboard": Page(_ANALYTICS),
        "analytics:card": Page(_ANALYTICS),
        "analytics:metric": Page(_ANALYTICS),
        "analytics:metric_export": Page(_ANALYTICS),
        "analytics:drilldown": Page(_ANALYTICS_PATIENTS),
        "analytics:drilldown_export": Page(_ANALYTICS_PATIENTS),
    }
)

# Monthly department reports (careloop.analytics.reports): organisation admins and department
# heads (dashboards and the department's schedules); a department outside their scope is 404.
_REPORTS = (A.ANALYTICS_VIEW, A.SCHEDULE_MANAGE)
PAGES.update(
    {
        "reports:monthly": Page(_REPORTS),
        "reports:schedules": Page(_REPORTS),
        "reports:schedule_edit": Page(_REPORTS, _GET_POST),
        "reports:send_test": Page(_REPORTS, _POST),
    }
)

# --- careloop.segments (patient segments): its routes below.
# Counts and the chart need ANALYTICS_VIEW; the members (and their download) also PATIENT_VIEW
# (scope-limited); defining, deactivating and recomputing segments is an organisation matter.
PAGES.update(
    {
        "segments:list": Page((A.ANALYTICS_VIEW,)),
        "segments:detail": Page((A.ANALYTICS_VIEW, A.PATIENT_VIEW)),
        "segments:export": Page((A.ANALYTICS_VIEW, A.PATIENT_VIEW)),
        "segments:create": Page((A.ORG_MANAGE,), _GET_POST),
        "segments:edit": Page((A.ORG_MANAGE,), _GET_POST),
        "segments:deactivate": Page((A.ORG_MANAGE,), _GET_POST),
        "segments:recompute": Page((A.ORG_MANAGE,), _POST),
    }
)

# --- careloop.risk (risk model): its routes below.
# The model card and drift are aggregate figures; the worklist names patients (scope-limited),
# and opening a call task from it writes to the patient's care.
PAGES.update(
    {
        "risk:card": Page((A.ANALYTICS_VIEW,)),
        "risk:drift": Page((A.ANALYTICS_VIEW,)),
        "risk:worklist": Page(_VIEW),
        "risk:worklist_export": Page(_VIEW),
        "risk:call_task": Page((A.PATIENT_VIEW, A.CLINICAL_WRITE), _POST),
    }
)

# --- careloop.sendtime (send-time learning): its routes below.
# The lift report shows aggregate figures only (ANALYTICS_VIEW); the settings are the
# organisation's (ORG_MANAGE).
PAGES.update(
    {
        "sendtime:report": Page((A.ANALYTICS_VIEW,)),
        "sendtime:settings": Page((A.ORG_MANAGE,), _GET_POST),
    }
)

# --- careloop.experiments (A/B experiments): its routes below.
# Results are figures per arm (no patient named): ANALYTICS_VIEW. Designing, starting and
# stopping an experiment changes patients' reminders: organisation admins only.
_EXPERIMENTS = (A.ANALYTICS_VIEW,)
_EXPERIMENTS_MANAGE = (A.ORG_MANAGE,)
PAGES.update(
    {
        "experiments:list": Page(_EXPERIMENTS),
        "experiments:detail": Page(_EXPERIMENTS),
        "experiments:export": Page(_EXPERIMENTS),
        "experiments:create": Page(_EXPERIMENTS_MANAGE, _GET_POST),
        "experiments:edit": Page(_EXPERIMENTS_MANAGE, _GET_POST),
        "experiments:start": Page(_EXPERIMENTS_MANAGE, _POST),
        "experiments:stop": Page(_EXPERIMENTS_MANAGE, _POST),
    }
)

# --- careloop.insights (patient portrait panel): its routes below.
# The 360 page's insights panel shows clinical behaviour of one patient; the call it opens is a
# clinical write (a nurse task recorded against the risk score).
PAGES.update(
    {
        "insights:patient_panel": Page(_CLINICAL_VIEW),
        "insights:call_task": Page((A.PATIENT_VIEW, A.CLINICAL_VIEW, A.CLINICAL_WRITE), _POST),
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
    if requirement == FHIR:
        return signed_in and getattr(user, "organisation_id", None) is not None
    if requirement == PATIENT:
        return bool(getattr(user, "is_portal_patient", False))
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

"""What each JSON API operation is in SMART scope terms: a FHIR resource type and an interaction.

Keyed like ``access.API`` (``METHOD path-template``). The interaction is one letter of
``cruds``: ``s`` lists, ``r`` reads one, ``c`` creates, ``u`` changes (actions such as
``/acknowledge`` too), ``d`` removes. A type of ``*`` needs a wildcard scope (the timeline shows
every kind of row). ``None`` marks an operation that shows no patient data (any token may call it).

A token's scopes only ever narrow what its user's role and departments allow: the role checks of
each operation still run. Operations allowed to a token only through ``patient/`` scopes must
reach no patient but the bound one: those under ``/patients/{patient_id}`` are checked here on
the path, and those listed in ``PATIENT_FILTERED`` go through ``visible_patients``, which is
narrowed to the bound patient. Every other operation refuses patient-context tokens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor, client_address
from careloop.audit import services as audit
from careloop.fhir.scopes import ScopeError, Scopes
from careloop.kit.errors import Forbidden, NotFound
from careloop.web.access import RECORD_WRITE

if TYPE_CHECKING:
    from django.http import HttpRequest

    from careloop.accounts.models import ApiToken

Operation = tuple[str, str] | None

# FHIR resource type of each kind of row in a patient's file.
RECORD_TYPES: dict[str, str] = {
    "conditions": "Condition",
    "allergies": "AllergyIntolerance",
    "medications": "MedicationRequest",
    "dispenses": "MedicationDispense",
    "history": "Condition",  # past, surgical and family history
    "lifestyle": "Observation",  # social history
    "visits": "Encounter",
    "reports": "DiagnosticReport",
    "caregivers": "RelatedPerson",
    "consents": "Consent",
}

_P = "/api/patients"
_ONE = f"{_P}/{{patient_id}}"
_AP = "/api/appointments"
_AP_ONE = f"{_AP}/{{appointment_id}}"

API_RESOURCES: dict[str, Operation] = {
    "GET /api/me": None,
    f"GET {_P}": ("Patient", "s"),
    f"POST {_P}": ("Patient", "c"),
    f"GET {_ONE}": ("Patient", "r"),
    f"PATCH {_ONE}": ("Patient", "u"),
    f"POST {_ONE}/merge": ("Patient", "u"),
    f"GET {_ONE}/timeline": ("*", "r"),
    f"POST {_ONE}/reports/{{record_id}}/file": ("DiagnosticReport", "u"),
    f"GET {_ONE}/reports/{{record_id}}/file": ("DiagnosticReport", "r"),
    "GET /api/audit/events": ("AuditEvent", "s"),
    # Appointments
    f"GET {_AP}/slots": ("Slot", "s"),
    f"POST {_AP}": ("Appointment", "c"),
    f"GET {_AP}/queue": ("Appointment", "s"),
    f"POST {_AP}/queue/call-next": ("Appointment", "u"),
    f"GET {_AP}/overdue": ("Appointment", "s"),
    f"GET {_AP_ONE}": ("Appointment", "r"),
    f"POST {_AP_ONE}/reschedule": ("Appointment", "u"),
    f"POST {_AP_ONE}/cancel": ("Appointment", "u"),
    f"POST {_AP_ONE}/check-in": ("Appointment", "u"),
    f"POST {_AP_ONE}/no-show": ("Appointment", "u"),
    f"POST {_AP_ONE}/complete": ("Appointment", "u"),
    # Care plans and reminders
    "GET /api/plans/templates": ("PlanDefinition", "s"),
    f"GET {_ONE}/enrolments": ("CarePlan", "s"),
    f"POST {_ONE}/enrolments/preview": ("CarePlan", "r"),
    f"POST {_ONE}/enrolments": ("CarePlan", "c"),
    "POST /api/enrolments/{enrolment_id}/end": ("CarePlan", "u"),
    "PATCH /api/enrolments/{enrolment_id}": ("CarePlan", "u"),
    f"GET {_ONE}/occurrences": ("CommunicationRequest", "s"),
    f"PUT {_ONE}/reminder-preferences": ("Patient", "u"),
    "POST /api/occurrences/{occurrence_id}/acknowledge": ("CommunicationRequest", "u"),
    "GET /api/operations": ("CommunicationRequest", "s"),
    "POST /api/operations/dead-letters/{occurrence_id}/retry": ("CommunicationRequest", "u"),
    # Worklist, alerts (FHIR Task semantics) and personal thresholds
    "GET /api/worklist": ("Task", "s"),
    "GET /api/alerts": ("Task", "s"),
    "GET /api/alerts/{alert_id}": ("Task", "r"),
    "POST /api/alerts/{alert_id}/acknowledge": ("Task", "u"),
    "POST /api/alerts/{alert_id}/resolve": ("Task", "u"),
    "POST /api/alerts/{alert_id}/dismiss": ("Task", "u"),
    "POST /api/assign": ("Task", "u"),
    f"GET {_ONE}/thresholds": ("ObservationDefinition", "s"),
    f"PUT {_ONE}/thresholds": ("ObservationDefinition", "u"),
    # Readings, adverse reactions, symptoms
    "POST /api/observations": ("Observation", "c"),
    "POST /api/observations/batch": ("Observation", "c"),
    f"GET {_ONE}/observations": ("Observation", "s"),
    f"GET {_ONE}/adverse-reactions": ("AdverseEvent", "s"),
    f"POST {_ONE}/adverse-reactions": ("AdverseEvent", "c"),
    f"GET {_ONE}/symptoms": ("Observation", "s"),
    f"POST {_ONE}/symptoms": ("Observation", "c"),
    # The staff inbox
    "GET /api/messages": ("Communication", "s"),
    "GET /api/messages/{thread_id}": ("Communication", "r"),
    "POST /api/messages/{thread_id}/reply": ("Communication", "c"),
    "POST /api/messages/{thread_id}/assign": ("Communication", "u"),
    "POST /api/messages/{thread_id}/close": ("Communication", "u"),
    # Questionnaires
    "GET /api/questionnaires": ("Questionnaire", "s"),
    "POST /api/questionnaires": ("Questionnaire", "c"),
    "POST /api/questionnaires/assignments": ("Task", "c"),
    "GET /api/questionnaires/patients/{patient_id}/responses": ("QuestionnaireResponse", "s"),
}
for _kind in RECORD_WRITE:
    _type = RECORD_TYPES[_kind]
    API_RESOURCES.update(
        {
            f"GET {_ONE}/{_kind}": (_type, "s"),
            f"POST {_ONE}/{_kind}": (_type, "c"),
            f"GET {_ONE}/{_kind}/{{record_id}}": (_type, "r"),
            f"PATCH {_ONE}/{_kind}/{{record_id}}": (_type, "u"),
            f"DELETE {_ONE}/{_kind}/{{record_id}}": (_type, "d"),
        }
    )

# Operations without a patient in their path whose every patient goes through visible_patients.
PATIENT_FILTERED = frozenset(
    {f"GET {_P}", "POST /api/observations", "POST /api/observations/batch"}
)


def api_operation(method: str, path: str) -> Operation:
    """The (type, interaction) of an API operation; KeyError for an unlisted one."""
    return API_RESOURCES[f"{method.upper()} {path}"]


_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def operation_key(request: HttpRequest) -> str:
    """``METHOD /api/path/{param}`` of the operation a request was routed to."""
    match = request.resolver_match
    route = match.route if match is not None else ""
    template = _CONVERTER.sub(r"{\1}", route)
    return f"{(request.method or '').upper()} /{template}"


def _deny(token: ApiToken, request: HttpRequest, key: str, patient: Any = None) -> None:
    actor = Actor(user=token.staff, source=client_address(request), channel="api")
    text = str(patient or "")
    patient_id = int(text) if text.isdigit() and len(text) <= 12 else None
    audit.record_denied(
        actor,
        "token.scope",
        patient_id=patient_id,
        detail={"reason": "scope", "operation": key, "token": token.pk},
    )


def enforce(request: HttpRequest, token: ApiToken) -> None:
    """Refuse an operation the token's scopes do not cover (403), or a patient other than the
    one a patient-context token is bound to (404); both audited. Sets
    ``request.auth_bound_patient_id`` when only patient/ scopes allow the operation."""
    if not token.scopes.strip():
        return  # unrestricted: the user's role and departments alone decide
    key = operation_key(request)
    if request.resolver_match is None:
        _deny(token, request, key)
        raise Forbidden(_("This token's scopes do not cover this operation."))
    if not key.split(" ", 1)[1].startswith("/api/"):
        return  # another API sharing the bearer scheme (FHIR) checks scopes per interaction
    try:
        scopes = Scopes.parse(token.scopes)
    except ScopeError:
        scopes = Scopes()  # a stored scope that no longer parses grants nothing
    if key not in API_RESOURCES:
        _deny(token, request, key)
        raise Forbidden(_("This token's scopes do not cover this operation."))
    operation = API_RESOURCES[key]
    if operation is None:
        return
    resource_type, interaction = operation
    if not scopes.allows(resource_type, interaction):
        _deny(token, request, key)
        raise Forbidden(
            _("This token's scopes do not allow %(interaction)s on %(type)s.")
            % {"interaction": INTERACTION_NAMES[interaction], "type": resource_type}
        )
    if not scopes.patient_only(resource_type, interaction):
        return
    bound = token.patient_id or 0
    kwargs = request.resolver_match.kwargs if request.resolver_match is not None else {}
    in_path = kwargs.get("patient_id")
    if in_path is not None:
        if str(in_path) != str(bound):
            _deny(token, request, key, in_path)
            raise NotFound()
    elif key not in PATIENT_FILTERED:
        _deny(token, request, key)
        raise Forbidden(_("A token bound to one patient cannot use this operation."))
    request.auth_bound_patient_id = bound  # type: ignore[attr-defined]


INTERACTION_NAMES = {
    "c": gettext_lazy("create"),
    "r": gettext_lazy("read"),
    "u": gettext_lazy("update"),
    "d": gettext_lazy("delete"),
    "s": gettext_lazy("search"),
}

"""AuditEvent ↔ audit.AuditEvent: the tamper-evident audit trail, read and search only.

Only roles that may open the audit log in the staff pages (the ``audit.view`` action: auditors)
may read it, and only their own organisation's events; a token in patient context sees only
events about its patient. Reading the trail is itself audited.

- ``type``: ``urn:careloop:audit-event-type`` with the first part of CareLoop's action name
  (``conditions``, ``patient``, ``fhir``...); ``subtype``: ``urn:careloop:audit-event`` with the
  whole action name (``conditions.update``).
- ``action``: C, R, U, D or E from the action's last part (create; read, search, export...;
  update, merge, link...; delete; anything else E).
- ``outcome``: success 0, denied 4 (minor failure, ``outcomeDesc`` "denied" and the reason),
  failure 8.
- ``agent``: the staff member (``Practitioner/<id>``) with the client address.
- ``entity``: the patient (``Patient/<id>``) and the object acted on: a reference when it is a
  type served here, else an identifier ``urn:careloop:<table>``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit.models import AuditEvent
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c

TYPE = "urn:careloop:audit-event-type"
SUBTYPE = "urn:careloop:audit-event"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
NETWORK_IP = "2"
_VERBS = {
    "C": ("create",),
    "R": ("read", "search", "export", "download", "vread", "history-instance", "search-type"),
    "U": ("update", "merge", "link", "replay"),
    "D": ("delete",),
}
_OUTCOME = {"success": "0", "denied": "4", "failure": "8"}
_OUTCOME_IN = {v: k for k, v in _OUTCOME.items()}
# Tables (label_lower) → the FHIR type their rows are served as.
OBJECT_TYPES = {
    "patients.patient": "Patient",
    "patients.condition": "Condition",
    "patients.allergy": "AllergyIntolerance",
    "patients.medication": "MedicationRequest",
    "patients.dispense": "MedicationDispense",
    "patients.encounter": "Encounter",
    "patients.consent": "Consent",
    "patients.recordversion": "Provenance",
    "accounts.staff": "Practitioner",
    "audit.auditevent": "AuditEvent",
}


def _verb_q(verbs: tuple[str, ...]) -> Q:
    found = Q(pk__in=[])
    for verb in verbs:
        found |= Q(action__endswith=f".{verb}")
    return found


def action_code(action: str) -> str:
    verb = action.rsplit(".", 1)[-1]
    return next((code for code, verbs in _VERBS.items() if verb in verbs), "E")


def _action(system: str | None, value: str) -> Q:
    if system not in (None, "") or value not in ("C", "R", "U", "D", "E"):
        return Q(pk__in=[])
    if value == "E":
        known = Q(pk__in=[])
        for verbs in _VERBS.values():
            known |= _verb_q(verbs)
        return ~known
    return _verb_q(_VERBS[value])


def _outcome(system: str | None, value: str) -> Q:
    return Q(outcome=_OUTCOME_IN[value]) if value in _OUTCOME_IN else Q(pk__in=[])


def _type(system: str | None, value: str) -> Q:
    if system not in (None, TYPE) or not value:
        return Q(pk__in=[])
    return Q(action=value) | Q(action__startswith=f"{value}.")


def _subtype(system: str | None, value: str) -> Q:
    return Q(action=value) if system in (None, SUBTYPE) and value else Q(pk__in=[])


def _agent(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    return Q(actor_id=c.pk_of(reference_id(raw, "Practitioner")))


def _entity(raw: str) -> Q:
    """``Patient/12`` matches events about that patient; ``Condition/5`` those about that row."""
    kind, _sep, ident = raw.rstrip("/").rpartition("/")
    kind = kind.rsplit("/", 1)[-1]
    if kind == "Patient":
        return Q(patient_id=c.pk_of(ident)) | Q(object_type="patients.patient", object_id=ident)
    tables = [t for t, rt in OBJECT_TYPES.items() if rt == kind]
    if not tables or not ident:
        return Q(pk__in=[])
    return Q(object_type__in=tables, object_id=ident[:64])


@register
class AuditEventMapper(Mapper):
    resource_type = "AuditEvent"
    model = AuditEvent
    interactions = READ_ONLY
    read_actions = (Action.AUDIT_VIEW,)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("at")),
        "date": SearchParam("date", c.last_updated_param("at")),
        "agent": SearchParam("reference", _agent),
        "entity": SearchParam("reference", _entity),
        "patient": SearchParam("reference", c.patient_param()),
        "action": SearchParam("token", _action),
        "outcome": SearchParam("token", _outcome),
        "type": SearchParam("token", _type),
        "subtype": SearchParam("token", _subtype),
    }
    sorts = {"_id": "pk", "_lastUpdated": "at", "date": "at"}
    default_sort = ("-at", "-pk")
    include_targets = {"patient": "Patient"}

    def visible(self, actor: Actor) -> QuerySet[Any]:
        if actor.organisation_id is None:
            return AuditEvent.objects.none()
        return AuditEvent.objects.filter(organisation_id=actor.organisation_id)

    def version_of(self, obj: Any) -> int:
        return 1  # audit rows are never changed

    def last_updated(self, obj: Any) -> Any:
        return obj.at

    def _entity_of(self, obj: Any) -> dict[str, Any] | None:
        if not obj.object_type or not obj.object_id:
            return None
        rtype = OBJECT_TYPES.get(obj.object_type)
        what: dict[str, Any] = (
            {"reference": f"{rtype}/{obj.object_id}"}
            if rtype
            else {
                "identifier": {"system": f"urn:careloop:{obj.object_type}", "value": obj.object_id}
            }
        )
        return {"what": what, "type": {"system": ENTITY_TYPE, "code": "2"}}

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        agent: dict[str, Any] = {"requestor": True}
        if obj.actor_id:
            agent["who"] = {"reference": f"Practitioner/{obj.actor_id}", "display": obj.actor}
        else:
            agent["who"] = {"display": obj.actor or "CareLoop"}
        if obj.source:
            agent["network"] = {"address": obj.source, "type": NETWORK_IP}
        out: dict[str, Any] = {
            "type": {"system": TYPE, "code": obj.action.split(".", 1)[0]},
            "subtype": [{"system": SUBTYPE, "code": obj.action}],
            "action": action_code(obj.action),
            "recorded": instant(obj.at),
            "outcome": _OUTCOME.get(obj.outcome, "8"),
            "agent": [agent],
            "source": {
                "site": "CareLoop",
                "observer": {"reference": f"Organization/org-{obj.organisation_id}"},
            },
        }
        if obj.outcome == "denied":
            reason = (obj.detail or {}).get("reason") if isinstance(obj.detail, dict) else None
            out["outcomeDesc"] = f"denied ({reason})" if isinstance(reason, str) else "denied"
        entities: list[dict[str, Any]] = []
        if obj.patient_id:
            entities.append(
                {
                    "what": {"reference": f"Patient/{obj.patient_id}"},
                    "type": {"system": ENTITY_TYPE, "code": "1"},
                    "role": {"system": OBJECT_ROLE, "code": "1"},
                }
            )
        found = self._entity_of(obj)
        if found is not None and not (
            obj.object_type == "patients.patient" and str(obj.object_id) == str(obj.patient_id)
        ):
            entities.append(found)
        if entities:
            out["entity"] = entities
        return out

"""Provenance ↔ patients.RecordVersion: who created, changed or removed a record, and when.

One Provenance per version of a record served here: ``target`` is the versioned reference of
the record (``Condition/12/_history/3``; a row of the medication list is both a
MedicationRequest and a MedicationStatement), ``recorded`` the time of the change, ``agent`` the
staff member (a Practitioner) who made it, and ``activity`` CREATE, UPDATE or DELETE (v3
DataOperation; a merge of duplicate patients is an UPDATE with the text "merge"). Versions of
rows that have no FHIR type here (history, lifestyle, reports, caregivers) are not shown.

Read and search only. Scope is the patient of the changed record: the same patients the actor
may see elsewhere; a token in patient context sees only its own patient's provenance.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, instant, mappers, register
from careloop.fhir.resources import common as c
from careloop.patients import models as pm
from careloop.patients import selectors

OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
# Record kind → the FHIR types its rows are served as.
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "patient": ("Patient",),
    "conditions": ("Condition",),
    "allergies": ("AllergyIntolerance",),
    "medications": ("MedicationRequest", "MedicationStatement"),
    "dispenses": ("MedicationDispense",),
    "visits": ("Encounter",),
    "consents": ("Consent",),
}
_ACTIVITY = {"create": "CREATE", "update": "UPDATE", "delete": "DELETE", "merge": "UPDATE"}


def served_kinds() -> dict[str, tuple[str, ...]]:
    """Kinds whose rows some registered type serves, with those types."""
    served = set(mappers())
    out = {k: tuple(t for t in types if t in served) for k, types in KIND_TYPES.items()}
    return {k: types for k, types in out.items() if types}


def _target(raw: str) -> Q:
    """``Condition/12`` (any version) or ``Condition/12/_history/3`` (that version)."""
    parts = raw.rstrip("/").split("/")
    version = None
    if len(parts) >= 4 and parts[-2] == "_history":
        version, parts = parts[-1], parts[:-2]
    if len(parts) < 2:
        return Q(pk__in=[])
    rtype, ident = parts[-2], parts[-1]
    kinds = [k for k, types in KIND_TYPES.items() if rtype in types]
    pk = c.pk_of(ident)
    if not kinds or not pk:
        return Q(pk__in=[])
    found = Q(kind__in=kinds, object_id=pk)
    if version is not None:
        found &= Q(version=c.pk_of(version))
    return found


def _agent(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    return Q(actor_id=c.pk_of(reference_id(raw, "Practitioner")))


@register
class ProvenanceMapper(Mapper):
    resource_type = "Provenance"
    model = pm.RecordVersion
    interactions = READ_ONLY
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("at")),
        "patient": SearchParam("reference", c.patient_param()),
        "target": SearchParam("reference", _target),
        "recorded": SearchParam("date", c.last_updated_param("at")),
        "agent": SearchParam("reference", _agent),
    }
    sorts = {"_id": "pk", "_lastUpdated": "at", "recorded": "at"}
    default_sort = ("-at", "-pk")
    include_targets = {"patient": "Patient"}

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return pm.RecordVersion.objects.filter(
            kind__in=list(served_kinds()),
            patient_id__in=selectors.visible_patients(actor).values("pk"),
        ).select_related("actor")

    def version_of(self, obj: Any) -> int:
        return 1  # a version row never changes

    def last_updated(self, obj: Any) -> Any:
        return obj.at

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        types = served_kinds().get(obj.kind) or KIND_TYPES.get(obj.kind, ())
        activity: dict[str, Any] = {
            "coding": [{"system": OPERATION, "code": _ACTIVITY.get(obj.change, "UPDATE")}]
        }
        if obj.change == "merge":
            activity["text"] = "merge"
        who: dict[str, Any] = {"display": "CareLoop"}
        if obj.actor_id:
            name = (obj.actor.display_name or obj.actor.get_username()) if obj.actor else ""
            who = {"reference": f"Practitioner/{obj.actor_id}", "display": name}
        return {
            "target": [{"reference": f"{t}/{obj.object_id}/_history/{obj.version}"} for t in types],
            "recorded": instant(obj.at),
            "activity": activity,
            "agent": [
                {
                    "type": {"coding": [{"system": PARTICIPANT, "code": "author"}]},
                    "who": who,
                }
            ],
        }

"""Organization ↔ the actor's accounts.Organisation ("org-<n>") and its Departments
("dept-<n>", part of their organisation). Read and search only."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, register

_PREFIX = {"org": Organisation, "dept": Department}


def _id(system: str | None, value: str) -> Q:
    kind, _sep, number = value.partition("-")
    if kind not in _PREFIX or not number.isdigit() or len(number) > 18:
        return Q(pk__in=[])
    return Q(kind=kind, number=int(number))


@register
class OrganizationMapper(Mapper):
    """Both tables are small; a search reads the actor's organisation and its departments and
    filters them in memory (``search_params`` are applied by ``matches``)."""

    resource_type = "Organization"
    model = Organisation
    interactions = READ_ONLY
    read_actions = ()
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", _id),
        "name": SearchParam("string", lambda v: Q(name__icontains=v)),
    }
    sorts = {"name": "name"}

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return Organisation.objects.filter(pk=actor.organisation_id or 0)

    def all_for(self, actor: Actor) -> list[Any]:
        org = Organisation.objects.filter(pk=actor.organisation_id or 0).first()
        if org is None:
            return []
        return [org, *Department.objects.filter(organisation=org).order_by("pk")]

    def find(self, actor: Actor, ident: str) -> Any:
        return next((o for o in self.all_for(actor) if self.id_of(o) == ident), None)

    def matches(self, obj: Any, name: str, value: Any) -> bool:
        if name == "_id":
            return self.id_of(obj) == value[1]
        if name == "name":
            names = [obj.name, getattr(obj, "name_en", "")]
            return any(value.lower() in (n or "").lower() for n in names)
        return False

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def id_of(self, obj: Any) -> str:
        return f"{'dept' if isinstance(obj, Department) else 'org'}-{obj.pk}"

    def last_updated(self, obj: Any) -> Any:
        if isinstance(obj, Department):
            return obj.organisation.created_at
        return obj.created_at

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, Department):
            out: dict[str, Any] = {
                "active": True,
                "identifier": [{"system": "urn:careloop:department", "value": obj.code}],
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                "code": "dept",
                                "display": "Hospital Department",
                            }
                        ]
                    }
                ],
                "name": obj.name,
                "partOf": {"reference": f"Organization/org-{obj.organisation_id}"},
            }
            if obj.name_en:
                out["alias"] = [obj.name_en]
            return out
        return {
            "active": True,
            "identifier": [{"system": "urn:careloop:organisation", "value": obj.code}],
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                }
            ],
            "name": obj.name,
        }

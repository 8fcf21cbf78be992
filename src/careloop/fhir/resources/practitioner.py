"""Practitioner ↔ accounts.Staff of the actor's organisation (read and search only)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Staff
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, register
from careloop.fhir.resources import common as c


@register
class PractitionerMapper(Mapper):
    resource_type = "Practitioner"
    model = Staff
    interactions = READ_ONLY
    read_actions = ()
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "name": SearchParam(
            "string", lambda v: Q(display_name__icontains=v) | Q(username__icontains=v)
        ),
        "active": SearchParam(
            "token",
            lambda s, v: Q(is_active=v == "true") if v in ("true", "false") else Q(pk__in=[]),
        ),
    }
    sorts = {"_id": "pk", "name": "display_name"}
    default_sort = ("pk",)

    def visible(self, actor: Actor) -> QuerySet[Any]:
        if actor.organisation_id is None:
            return Staff.objects.none()
        return Staff.objects.filter(organisation_id=actor.organisation_id)

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def last_updated(self, obj: Any) -> Any:
        return obj.date_joined

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        return {
            "active": bool(obj.is_active),
            "name": [{"text": obj.display_name or obj.get_username()}],
        }

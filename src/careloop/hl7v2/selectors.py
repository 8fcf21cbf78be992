"""Reading the HL7 v2 message log (organisation admins only)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.hl7v2 import models as hm
from careloop.kit.errors import NotFound
from careloop.patients.selectors import require


@dataclass
class LogFilter:
    status: str = ""
    message_type: str = ""
    control_id: str = ""


def messages(actor: Actor, flt: LogFilter) -> QuerySet[hm.Message]:
    require(actor, Action.ORG_MANAGE)
    qs = hm.Message.objects.filter(organisation_id=actor.organisation_id or 0).defer("raw")
    if flt.status:
        qs = qs.filter(status=flt.status)
    if flt.message_type:
        qs = qs.filter(message_type__istartswith=flt.message_type)
    if flt.control_id:
        qs = qs.filter(control_id=flt.control_id)
    return qs


def message(actor: Actor, message_id: int) -> hm.Message:
    require(actor, Action.ORG_MANAGE)
    found = hm.Message.objects.filter(organisation_id=actor.organisation_id or 0, pk=message_id)
    row = found.first()
    if row is None:
        raise NotFound()
    return row


def type_names(actor: Actor) -> list[str]:
    qs = hm.Message.objects.filter(organisation_id=actor.organisation_id or 0)
    return sorted(set(qs.values_list("message_type", flat=True).distinct()) - {""})

"""Reading the audit trail: auditors only, their own organisation only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services
from careloop.audit.models import AuditEvent
from careloop.kit.errors import Forbidden


@dataclass
class AuditFilter:
    patient_id: int | None = None
    actor: str = ""
    action: str = ""
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None


def _require(actor: Actor, action: Action) -> None:
    if not actor.can(action):
        services.record_denied(actor, str(action), detail={"reason": "role"})
        raise Forbidden()


def events(actor: Actor, flt: AuditFilter, *, export: bool = False) -> QuerySet[AuditEvent]:
    _require(actor, Action.AUDIT_EXPORT if export else Action.AUDIT_VIEW)
    org = actor.organisation_id
    qs = AuditEvent.objects.filter(organisation_id=org)
    if flt.patient_id:
        qs = qs.filter(patient_id=flt.patient_id)
    if flt.actor:
        qs = qs.filter(actor__iexact=flt.actor.strip())
    if flt.action:
        qs = qs.filter(Q(action=flt.action) | Q(action__startswith=flt.action.rstrip(".") + "."))
    if flt.outcome:
        qs = qs.filter(outcome=flt.outcome)
    tz = ZoneInfo(
        actor.user.organisation.time_zone if actor.user.organisation else settings.TIME_ZONE
    )
    if flt.date_from:
        qs = qs.filter(at__gte=datetime.combine(flt.date_from, time.min, tzinfo=tz))
    if flt.date_to:
        qs = qs.filter(
            at__lt=datetime.combine(flt.date_to + timedelta(days=1), time.min, tzinfo=tz)
        )
    services.record(
        actor,
        "audit.export" if export else "audit.search",
        detail={"filters": sorted(k for k, v in flt.__dict__.items() if v)},
    )
    return qs.order_by("-at", "-id")


def action_names(actor: Actor) -> list[str]:
    _require(actor, Action.AUDIT_VIEW)
    return sorted(
        set(
            AuditEvent.objects.filter(organisation_id=actor.organisation_id)
            .values_list("action", flat=True)
            .distinct()[:500]
        )
    )


def as_row(e: AuditEvent) -> dict[str, Any]:
    return {
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "outcome": e.outcome,
        "patient_id": e.patient_id,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "source": e.source,
        "seq": e.seq,
    }

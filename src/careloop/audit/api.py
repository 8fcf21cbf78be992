"""Audit trail over the API: auditors only."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest
from ninja import Router

from careloop.accounts.actor import Actor
from careloop.audit import selectors
from careloop.kit.pagination import paginate

router = Router(tags=["audit"])


@router.get("/events", summary="Search audit events of the caller's organisation")
def list_events(
    request: HttpRequest,
    patient: int | None = None,
    actor: str = "",
    action: str = "",
    outcome: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    page: int = 1,
    size: int = 50,
) -> dict[str, Any]:
    who = Actor.from_api(request)
    flt = selectors.AuditFilter(
        patient_id=patient,
        actor=actor,
        action=action,
        outcome=outcome,
        date_from=date_from,
        date_to=date_to,
    )
    result = paginate(selectors.events(who, flt), page, size)
    return {
        "total": result.total,
        "page": result.number,
        "size": result.size,
        "items": [selectors.as_row(e) for e in result.items],
    }

"""JSON API of the worklist and alerts: /api/worklist, /api/alerts, /api/assign and a patient's
personal thresholds (/api/patients/{id}/thresholds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.translation import get_language
from ninja import Field, Query, Router, Schema

from careloop.accounts.actor import Actor
from careloop.alerts import labels, selectors, services
from careloop.alerts import models as am

router = Router(tags=["alerts"])


class Reading(Schema):
    at: datetime | None
    value: float | None
    value2: float | None = None
    context: str = ""


class WorkItemOut(Schema):
    section: str = Field(description="urgent | due | overdue")
    kind: str = Field(description="alert | task | overdue")
    id: int = Field(description="the alert's or task's id; the patient's for an overdue row")
    patient: int
    patient_name: str
    sex: str
    age: int | None
    reason: str
    priority: str
    status: str
    due_at: datetime | None
    late: bool
    days_overdue: int | None
    owner: int | None
    owner_name: str
    for_role: str
    department: int | None
    last_bp: Reading | None
    last_glucose: Reading | None
    sparkline: list[float] = Field(description="the last systolic pressures, oldest first")


class WorklistOut(Schema):
    total: int
    page: int
    size: int
    counts: dict[str, int]
    capped: list[str] = Field(
        description="sections with more rows than the 1,000 a section lists (counts say 1000)"
    )
    items: list[WorkItemOut]


class WorklistQuery(Schema):
    department: int | None = None
    condition: str = ""
    priority: str = ""
    owner: str = "anyone"
    page: int = 1
    size: int = 25


class AlertOut(Schema):
    id: int
    patient: int
    patient_name: str
    department: int | None
    rule: str
    stage: str
    status: str
    business_status: str
    severity: str
    priority: str
    performer_role: str
    owner: int | None
    owner_name: str
    text: str
    text_zh: str
    text_en: str
    values: dict[str, Any]
    focus_type: str
    focus_id: int | None
    triggered_at: datetime
    raised_at: datetime
    due_at: datetime
    repeats: int
    acknowledged_at: datetime | None
    acknowledged_by: str
    closed_at: datetime | None
    closed_by: str
    outcome: str
    outcome_label: str
    note: str
    escalated_at: datetime | None


class AlertPage(Schema):
    total: int
    page: int
    size: int
    items: list[AlertOut]


class AlertQuery(Schema):
    status: str = "active"
    priority: str = ""
    rule: str = ""
    department: int | None = None
    patient: int | None = None
    sort: str = "-raised"
    page: int = 1
    size: int = 25


class ResolveIn(Schema):
    outcome: str
    note: str = ""


class DismissIn(Schema):
    reason: str
    note: str = ""


class AssignIn(Schema):
    to: int
    alert_ids: list[int] = []
    task_ids: list[int] = []


class AssignOut(Schema):
    assigned: int


class ThresholdOut(Schema):
    rule: str
    params: dict[str, float]
    reason: str
    set_by: str
    set_at: datetime


class ThresholdIn(Schema):
    rule: str
    params: dict[str, float] = Field(
        default_factory=dict, description="the rule's thresholds by name; empty removes them"
    )
    reason: str = ""


def _reading(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"at": row.last_at, "value": row.value, "value2": row.value2, "context": row.context}


def _item(w: selectors.WorkItem) -> dict[str, Any]:
    return {
        "section": w.section,
        "kind": w.kind,
        "id": w.id,
        "patient": w.patient.pk,
        "patient_name": w.patient.name,
        "sex": w.patient.sex,
        "age": w.age,
        "reason": w.reason,
        "priority": w.priority,
        "status": w.status,
        "due_at": w.due_at,
        "late": w.late,
        "days_overdue": w.days_overdue,
        "owner": w.owner.pk if w.owner else None,
        "owner_name": str(w.owner) if w.owner else "",
        "for_role": str(w.role),
        "department": w.department_id,
        "last_bp": _reading(w.bp),
        "last_glucose": _reading(w.glucose),
        "sparkline": w.spark,
    }


def _username(user: Any) -> str:
    return str(user.get_username()) if user is not None else ""


def _alert(a: am.Alert) -> dict[str, Any]:
    return {
        "id": a.pk,
        "patient": a.patient_id,
        "patient_name": a.patient.name,
        "department": a.department_id,
        "rule": a.rule,
        "stage": a.stage,
        "status": a.status,
        "business_status": a.business_status,
        "severity": a.severity,
        "priority": a.priority,
        "performer_role": a.performer_role,
        "owner": a.owner_id,
        "owner_name": str(a.owner) if a.owner_id and a.owner else "",
        "text": a.text(get_language() or "zh-hans"),
        "text_zh": a.text_zh,
        "text_en": a.text_en,
        "values": a.values or {},
        "focus_type": a.focus_type,
        "focus_id": a.focus_id,
        "triggered_at": a.triggered_at,
        "raised_at": a.raised_at,
        "due_at": a.due_at,
        "repeats": a.repeats,
        "acknowledged_at": a.acknowledged_at,
        "acknowledged_by": _username(a.acknowledged_by),
        "closed_at": a.closed_at,
        "closed_by": _username(a.closed_by),
        "outcome": a.outcome,
        "outcome_label": labels.closing_label(a.status, a.outcome) if a.outcome else "",
        "note": a.note,
        "escalated_at": a.escalated_at,
    }


def _reload(actor: Actor, alert_id: int) -> dict[str, Any]:
    found = services.visible_alerts(actor).select_related(
        "patient", "owner", "acknowledged_by", "closed_by"
    )
    return _alert(found.get(pk=alert_id))


def _scoped(actor: Actor, alert_id: int, verb: str) -> None:
    """Refuse (404, audited) an alert outside the actor's departments before acting on it."""
    services.get_alert(actor, alert_id, action=f"alert.{verb}")


@router.get("/worklist", response=WorklistOut, summary="My work today, one page")
def worklist(request: HttpRequest, filters: Query[WorklistQuery]) -> dict[str, Any]:
    """Urgent alerts first, then today's calls and routine alerts, then overdue patients.
    `owner` is anyone, me, unassigned or a colleague's id; `condition` an ICD-10 prefix."""
    criteria = selectors.WorklistCriteria(**filters.dict())
    page = selectors.worklist(Actor.from_api(request), criteria)
    return {
        "total": page.total,
        "page": page.number,
        "size": page.size,
        "counts": page.counts,
        "capped": page.capped,
        "items": [_item(w) for w in page.items],
    }


@router.get("/alerts", response=AlertPage, summary="Alerts of my departments")
def list_alerts(request: HttpRequest, filters: Query[AlertQuery]) -> dict[str, Any]:
    """`status`: active (default), open, acknowledged, resolved, dismissed or all."""
    criteria = selectors.AlertCriteria(**filters.dict())
    page = selectors.alerts(Actor.from_api(request), criteria)
    return {
        "total": page.total,
        "page": page.number,
        "size": page.size,
        "items": [_alert(a) for a in page.items],
    }


@router.get("/alerts/{int:alert_id}", response=AlertOut, summary="One alert")
def get_alert(request: HttpRequest, alert_id: int) -> dict[str, Any]:
    actor = Actor.from_api(request)
    selectors.alert(actor, alert_id)
    return _reload(actor, alert_id)


@router.post("/alerts/{int:alert_id}/acknowledge", response=AlertOut, summary="Take an alert on")
def acknowledge(request: HttpRequest, alert_id: int) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _scoped(actor, alert_id, "acknowledge")
    services.acknowledge_alert(actor, alert_id)
    return _reload(actor, alert_id)


@router.post(
    "/alerts/{int:alert_id}/resolve", response=AlertOut, summary="Close with what was done"
)
def resolve(request: HttpRequest, alert_id: int, payload: ResolveIn) -> dict[str, Any]:
    """`outcome`: contacted_patient, plan_adjusted, medication_changed, visit_booked, referred,
    advice_given, no_action_needed or other (with a note). A closed alert answers 409."""
    actor = Actor.from_api(request)
    _scoped(actor, alert_id, "resolve")
    services.resolve_alert(actor, alert_id, outcome=payload.outcome, note=payload.note)
    return _reload(actor, alert_id)


@router.post(
    "/alerts/{int:alert_id}/dismiss", response=AlertOut, summary="Close as needing nothing"
)
def dismiss(request: HttpRequest, alert_id: int, payload: DismissIn) -> dict[str, Any]:
    """`reason`: false_reading, known_condition, duplicate, not_relevant or other (with a note)."""
    actor = Actor.from_api(request)
    _scoped(actor, alert_id, "dismiss")
    services.dismiss_alert(actor, alert_id, reason=payload.reason, note=payload.note)
    return _reload(actor, alert_id)


@router.post("/assign", response=AssignOut, summary="Give alerts and tasks to a colleague")
def assign(request: HttpRequest, payload: AssignIn) -> dict[str, Any]:
    """Items outside my departments, or already closed, are left alone (not counted)."""
    moved = services.assign(
        Actor.from_api(request),
        alert_ids=payload.alert_ids,
        task_ids=payload.task_ids,
        to=payload.to,
    )
    return {"assigned": moved}


def _thresholds(rows: list[am.PersonalThreshold]) -> list[dict[str, Any]]:
    return [
        {
            "rule": r.rule,
            "params": {k: float(v) for k, v in r.params.items()},
            "reason": r.reason,
            "set_by": r.set_by.get_username() if r.set_by_id and r.set_by else "",
            "set_at": r.set_at,
        }
        for r in rows
    ]


@router.get(
    "/patients/{int:patient_id}/thresholds",
    response=list[ThresholdOut],
    summary="A patient's personal alert thresholds",
)
def get_thresholds(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    return _thresholds(selectors.thresholds(Actor.from_api(request), patient_id))


@router.put(
    "/patients/{int:patient_id}/thresholds",
    response=list[ThresholdOut],
    summary="Set (or, with no params, remove) a patient's thresholds for one rule",
)
def put_thresholds(
    request: HttpRequest, patient_id: int, payload: ThresholdIn
) -> list[dict[str, Any]]:
    """E.g. `{"rule": "bp-crisis", "params": {"sys": 170, "dia": 105}, "reason": "…"}`; the
    rule's other thresholds keep their population defaults."""
    actor = Actor.from_api(request)
    services.set_personal_threshold(actor, patient_id, payload.rule, payload.params, payload.reason)
    return _thresholds(selectors.thresholds(actor, patient_id))

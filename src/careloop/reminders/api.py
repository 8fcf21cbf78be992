"""JSON API of reminders: a patient's reminders and preferences, phone confirmations, operations."""

from datetime import date, datetime, time, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja import Field, Query, Router, Schema

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import domain
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.errors import ValidationFailed
from careloop.kit.pagination import paginate
from careloop.patients import selectors as patient_selectors
from careloop.reminders import models as rm
from careloop.reminders import selectors
from careloop.reminders import services as reminder_services

router = Router(tags=["reminders"])
A = Action


class AttemptOut(Schema):
    id: int
    try_no: int
    step: int
    channel: str
    provider: str
    address_hint: str
    outcome: str
    error_code: str
    detail: str
    in_doubt: bool
    started_at: datetime
    finished_at: datetime | None
    delivered_at: datetime | None


class OccurrenceOut(Schema):
    id: int
    patient: int
    enrolment: int | None
    activity_code: str
    kind: str
    title: str
    title_en: str
    local_due: str
    time_zone: str
    due_at: datetime
    status: str
    reason: str
    step: int
    tries: int
    acknowledged_at: datetime | None
    ack_source: str
    attempts: list[AttemptOut]


class OccurrencePage(Schema):
    total: int
    page: int
    size: int
    items: list[OccurrenceOut]


class OccurrenceQuery(Schema):
    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")
    status: str = ""
    page: int = 1
    size: int = 50


class PreferencesIn(Schema):
    dose_times: dict[str, list[str]] = {}
    channels: dict[str, list[str]] = {}
    daily_cap: int | None = None
    elderly: bool = False
    high_risk: bool = False
    email: str = ""
    wechat_openid: str = ""
    push_subscription: dict[str, Any] = {}
    version: int | None = None


class PreferencesOut(Schema):
    patient: int
    dose_times: dict[str, list[str]]
    channels: dict[str, list[str]]
    daily_cap: int | None
    elderly: bool
    high_risk: bool
    email: str
    wechat_openid: str
    push_subscribed: bool
    version: int


class AcknowledgeIn(Schema):
    intake: str = ""
    reason: str = ""


class ChannelOut(Schema):
    channel: str
    attempts_24h: int
    ok_24h: int
    rate_24h: float | None
    attempts_7d: int
    ok_7d: int
    rate_7d: float | None


class DeadLetterOut(Schema):
    id: int
    patient: int
    patient_name: str
    kind: str
    reason: str
    reason_label: str
    local_due: str
    time_zone: str
    last_channel: str
    last_error: str
    last_detail: str
    last_attempt_at: datetime | None


class OperationsOut(Schema):
    now: datetime
    day: date
    time_zone: str
    queue_depth: int
    oldest_due_at: datetime | None
    oldest_age_seconds: int | None
    dead_letters: int
    today: dict[str, int]
    channels: list[ChannelOut]
    in_doubt_resends_24h: int
    in_doubt_resends_7d: int
    dispatch_paused: bool
    paused_reason: str
    dead_letter_list: list[DeadLetterOut]


class RetryOut(Schema):
    id: int
    status: str


def occurrence_out(o: rm.Occurrence) -> dict[str, Any]:
    payload = o.payload or {}
    return {
        "id": o.pk,
        "patient": o.patient_id,
        "enrolment": o.enrolment_id,
        "activity_code": o.activity_code,
        "kind": o.kind,
        "title": str(payload.get("title", "")),
        "title_en": str(payload.get("title_en", "")),
        "local_due": o.local_due,
        "time_zone": o.time_zone,
        "due_at": o.due_at,
        "status": o.status,
        "reason": o.reason,
        "step": o.step,
        "tries": o.tries,
        "acknowledged_at": o.acknowledged_at,
        "ack_source": o.ack_source,
        "attempts": [
            {
                "id": a.pk,
                "try_no": a.try_no,
                "step": a.step,
                "channel": a.channel,
                "provider": a.provider,
                "address_hint": a.address_hint,
                "outcome": a.outcome,
                "error_code": a.error_code,
                "detail": a.detail,
                "in_doubt": a.in_doubt,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "delivered_at": a.delivered_at,
            }
            for a in o.attempts.all()
        ],
    }


def _allow(actor: Actor, *actions: Action, patient_id: int | None = None) -> None:
    for action in actions:
        patient_selectors.require(actor, action, patient_id=patient_id)


@router.get(
    "/patients/{patient_id}/occurrences",
    response=OccurrencePage,
    summary="A patient's reminders with their delivery attempts (dates are the patient's own)",
)
def list_occurrences(
    request: HttpRequest, patient_id: int, filters: Query[OccurrenceQuery]
) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CLINICAL_VIEW, patient_id=patient_id)
    errors: dict[str, list[str]] = {}
    if filters.status and filters.status not in rm.Status.values:
        errors["status"] = [gettext("One of: %s") % ", ".join(rm.Status.values)]
    if filters.date_from and filters.date_to and filters.date_to < filters.date_from:
        errors["to"] = [gettext("The end date is before the start date.")]
    if errors:
        raise ValidationFailed(details=errors)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    tz = domain.zone(patient.time_zone)
    start = end = None
    if filters.date_from:
        start = domain.to_utc(datetime.combine(filters.date_from, time(0, 0)), tz)
    if filters.date_to:
        end = domain.to_utc(datetime.combine(filters.date_to + timedelta(days=1), time(0, 0)), tz)
    qs = selectors.patient_occurrences(patient.pk, start=start, end=end, status=filters.status)
    result = paginate(qs, filters.page, filters.size)
    audit.record(
        actor,
        "reminder.read",
        patient_id=patient.pk,
        detail={"page": result.number, "shown": len(result.items)},
    )
    return {
        "total": result.total,
        "page": result.number,
        "size": result.size,
        "items": [occurrence_out(o) for o in result.items],
    }


def preferences_out(pref: cm.ReminderPreference) -> dict[str, Any]:
    return {
        "patient": pref.patient_id,
        "dose_times": pref.dose_times or {},
        "channels": pref.channels or {},
        "daily_cap": pref.daily_cap,
        "elderly": pref.elderly,
        "high_risk": pref.high_risk,
        "email": pref.email,
        "wechat_openid": pref.wechat_openid,
        "push_subscribed": bool(pref.push_subscription),
        "version": pref.version,
    }


@router.put(
    "/patients/{patient_id}/reminder-preferences",
    response=PreferencesOut,
    summary="Replace how a patient is reminded; send the version you read (or If-Match)",
)
def put_preferences(
    request: HttpRequest, patient_id: int, payload: PreferencesIn
) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.PATIENT_UPDATE, patient_id=patient_id)
    data = payload.dict()
    version = data.pop("version")
    if version is None:
        header = request.headers.get("If-Match", "")
        version = header.replace("W/", "").strip('"') or None
    pref = plan_services.set_preferences(actor, patient_id, data, version)
    return preferences_out(pref)


@router.post(
    "/occurrences/{occurrence_id}/acknowledge",
    response=OccurrenceOut,
    summary="Record that the patient confirmed a reminder on the phone",
)
def acknowledge(request: HttpRequest, occurrence_id: int, payload: AcknowledgeIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.TASK_WORK)
    occ = selectors.occurrence(actor, occurrence_id, A.TASK_WORK)
    done = reminder_services.acknowledge(
        occ.pk, source="staff_call", intake=payload.intake, reason=payload.reason, actor=actor
    )
    return occurrence_out(selectors.patient_occurrences(done.patient_id).get(pk=done.pk))


@router.get("/operations", response=OperationsOut, summary="Reminder operations figures")
def operations(request: HttpRequest) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.REMINDERS_OPERATE, A.PATIENT_VIEW)
    figures = selectors.figures(actor)
    dead = selectors.dead_letters(actor)
    audit.record(
        actor,
        "reminders.operations.read",
        detail={
            "dead_letters": figures.dead_letters,
            "patients": sorted({d.patient_id for d in dead}),
        },
    )
    return {
        **figures.as_dict(),
        "dead_letter_list": [
            {
                "id": d.pk,
                "patient": d.patient_id,
                "patient_name": d.patient.name,
                "kind": d.kind,
                "reason": d.reason,
                "reason_label": str(selectors.REASONS.get(d.reason, d.reason)),
                "local_due": d.local_due,
                "time_zone": d.time_zone,
                "last_channel": d.last_channel or "",  # type: ignore[attr-defined]
                "last_error": d.last_error or "",  # type: ignore[attr-defined]
                "last_detail": d.last_detail or "",  # type: ignore[attr-defined]
                "last_attempt_at": d.last_attempt_at,  # type: ignore[attr-defined]
            }
            for d in dead
        ],
    }


@router.post(
    "/operations/dead-letters/{occurrence_id}/retry",
    response=RetryOut,
    summary="Send a dead letter again, on the same step of its plan",
)
def retry_dead_letter(request: HttpRequest, occurrence_id: int) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.REMINDERS_OPERATE, A.PATIENT_VIEW)
    occ = selectors.in_scope(actor, occurrence_id)
    retried = reminder_services.retry_dead_by(actor, occ.pk)
    return {"id": retried.pk, "status": retried.status}

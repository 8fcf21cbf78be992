"""JSON API of care plans: templates, a patient's enrolments, preview, enrol, end, adjust."""

from datetime import date, datetime
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja import Router, Schema

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import models as cm
from careloop.careplans import selectors, services
from careloop.kit.errors import ValidationFailed
from careloop.patients import selectors as patient_selectors

router = Router(tags=["care plans"])
A = Action


class ActivityOut(Schema):
    code: str
    kind: str
    title: str
    title_en: str
    schedule: dict[str, Any]
    channels: list[str]
    escalation: list[dict[str, Any]]


class TemplateOut(Schema):
    id: int
    code: str
    version: int
    name: str
    name_en: str
    description: str
    description_en: str
    anchor: str
    shared: bool
    activities: list[ActivityOut]


class TemplateRef(Schema):
    id: int
    code: str
    name: str
    name_en: str
    version: int


class EnrolmentOut(Schema):
    id: int
    patient: int
    template: TemplateRef
    template_version: int
    status: str
    source: str
    department: int | None
    anchor_date: date | None
    starts_on: date
    adjustments: dict[str, Any]
    version: int
    created_at: datetime
    ended_at: datetime | None
    end_reason: str


class PreviewIn(Schema):
    template_id: int
    anchor_date: date | None = None
    adjustments: dict[str, Any] | None = None
    days: int = 14


class PreviewItemOut(Schema):
    local: str
    time_zone: str
    activity_code: str
    kind: str
    title: str
    detail: str


class EnrolIn(Schema):
    template_id: int
    anchor_date: date | None = None
    adjustments: dict[str, Any] | None = None
    department_id: int | None = None


class EndIn(Schema):
    reason: str
    version: int | None = None


class AdjustIn(Schema):
    adjustments: dict[str, Any]
    version: int | None = None


def _version(request: HttpRequest, body_version: Any) -> Any:
    """The expected version from the body, or from an If-Match header (W/"3" or "3")."""
    if body_version is not None:
        return body_version
    header = request.headers.get("If-Match", "")
    return header.replace("W/", "").strip('"') or None


def _allow(actor: Actor, *actions: Action, patient_id: int | None = None) -> None:
    """The role check first (403, audited), before anything is looked up."""
    for action in actions:
        patient_selectors.require(actor, action, patient_id=patient_id)


def enrolment_out(e: cm.Enrolment) -> dict[str, Any]:
    t = e.template
    return {
        "id": e.pk,
        "patient": e.patient_id,
        "template": {
            "id": t.pk,
            "code": t.code,
            "name": t.name,
            "name_en": t.name_en,
            "version": t.version,
        },
        "template_version": e.template_version,
        "status": e.status,
        "source": e.source,
        "department": e.department_id,
        "anchor_date": e.anchor_date,
        "starts_on": e.starts_on,
        "adjustments": e.adjustments or {},
        "version": e.version,
        "created_at": e.created_at,
        "ended_at": e.ended_at,
        "end_reason": e.end_reason,
    }


@router.get("/plans/templates", response=list[TemplateOut], summary="Plans you can enrol in")
def list_templates(request: HttpRequest) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    _allow(actor, A.CAREPLAN_ENROL)
    rows = services.templates_for(actor.organisation_id).prefetch_related("activities")
    return [
        {
            "id": t.pk,
            "code": t.code,
            "version": t.version,
            "name": t.name,
            "name_en": t.name_en,
            "description": t.description,
            "description_en": t.description_en,
            "anchor": t.anchor or "enrolment",
            "shared": t.organisation_id is None,
            "activities": [
                {
                    "code": a.code,
                    "kind": a.kind,
                    "title": a.title,
                    "title_en": a.title_en,
                    "schedule": a.schedule or {},
                    "channels": a.channels or [],
                    "escalation": a.escalation or [],
                }
                for a in t.activities.all()
            ],
        }
        for t in rows.order_by("code")
    ]


@router.get(
    "/patients/{patient_id}/enrolments",
    response=list[EnrolmentOut],
    summary="A patient's care plans, active first",
)
def list_enrolments(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CLINICAL_VIEW, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    rows = selectors.enrolments_of(patient)
    audit.record(actor, "careplan.read", patient_id=patient.pk, detail={"enrolments": len(rows)})
    return [enrolment_out(e) for e in rows]


@router.post(
    "/patients/{patient_id}/enrolments/preview",
    response=list[PreviewItemOut],
    summary="The reminders an enrolment would create, without enrolling",
)
def preview_enrolment(
    request: HttpRequest, patient_id: int, payload: PreviewIn
) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CAREPLAN_ENROL, patient_id=patient_id)
    if not 1 <= payload.days <= 90:
        raise ValidationFailed(details={"days": [gettext("From 1 to 90 days.")]})
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    items = services.preview(
        actor,
        patient_id,
        payload.template_id,
        anchor_date=payload.anchor_date,
        adjustments=payload.adjustments,
        days=payload.days,
    )
    audit.record(
        actor,
        "careplan.preview",
        patient_id=patient_id,
        detail={"template": payload.template_id, "items": len(items)},
    )
    return [
        {
            "local": f"{i.local:%Y-%m-%dT%H:%M}",
            "time_zone": patient.time_zone,
            "activity_code": i.activity_code,
            "kind": i.kind,
            "title": i.title,
            "detail": i.detail,
        }
        for i in items
    ]


@router.post(
    "/patients/{patient_id}/enrolments",
    response={201: EnrolmentOut},
    summary="Enrol a patient in a plan; its reminders are planned at once",
)
def enrol(request: HttpRequest, patient_id: int, payload: EnrolIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CAREPLAN_ENROL, patient_id=patient_id)
    enrolment = services.enrol(
        actor,
        patient_id,
        payload.template_id,
        anchor_date=payload.anchor_date,
        adjustments=payload.adjustments,
        department_id=payload.department_id,
    )
    return enrolment_out(enrolment)  # the one response model is 201


@router.post(
    "/enrolments/{enrolment_id}/end",
    response=EnrolmentOut,
    summary="End an enrolment: pending reminders are cancelled, the past is kept",
)
def end_enrolment(request: HttpRequest, enrolment_id: int, payload: EndIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CAREPLAN_ENROL)
    ended = services.end_enrolment(
        actor, enrolment_id, reason=payload.reason, expected=_version(request, payload.version)
    )
    return enrolment_out(ended)


@router.patch(
    "/enrolments/{enrolment_id}",
    response=EnrolmentOut,
    summary="Change an enrolment's adjustments; send its version (or If-Match)",
)
def adjust_enrolment(request: HttpRequest, enrolment_id: int, payload: AdjustIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _allow(actor, A.PATIENT_VIEW, A.CAREPLAN_ENROL)
    expected = _version(request, payload.version)
    if expected is None:
        raise ValidationFailed(
            details={"version": [gettext("The version of the record you edited is required.")]}
        )
    changed = services.adjust(actor, enrolment_id, payload.adjustments, expected)
    return enrolment_out(changed)

"""JSON API of readings: /api/observations (one, or a batch) and a patient's readings, adverse
drug reactions and symptom diary (/api/patients/{id}/...).

Every reading goes through ``services.ingest``. A reading is identified by patient, code, time,
source and device, so sending it again (a retry, with or without an Idempotency-Key) stores
nothing new: the single endpoint answers 200 with the stored reading and ``duplicate: true``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from io import BytesIO
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.errors import PayloadTooLarge, ValidationFailed
from careloop.observations import domain, imports, jobs, selectors, services
from careloop.observations import models as om
from careloop.patients import selectors as patient_selectors

router = Router(tags=["observations"])

BATCH_MAX_ITEMS = 10_000
BATCH_MAX_BYTES = 8 * 1024 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


class ReadingIn(Schema):
    """One reading, as devices and systems send it (docs/observations.md)."""

    patient: int | str = Field(description="CareLoop id, or record number as text ('#MRN-0042')")
    code: str = Field(description="kind (bp, glucose, ...), plan measurement or LOINC code")
    value: float | str | None = None
    systolic: float | str | None = None
    diastolic: float | str | None = None
    unit: str = Field("", description="UCUM or common unit; the kind's canonical one if empty")
    effective: str = Field(description="ISO 8601; without an offset: the patient's clock")
    time_zone: str = ""
    source: str = Field("", description="patient | staff | device | his (default staff)")
    device: str = ""
    context: str = Field("", description="glucose: fasting | random | postprandial")


class ReadingOut(Schema):
    id: int
    patient: int
    kind: str
    code: str
    value: float
    value2: float | None
    unit: str
    display: str
    context: str
    source: str
    device: str
    effective: datetime
    time_zone: str
    original: str
    created_at: datetime
    duplicate: bool = False


class ReadingPage(Schema):
    total: int
    page: int
    size: int
    items: list[ReadingOut]


class ReadingQuery(Schema):
    kind: str = Field("", description="a kind or LOINC code; several separated by commas")
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    size: int = 50


class ProblemOut(Schema):
    line: int
    field: str
    reason: str


class IngestOut(Schema):
    received: int
    accepted: int
    duplicates: int
    rejected: int
    alerts: int
    problems: list[ProblemOut]
    ids: list[int] = Field(description="ids of the readings stored now (the first 1,000)")


class ReactionIn(Schema):
    drug: str = ""
    medication_id: int | None = None
    symptom: str
    severity: int = Field(description="1 mild, 2 moderate, 3 severe, 4 life-threatening")
    onset: date
    note: str = ""
    source: str = "staff"


class ReactionOut(Schema):
    id: int
    patient: int
    drug: str
    medication: int | None
    symptom: str
    severity: int
    severity_label: str
    onset: date
    note: str
    source: str
    reported_at: datetime


class SymptomIn(Schema):
    symptom: str
    severity: int = Field(description="0 (none) to 10 (worst)")
    effective: datetime | None = Field(None, description="default now; no offset: patient's clock")
    note: str = ""
    source: str = "staff"


class SymptomOut(Schema):
    id: int
    patient: int
    symptom: str
    severity: int
    note: str
    source: str
    effective: datetime


def _reading_out(o: om.Observation, duplicate: bool = False) -> dict[str, Any]:
    return {
        "id": o.pk,
        "patient": o.patient_id,
        "kind": o.kind,
        "code": o.code,
        "value": o.value,
        "value2": o.value2,
        "unit": o.unit,
        "display": domain.display(o.kind, o.value, o.value2),
        "context": o.context,
        "source": o.source,
        "device": o.device_id,
        "effective": o.effective_at,
        "time_zone": o.time_zone,
        "original": o.original,
        "created_at": o.created_at,
        "duplicate": duplicate,
    }


def _reaction_out(r: om.AdverseReaction) -> dict[str, Any]:
    return {
        "id": r.pk,
        "patient": r.patient_id,
        "drug": r.drug,
        "medication": r.medication_id,
        "symptom": r.symptom,
        "severity": r.severity,
        "severity_label": str(r.get_severity_display()),
        "onset": r.onset,
        "note": r.note,
        "source": r.source,
        "reported_at": r.reported_at,
    }


def _symptom_out(s: om.SymptomEntry) -> dict[str, Any]:
    return {
        "id": s.pk,
        "patient": s.patient_id,
        "symptom": s.symptom,
        "severity": s.severity,
        "note": s.note,
        "source": s.source,
        "effective": s.effective_at,
    }


def _item(payload: ReadingIn) -> dict[str, Any]:
    data = payload.dict()
    return {k: v for k, v in data.items() if v not in (None, "") and k != "patient"}


@router.post(
    "/observations",
    response={200: ReadingOut, 201: ReadingOut},
    summary="Record one reading (201); the same reading again answers 200 with duplicate: true",
)
def create_reading(request: HttpRequest, payload: ReadingIn, response: HttpResponse) -> Any:
    actor = Actor.from_api(request)
    patient = jobs.find_patient(actor, str(payload.patient))
    item = _item(payload)
    report = services.ingest(actor, [item], patient_id=patient.pk, source="staff", origin="api")
    if report.problems:
        problem = report.problems[0]
        raise ValidationFailed(details={problem.field or "__all__": [problem.reason]})
    if report.ids:
        stored = selectors.stored_reading(actor, patient.pk, reading_id=report.ids[0])
        if stored is not None:
            return Status(201, _reading_out(stored))
    stored = selectors.stored_reading(actor, patient.pk, item=item, source="staff")
    if stored is None:  # stored twice in one request cannot happen; be explicit if it does
        raise ValidationFailed(details={"effective": [_("This reading is already recorded.")]})
    if request.headers.get("Idempotency-Key"):
        response["Idempotent-Replayed"] = "true"
    return Status(200, _reading_out(stored, duplicate=True))


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": {"$ref": "#/components/schemas/ReadingIn"}},
                        {
                            "type": "object",
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/ReadingIn"},
                                }
                            },
                            "required": ["items"],
                        },
                    ]
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


def _read_body(request: HttpRequest) -> bytes:
    raw = request.read(BATCH_MAX_BYTES + 1)
    if len(raw) > BATCH_MAX_BYTES:
        raise PayloadTooLarge(
            _("A batch is at most %(mb)d MB; send larger sets as an NDJSON file import.")
            % {"mb": BATCH_MAX_BYTES // (1024 * 1024)}
        )
    return raw


def _too_many() -> PayloadTooLarge:
    return PayloadTooLarge(
        _("A batch holds at most %(n)s readings; send larger sets as an NDJSON file import.")
        % {"n": f"{BATCH_MAX_ITEMS:,}"}
    )


@router.post(
    "/observations/batch",
    response=IngestOut,
    summary='Record up to 10,000 readings: a JSON array, {"items": [...]}, or NDJSON',
    openapi_extra=_BATCH_BODY,
)
def create_batch(request: HttpRequest) -> dict[str, Any]:
    actor = Actor.from_api(request)
    raw = _read_body(request)
    content_type = request.content_type or ""
    if content_type in NDJSON_TYPES:
        _require_write(actor, [])
        if raw.count(b"\n") > BATCH_MAX_ITEMS + 1:
            raise _too_many()
        reader = imports.open_reader("ndjson", BytesIO(raw))
        report = services.ingest(actor, reader.items(), source="staff", origin="api")
        figures = imports.combine(report, reader)
        return {**report.as_dict(), **figures, "received": report.received + reader.rejected}
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise ValidationFailed(details={"__all__": [_("The body is not valid JSON.")]}) from None
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = body["items"]
    if not isinstance(body, list):
        raise ValidationFailed(
            details={"__all__": [_('Send a JSON array of readings, or {"items": [...]}.')]}
        )
    _require_write(actor, body)
    if len(body) > BATCH_MAX_ITEMS:
        raise _too_many()
    return services.ingest(actor, body, source="staff", origin="api").as_dict()


def _require_write(actor: Actor, items: list[Any]) -> None:
    """Refuse (403) a caller whose role may not write readings; the refusal names the first
    patient the batch is about."""
    if actor.can(Action.CLINICAL_WRITE):
        return
    first = next((i.get("patient") for i in items if isinstance(i, dict)), None)
    text = str(first or "")
    patient_id = int(text) if text.isdigit() and len(text) < 16 else None
    patient_selectors.require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)


def _kinds(text: str) -> list[str]:
    kinds = []
    for code in (c for c in text.split(",") if c.strip()):
        try:
            kinds.append(domain.resolve_kind(code)[0])
        except domain.Problem as problem:
            raise ValidationFailed(details={"kind": [problem.message]}) from None
    return kinds


@router.get(
    "/patients/{int:patient_id}/observations",
    response=ReadingPage,
    summary="A patient's readings, newest first (filter by kind and time)",
)
def list_readings(
    request: HttpRequest, patient_id: int, filters: Query[ReadingQuery]
) -> dict[str, Any]:
    page = selectors.reading_page(
        Actor.from_api(request),
        patient_id,
        kinds=_kinds(filters.kind),
        since=filters.since,
        until=filters.until,
        page=filters.page,
        size=filters.size,
    )
    return {
        "total": page.total,
        "page": page.number,
        "size": page.size,
        "items": [_reading_out(o) for o in page.items],
    }


@router.post(
    "/patients/{int:patient_id}/adverse-reactions",
    response={201: ReactionOut},
    summary="Report an adverse drug reaction (routed to the attending doctor)",
)
def create_reaction(request: HttpRequest, patient_id: int, payload: ReactionIn) -> Any:
    reaction = services.report_adverse_reaction(
        Actor.from_api(request),
        patient_id,
        drug=payload.drug,
        symptom=payload.symptom,
        severity=payload.severity,
        onset=payload.onset,
        medication_id=payload.medication_id,
        note=payload.note,
        source=payload.source,
    )
    return _reaction_out(reaction)


@router.get(
    "/patients/{int:patient_id}/adverse-reactions",
    response=list[ReactionOut],
    summary="A patient's reported adverse drug reactions, newest first",
)
def list_reactions(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    rows = selectors.adverse_reactions(actor, patient_id)
    audit.record(actor, "adverse_reaction.read", patient_id=patient_id, detail={"rows": len(rows)})
    return [_reaction_out(r) for r in rows]


@router.post(
    "/patients/{int:patient_id}/symptoms",
    response={201: SymptomOut},
    summary="Add a symptom-diary entry (severity 0-10)",
)
def create_symptom(request: HttpRequest, patient_id: int, payload: SymptomIn) -> Any:
    actor = Actor.from_api(request)
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False
    )
    when = payload.effective
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(patient.time_zone))
    if payload.source not in domain.SOURCES:
        raise ValidationFailed(details={"source": [_("Unknown source.")]})
    entry = services.record_symptom(
        actor,
        patient.pk,
        symptom=payload.symptom,
        severity=payload.severity,
        effective_at=when,
        note=payload.note,
        source=payload.source,
    )
    return _symptom_out(entry)


@router.get(
    "/patients/{int:patient_id}/symptoms",
    response=list[SymptomOut],
    summary="A patient's symptom diary, newest first (the last 200 entries)",
)
def list_symptoms(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    rows = selectors.symptoms(actor, patient_id, limit=200)
    audit.record(actor, "symptom.read", patient_id=patient_id, detail={"rows": len(rows)})
    return [_symptom_out(s) for s in rows]

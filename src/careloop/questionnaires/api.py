"""JSON API of questionnaires at /api/questionnaires: list the library, import a FHIR
Questionnaire, send one to a patient, read a patient's responses (with scores and bands)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.translation import get_language
from ninja import Field, Router, Schema, Status

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.patients import selectors as patient_selectors
from careloop.questionnaires import models as qm
from careloop.questionnaires import selectors, services

router = Router(tags=["questionnaires"])


class QuestionnaireOut(Schema):
    id: int
    url: str
    version: str
    title: str
    status: str
    language: str
    instrument: str = Field(description="phq9 | gad7 | postop | previsit | satisfaction | ''")
    shared: bool = Field(description="shipped with CareLoop (every organisation sees it)")


class QuestionnaireDetailOut(QuestionnaireOut):
    resource: dict[str, Any]


class ImportIn(Schema):
    resource: dict[str, Any] = Field(
        description="a FHIR R4 Questionnaire, or a Bundle of one Questionnaire and ValueSets"
    )


class AssignIn(Schema):
    patient: int
    questionnaire: int
    due_at: datetime | None = None
    notify: bool = True


class AssignmentOut(Schema):
    id: int
    patient: int
    questionnaire: int
    status: str
    due_at: datetime


class ResponseOut(Schema):
    id: int
    questionnaire: int
    title: str
    status: str
    source: str
    authored: datetime
    completed_at: datetime | None
    score: float | None
    band: str
    flags: list[str]
    item: list[dict[str, Any]] = Field(description="QuestionnaireResponse.item (FHIR)")


def _out(q: qm.Questionnaire) -> dict[str, Any]:
    return {
        "id": q.pk,
        "url": q.url,
        "version": q.version,
        "title": selectors.display_title(q, get_language() or "en"),
        "status": q.status,
        "language": q.language,
        "instrument": q.instrument,
        "shared": q.organisation_id is None,
        "resource": q.resource,
    }


@router.get("/questionnaires", response=list[QuestionnaireOut], summary="The questionnaire library")
def list_questionnaires(request: HttpRequest) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    patient_selectors.require(actor, Action.CLINICAL_VIEW)
    rows = [_out(q) for q in selectors.library(actor.organisation_id)]
    audit.record(actor, "questionnaire.list", detail={"results": len(rows)})
    return rows


@router.post(
    "/questionnaires",
    response={201: QuestionnaireDetailOut},
    summary="Import a FHIR Questionnaire (errors by element path)",
)
def import_questionnaire(request: HttpRequest, body: ImportIn) -> Status:
    actor = Actor.from_api(request)
    resource = body.resource
    value_sets: dict[str, Any] = {}
    if resource.get("resourceType") == "Bundle":
        resource, value_sets = services.read_upload(json.dumps(resource).encode())
    found = services.import_questionnaire(actor, resource, value_sets)
    return Status(201, _out(found))


@router.post(
    "/questionnaires/assignments",
    response={201: AssignmentOut},
    summary="Send a questionnaire to a patient",
)
def assign(request: HttpRequest, body: AssignIn) -> Status:
    actor = Actor.from_api(request)
    a = services.assign(
        actor,
        patient_id=body.patient,
        questionnaire_id=body.questionnaire,
        due_at=body.due_at,
        notify=body.notify,
    )
    return Status(
        201,
        {
            "id": a.pk,
            "patient": a.patient_id,
            "questionnaire": a.questionnaire_id,
            "status": a.status,
            "due_at": a.due_at,
        },
    )


@router.get(
    "/questionnaires/patients/{patient_id}/responses",
    response=list[ResponseOut],
    summary="A patient's questionnaire responses, newest first",
)
def patient_responses(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    actor = Actor.from_api(request)
    patient = patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW)
    lang = get_language() or "en"
    rows = [
        {
            "id": r.pk,
            "questionnaire": r.questionnaire_id,
            "title": selectors.display_title(r.questionnaire, lang),
            "status": r.status,
            "source": r.source,
            "authored": r.authored,
            "completed_at": r.completed_at,
            "score": r.score,
            "band": r.band,
            "flags": list((r.result or {}).get("flags") or []),
            "item": r.items,
        }
        for r in selectors.responses_for_patient(patient.pk)[:200]
    ]
    audit.record(
        actor, "questionnaire.responses.read", patient_id=patient.pk,
        detail={"results": len(rows)},
    )  # fmt: skip
    return rows

"""Staff pages: the questionnaire library (view, import, activate, retire), a patient's
questionnaires (send one, responses with scores and bands), one response."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.patients import selectors as patient_selectors
from careloop.questionnaires import fhir, rendering, scoring, selectors, services
from careloop.questionnaires import models as qm
from careloop.web.decorators import staff_page

MAX_UPLOAD = 2 * 1024 * 1024


def _language() -> str:
    return translation.get_language() or "en"


def _row(q: qm.Questionnaire, lang: str) -> dict[str, Any]:
    return {
        "q": q,
        "title": selectors.display_title(q, lang),
        "instrument": scoring.INSTRUMENT_LABELS.get(q.instrument, ""),
        "shipped": q.organisation_id is None,
    }


@staff_page
@require_GET
def library(request: HttpRequest, actor: Actor) -> HttpResponse:
    patient_selectors.require(actor, Action.CLINICAL_VIEW)
    lang = _language()
    rows = [_row(q, lang) for q in selectors.library(actor.organisation_id)]
    audit.record(actor, "questionnaire.list", detail={"results": len(rows)})
    return render(
        request,
        "questionnaires/library.html",
        {"rows": rows, "can_manage": actor.can(Action.ORG_MANAGE), "errors": None},
    )


@staff_page
@require_http_methods(["GET", "POST"])
def import_file(request: HttpRequest, actor: Actor) -> HttpResponse:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    errors: dict[str, Any] | None = None
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            errors = {"file": [_("Choose a FHIR Questionnaire JSON file.")]}
        elif upload.size is not None and upload.size > MAX_UPLOAD:
            errors = {"file": [_("The file is larger than 2 MB.")]}
        else:
            try:
                resource, value_sets = services.read_upload(upload.read())
                found = services.import_questionnaire(actor, resource, value_sets)
            except ValidationFailed as exc:
                errors = exc.details
            else:
                messages.success(request, _("Questionnaire imported as “%s”.") % found.title)
                return redirect("questionnaires:detail", found.pk)
    return render(
        request,
        "questionnaires/import.html",
        {"errors": errors},
        status=422 if errors else 200,
    )


@staff_page
@require_GET
def detail(request: HttpRequest, actor: Actor, questionnaire_id: int) -> HttpResponse:
    patient_selectors.require(actor, Action.CLINICAL_VIEW)
    q = selectors.questionnaire_for(actor.organisation_id, questionnaire_id)
    definition = services.definition_of(q)
    lang = _language()
    fields = rendering.build_fields(definition, definition.items, {}, lang)
    audit.record(actor, "questionnaire.view", obj=q)
    return render(
        request,
        "questionnaires/detail.html",
        {
            **_row(q, lang),
            "fields": fields,
            "json": json.dumps(q.resource, ensure_ascii=False, indent=1),
            "can_manage": actor.can(Action.ORG_MANAGE),
        },
    )


@staff_page
@require_POST
def status(request: HttpRequest, actor: Actor, questionnaire_id: int) -> HttpResponse:
    try:
        q = services.set_status(actor, questionnaire_id, request.POST.get("status", ""))
    except ValidationFailed as exc:
        for problems in exc.details.values():
            for problem in problems:
                messages.error(request, str(problem))
    else:
        messages.success(
            request,
            _("“%(title)s” is now %(status)s.")
            % {"title": q.title, "status": q.get_status_display()},
        )
    return redirect("questionnaires:detail", questionnaire_id)


def _patient_context(actor: Actor, patient_id: int) -> dict[str, Any]:
    patient = patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW)
    lang = _language()
    found = list(selectors.responses_for_patient(patient.pk)[:50])
    responses = []
    for r in found:
        result = r.result or {}
        details = result.get("details") or {}
        responses.append(
            {
                "r": r,
                "title": selectors.display_title(r.questionnaire, lang),
                "band": rendering.band_label(r.band) if r.band else "",
                "flags": [str(scoring.FLAG_LABELS.get(f, f)) for f in result.get("flags") or []],
                "csat": rendering.band_label(details.get("csat_category", "")),
            }
        )
    open_ = [
        {"a": a, "title": selectors.display_title(a.questionnaire, lang)}
        for a in selectors.open_assignments(patient.pk)
    ]
    # The latest pre-visit questionnaire, in full: what the doctor reads before the visit.
    previsit = next(
        (
            r
            for r in found
            if r.questionnaire.instrument == "previsit" and r.status == qm.Response.Status.COMPLETED
        ),
        None,
    )
    previsit_rows: list[tuple[str, str]] = []
    if previsit is not None:
        definition = services.definition_of(previsit.questionnaire)
        answers = fhir.from_response_items(definition, previsit.items)
        previsit_rows = rendering.answer_rows(definition, answers, lang)
    sendable = [
        _row(q, lang)
        for q in selectors.library(actor.organisation_id).filter(
            status=qm.Questionnaire.Status.ACTIVE
        )
    ]
    audit.record(
        actor, "questionnaire.responses.read", patient_id=patient.pk,
        detail={"results": len(responses)},
    )  # fmt: skip
    return {
        "patient": patient,
        "responses": responses,
        "previsit": previsit,
        "previsit_rows": previsit_rows,
        "open": open_,
        "sendable": sendable,
        "can_send": actor.can(Action.CLINICAL_WRITE),
    }


@staff_page
@require_GET
def patient(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    return render(request, "questionnaires/patient.html", _patient_context(actor, patient_id))


@staff_page
@require_GET
def patient_section(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """The patient 360 page's questionnaire section (loaded by htmx)."""
    return render(request, "questionnaires/_section.html", _patient_context(actor, patient_id))


def _due(text: str, zone: str) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(details={"due_at": [_("Enter a date as YYYY-MM-DD.")]}) from None
    return datetime.combine(day, time(20, 0), tzinfo=ZoneInfo(zone))


@staff_page
@require_POST
def send(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient_selectors.require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)
    try:
        patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
        questionnaire_id = int(request.POST.get("questionnaire") or 0)
        assignment = services.assign(
            actor,
            patient_id=patient.pk,
            questionnaire_id=questionnaire_id,
            due_at=_due(request.POST.get("due", ""), patient.time_zone),
        )
    except ValueError:
        messages.error(request, _("Choose a questionnaire."))
    except ValidationFailed as exc:
        for problems in exc.details.values():
            for problem in problems:
                messages.error(request, str(problem))
    else:
        messages.success(
            request,
            _("“%s” was sent to the patient.")
            % selectors.display_title(assignment.questionnaire, _language()),
        )
    back = request.POST.get("back")
    if back == "360":
        return redirect("patients:detail", patient_id)
    return redirect("questionnaires:patient", patient_id)


@staff_page
@require_GET
def response_detail(request: HttpRequest, actor: Actor, response_id: int) -> HttpResponse:
    found = (
        qm.Response.objects.select_related("questionnaire")
        .filter(pk=response_id, organisation_id=actor.organisation_id or 0)
        .first()
    )
    if found is None:
        raise NotFound()
    patient_selectors.get_patient(actor, found.patient_id, action=Action.CLINICAL_VIEW)
    definition = services.definition_of(found.questionnaire)
    lang = _language()
    answers = fhir.from_response_items(definition, found.items)
    audit.record(actor, "questionnaire.response.read", patient_id=found.patient_id, obj=found)
    return render(
        request,
        "questionnaires/response.html",
        {
            "r": found,
            "title": selectors.display_title(found.questionnaire, lang),
            "rows": rendering.answer_rows(definition, answers, lang),
            "band": rendering.band_label(found.band) if found.band else "",
            "result": found.result or {},
            "flags": [
                str(scoring.FLAG_LABELS.get(f, f)) for f in (found.result or {}).get("flags") or []
            ],
            "instrument": scoring.INSTRUMENT_LABELS.get(found.questionnaire.instrument, ""),
        },
    )

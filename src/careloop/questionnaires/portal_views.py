"""Portal pages: questionnaires to answer, the answer form (one group, or in elder mode one
question, per screen; save and come back later), and the plain-language result."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from careloop.kit.errors import NotFound, ValidationFailed
from careloop.portal.context import PortalActor
from careloop.portal.decorators import patient_page
from careloop.questionnaires import fhir, rendering, selectors, services
from careloop.questionnaires import models as qm


def _language() -> str:
    return translation.get_language() or "en"


@patient_page
def questionnaire_list(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    due = selectors.due_for_patient(actor.patient_id)
    started = set(
        qm.Response.objects.filter(
            patient_id=actor.patient_id, status=qm.Response.Status.IN_PROGRESS
        ).values_list("assignment_id", flat=True)
    )
    assignments = list(selectors.open_assignments(actor.patient_id))
    for entry, assignment in zip(due, assignments, strict=False):
        entry["started"] = assignment.pk in started
    lang = _language()
    done = [
        {
            "title": selectors.display_title(r.questionnaire, lang),
            "at": r.completed_at,
            "url": reverse("portal:questionnaire_result", args=[r.pk]),
        }
        for r in selectors.completed_responses(actor.patient_id)[:20]
    ]
    actor.audit("portal.questionnaire.list", detail={"due": len(due), "done": len(done)})
    return render(
        request,
        "questionnaires/portal_list.html",
        {"due": due, "done": done, "active": "today"},
    )


def _state(
    actor: PortalActor, assignment: qm.Assignment
) -> tuple[fhir.Definition, qm.Response | None, fhir.Answers]:
    definition = services.definition_of(assignment.questionnaire)
    response = qm.Response.objects.filter(assignment=assignment).first()
    answers = fhir.from_response_items(definition, response.items) if response else {}
    return definition, response, answers


def _visible_pages(
    definition: fhir.Definition, answers: fhir.Answers, elder: bool
) -> list[list[fhir.Item]]:
    """The screens that have something enabled to show, given the answers so far."""
    enabled = fhir.enabled_items(definition, answers)
    return [
        page
        for page in fhir.pages(definition, elder)
        if any(item.link_id in enabled for item in page)
    ]


@require_http_methods(["GET", "POST"])
@patient_page
def answer(request: HttpRequest, actor: PortalActor, assignment_id: int) -> HttpResponse:
    assignment = selectors.patient_assignment(actor.patient_id, assignment_id)
    definition, response, saved = _state(actor, assignment)
    if response is not None and response.status == qm.Response.Status.COMPLETED:
        return redirect("portal:questionnaire_result", response.pk)
    if assignment.status != qm.Assignment.Status.OPEN:
        raise NotFound()
    elder = bool(getattr(request, "elder", False))
    try:
        index = int(request.GET.get("page") or request.POST.get("page") or 0)
    except ValueError:
        index = 0
    pages = _visible_pages(definition, saved, elder)
    index = max(0, min(index, len(pages) - 1))
    errors: dict[str, str] = {}
    raw: dict[str, list[str]] | None = None
    answers = saved
    status = 200
    if request.method == "POST":
        step = request.POST.get("step", "next")
        items = pages[index]
        raw, parsed, errors = rendering.read_form(definition, items, request.POST)
        posted = {i.link_id for i in rendering.page_items(items)}
        answers = {k: v for k, v in saved.items() if k not in posted} | parsed
        enabled = fhir.enabled_items(definition, answers)
        errors = {k: v for k, v in errors.items() if k in enabled}
        if step in ("next", "submit"):
            for link_id, message in fhir.missing_required(definition, answers).items():
                if link_id in posted and link_id not in errors:
                    errors[link_id] = message
        if not errors:
            response = response or services.response_for(actor, assignment.pk)
            try:
                response = services.save(
                    actor,
                    response.pk,
                    {k: v for k, v in parsed.items() if k in enabled},
                    link_ids=posted,
                    complete=step == "submit",
                )
            except ValidationFailed as exc:
                # A required question on another screen is still open: go there.
                missing = set(exc.details)
                pages = _visible_pages(definition, answers, elder)
                for number, page in enumerate(pages):
                    ids = {i.link_id for i in rendering.page_items(page)}
                    if ids & missing:
                        index = number
                        errors = {k: str(v[0]) for k, v in exc.details.items() if k in ids}
                        break
                raw = None
                status = 422
            else:
                if step == "submit":
                    return redirect("portal:questionnaire_result", response.pk)
                if step == "save":
                    messages.success(request, _("Saved. You can carry on later."))
                    return redirect("portal:questionnaires")
                pages = _visible_pages(definition, answers, elder)
                target = index + 1 if step == "next" else index - 1
                target = max(0, min(target, len(pages) - 1))
                url = reverse("portal:questionnaire_answer", args=[assignment.pk])
                return redirect(f"{url}?page={target}")
        else:
            status = 422
    else:
        actor.audit(
            "portal.questionnaire.view",
            object_type="questionnaire_assignment",
            object_id=assignment.pk,
            detail={"page": index},
        )
    enabled = fhir.enabled_items(definition, answers)
    lang = _language()
    fields = rendering.build_fields(
        definition, pages[index], answers, lang, errors=errors, raw=raw, enabled=enabled
    )
    context = {
        "active": "today",
        "assignment": assignment,
        "title": definition.title_in(lang),
        "fields": fields,
        "index": index,
        "number": index + 1,
        "count": len(pages),
        "last": index == len(pages) - 1,
        "errors": errors,
        "answers_json": {k: [rendering._as_text(v) for v in vs] for k, vs in answers.items()},
    }
    return render(request, "questionnaires/portal_answer.html", context, status=status)


@patient_page
def result(request: HttpRequest, actor: PortalActor, response_id: int) -> HttpResponse:
    response = selectors.patient_response(actor.patient_id, response_id)
    if response.status != qm.Response.Status.COMPLETED:
        raise NotFound()
    actor.audit(
        "portal.questionnaire.result", object_type="questionnaire_response", object_id=response.pk
    )
    lang = _language()
    context = {
        "active": "today",
        "title": selectors.display_title(response.questionnaire, lang),
        "response": response,
        "outcome": rendering.patient_result(response.questionnaire.instrument, response.result),
    }
    return render(request, "questionnaires/portal_result.html", context)

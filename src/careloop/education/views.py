"""Staff pages of health education: the library, its statistics, and visit summaries."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.education import media, rendering, selectors, services
from careloop.education import models as em
from careloop.kit.errors import Conflict, StaleVersion, ValidationFailed
from careloop.web.decorators import staff_page


def _choices() -> dict[str, Any]:
    return {
        "kinds": em.Kind.choices,
        "stages": em.Stage.choices,
        "languages": em.Language.choices,
        "levels": em.Level.choices,
        "statuses": em.ContentItem.Status.choices,
    }


@staff_page
def item_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    g = request.GET
    f = selectors.Filters(
        q=g.get("q", "").strip()[:100],
        language=g.get("language", ""),
        status=g.get("status", ""),
        stage=g.get("stage", ""),
        condition=g.get("condition", "").strip()[:20],
        kind=g.get("kind", ""),
    )
    rows = selectors.items(actor, f)
    audit.record(actor, "education.item.list", detail={"count": len(rows)})
    context = {
        **_choices(),
        "rows": rows,
        "f": f,
        "can_write": actor.can(Action.CLINICAL_WRITE),
    }
    template = (
        "education/_results.html" if request.headers.get("HX-Request") else "education/list.html"
    )
    return render(request, template, context)


def _form_values(item: em.ContentItem | None, data: Any = None) -> dict[str, Any]:
    if data is not None:
        return {
            k: data.get(k, "")
            for k in (
                "title",
                "kind",
                "body",
                "video_url",
                "stage",
                "language",
                "reading_level",
                "conditions",
                "version",
            )
        } | {"for_everyone": bool(data.get("for_everyone"))}
    if item is None:
        return {
            "kind": "article",
            "stage": "any",
            "language": "zh-hans",
            "reading_level": "easy",
            "for_everyone": False,
        }
    return {
        "title": item.title,
        "kind": item.kind,
        "body": item.body,
        "video_url": item.video_url,
        "stage": item.stage,
        "language": item.language,
        "reading_level": item.reading_level,
        "conditions": ", ".join([*item.icd10_prefixes, *item.snomed_codes]),
        "for_everyone": item.for_everyone,
        "version": item.version,
    }


def _edit(request: HttpRequest, actor: Actor, item: em.ContentItem | None) -> HttpResponse:
    services.require(actor, Action.CLINICAL_WRITE)
    errors: dict[str, Any] = {}
    status = 200
    preview = None
    values = _form_values(item)
    if request.method == "POST":
        values = _form_values(item, request.POST)
        video = request.FILES.get("video_file")
        if "preview" in request.POST:
            preview = rendering.render(values["body"])
        else:
            try:
                if item is None:
                    item = services.create_item(actor, request.POST, video)
                    messages.success(request, _("Saved as a draft."))
                else:
                    item = services.update_item(
                        actor, item.pk, request.POST, request.POST.get("version"), video
                    )
                    messages.success(request, _("Saved."))
                return redirect("education:detail", item.pk)
            except ValidationFailed as exc:
                errors, status = exc.details, 422
            except StaleVersion:
                errors = {"form": [_("Someone else changed this item; reload and try again.")]}
                status = 409
    if request.method == "GET":
        audit.record(actor, "education.item.form", obj=item, object_type="education.contentitem")
    context = {**_choices(), "item": item, "v": values, "errors": errors, "preview": preview}
    return render(request, "education/form.html", context, status=status)


@staff_page
@require_http_methods(["GET", "POST"])
def item_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    return _edit(request, actor, None)


@staff_page
@require_http_methods(["GET", "POST"])
def item_edit(request: HttpRequest, actor: Actor, item_id: int) -> HttpResponse:
    return _edit(request, actor, selectors.item(actor, item_id))


@staff_page
def item_detail(request: HttpRequest, actor: Actor, item_id: int) -> HttpResponse:
    item = selectors.item(actor, item_id)
    audit.record(actor, "education.item.read", obj=item)
    context = {
        "item": item,
        "body": rendering.render(item.body),
        "stats": selectors.stats(item),
        "can_write": actor.can(Action.CLINICAL_WRITE),
    }
    return render(request, "education/detail.html", context)


def _publishing(request: HttpRequest, actor: Actor, item_id: int, publish: bool) -> HttpResponse:
    services.require(actor, Action.CLINICAL_WRITE)
    item = selectors.item(actor, item_id)
    if request.method == "POST":
        try:
            services.set_published(actor, item.pk, publish, request.POST.get("version"))
        except (Conflict, StaleVersion) as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(request, _("Published.") if publish else _("Unpublished."))
        return redirect("education:detail", item.pk)
    audit.record(actor, "education.item.read", obj=item, detail={"confirm": publish})
    return render(request, "education/confirm.html", {"item": item, "publish": publish})


@staff_page
@require_http_methods(["GET", "POST"])
def item_publish(request: HttpRequest, actor: Actor, item_id: int) -> HttpResponse:
    return _publishing(request, actor, item_id, True)


@staff_page
@require_http_methods(["GET", "POST"])
def item_unpublish(request: HttpRequest, actor: Actor, item_id: int) -> HttpResponse:
    return _publishing(request, actor, item_id, False)


@staff_page
def item_video(request: HttpRequest, actor: Actor, item_id: int) -> HttpResponseBase:
    item = selectors.item(actor, item_id)
    audit.record(actor, "education.item.video", obj=item)
    return media.serve(request, item)


@staff_page
def summaries(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient, rows = selectors.patient_summaries(actor, patient_id)
    context = {"patient": patient, "rows": rows, "can_write": actor.can(Action.CLINICAL_WRITE)}
    return render(request, "education/summaries.html", context)


@staff_page
def summary(request: HttpRequest, actor: Actor, patient_id: int, summary_id: int) -> HttpResponse:
    patient, found = selectors.patient_summary(actor, patient_id, summary_id)
    audit.record(actor, "education.summary.read", patient_id=patient.pk, obj=found)
    context = {
        "patient": patient,
        "summary": found,
        "s": found.content,
        "can_write": actor.can(Action.CLINICAL_WRITE),
    }
    return render(request, "education/summary.html", context)


@staff_page
@require_POST
def summary_generate(
    request: HttpRequest, actor: Actor, patient_id: int, encounter_id: int
) -> HttpResponse:
    found = services.regenerate(actor, patient_id, encounter_id)
    messages.success(request, _("The visit summary was written again from the record."))
    return redirect("education:summary", patient_id, found.pk)

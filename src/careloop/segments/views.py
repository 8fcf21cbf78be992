"""The segment pages (included at /segments/; access rules in careloop.web.access).

The list shows every segment with its member count and a 90-day chart (ANALYTICS_VIEW); a
segment's page lists its members the user may see (with PATIENT_VIEW, audited); organisation
admins create, edit, deactivate and recompute (ORG_MANAGE).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit import exports as kit_exports
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.kit.pagination import to_int
from careloop.patients import selectors as patient_selectors
from careloop.segments import models as sm
from careloop.segments import rules, selectors, services, strategies
from careloop.web.decorators import is_htmx, staff_page

EXPORT_LIMIT = 5000
FORMATS = ("csv", "xlsx")


def _require(actor: Actor, *actions: Action) -> None:
    for action in actions:
        patient_selectors.require(actor, action)


@require_GET
@staff_page
def segment_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    _require(actor, Action.ANALYTICS_VIEW)
    rows = selectors.overview(actor)
    chart = selectors.chart(actor, rows)
    audit.record(actor, "segment.overview", detail={"segments": [r.segment.code for r in rows]})
    return render(
        request,
        "segments/list.html",
        {
            "rows": rows,
            "chart_json": json.dumps(chart, ensure_ascii=False),
            "last_run": selectors.last_run(actor),
            "can_manage": actor.can(Action.ORG_MANAGE),
            "can_see_members": actor.can(Action.PATIENT_VIEW),
        },
    )


def _member_filters(request: HttpRequest, actor: Actor) -> tuple[str, int | None, list[str]]:
    errors: list[str] = []
    q = request.GET.get("q", "").strip()[:100]
    raw = request.GET.get("department", "").strip()
    department: int | None = None
    if raw:
        choices = dict(selectors.departments(actor))
        if not raw.isdigit() or int(raw) not in choices:
            errors.append(_("Choose one of your departments."))
        else:
            department = int(raw)
    return q, department, errors


@require_GET
@staff_page
def segment_detail(request: HttpRequest, actor: Actor, segment_id: int) -> HttpResponse:
    _require(actor, Action.ANALYTICS_VIEW, Action.PATIENT_VIEW)
    segment = services.get_segment(actor, segment_id)
    q, department, errors = _member_filters(request, actor)
    keep = {
        **({"q": q} if q else {}),
        **({"department": str(department)} if department else {}),
    }
    context: dict[str, Any] = {
        "segment": segment,
        "name": segment.label(request.LANGUAGE_CODE),
        "strategy": strategies.describe(segment.strategy),
        "departments": selectors.departments(actor),
        "q": q,
        "department": department,
        "errors": errors,
        "list_query": urlencode(keep),
        "can_manage": actor.can(Action.ORG_MANAGE),
    }
    if errors:
        return render(request, "segments/detail.html", context, status=400)
    page, rows = selectors.page_of_members(
        actor,
        segment,
        q=q,
        department=department,
        page=request.GET.get("page", 1),
        size=to_int(request.GET.get("size"), 25, low=1, high=200),
    )
    changes = selectors.recent_changes(actor, segment)
    audit.record(
        actor,
        "segment.members",
        obj=segment,
        detail={
            "segment": segment.code,
            "page": page.number,
            "total": page.total,
            "patients": [r["patient"].pk for r in rows],
            **keep,
        },
    )
    context.update({"page": page, "rows": rows, "changes": changes})
    template = "segments/_members.html" if is_htmx(request) else "segments/detail.html"
    return render(request, template, context)


@require_GET
@staff_page
def segment_export(request: HttpRequest, actor: Actor, segment_id: int) -> HttpResponse:
    _require(actor, Action.ANALYTICS_VIEW, Action.PATIENT_VIEW)
    segment = services.get_segment(actor, segment_id)
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        raise NotFound()
    q, department, errors = _member_filters(request, actor)
    if errors:
        return HttpResponse(" ".join(errors), status=400, content_type="text/plain")
    patients = list(selectors.members(actor, segment, q=q, department=department)[:EXPORT_LIMIT])
    rows = selectors.member_rows(segment, patients)
    audit.record(
        actor,
        "segment.export",
        obj=segment,
        detail={"segment": segment.code, "format": fmt, "patients": [p.pk for p in patients]},
    )
    header = [
        _("Patient"),
        _("Record number"),
        _("Departments"),
        _("In the segment since"),
        _("PDC"),
        _("Missed doses (7 days)"),
        _("Last blood pressure"),
        _("Acknowledged (30 days)"),
        _("Risk score"),
    ]
    body = [
        [
            r["patient"].name,
            r["patient"].record_number,
            ", ".join(r["departments"]),
            r["since"],
            r["pdc"],
            r["missed"],
            r["bp"],
            r["ack_rate"],
            r["risk_score"],
        ]
        for r in rows
    ]
    return kit_exports.download(f"segment-{segment.code}", fmt, header, body)


# --- administration -------------------------------------------------------------------------------


def _form_data(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    return {
        "code": post.get("code", ""),
        "name": post.get("name", ""),
        "name_en": post.get("name_en", ""),
        "description": post.get("description", ""),
        "rule": post.get("rule", ""),
        "priority": post.get("priority", "100"),
        "strategy": post.get("strategy", ""),
        "active": post.get("active") in ("on", "1", "true"),
        "version": post.get("version", ""),
    }


def _initial(segment: sm.Segment | None) -> dict[str, Any]:
    if segment is None:
        return {
            "code": "",
            "name": "",
            "name_en": "",
            "description": "",
            "rule": "",
            "priority": "100",
            "strategy": json.dumps({"kind": "none"}),
            "active": True,
            "version": "",
        }
    return {
        "code": segment.code,
        "name": segment.name,
        "name_en": segment.name_en,
        "description": segment.description,
        "rule": segment.rule,
        "priority": str(segment.priority),
        "strategy": json.dumps(segment.strategy, ensure_ascii=False),
        "active": segment.active,
        "version": str(segment.version) if segment.organisation_id else "",
    }


def _form_context(
    segment: sm.Segment | None, data: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "segment": segment,
        "data": data,
        "errors": errors,
        "facts": sorted(rules.FACTS.items()),
        "kinds": list(strategies.KINDS.items()),
        "preview": None,
    }


def _edit(request: HttpRequest, actor: Actor, segment: sm.Segment | None) -> HttpResponse:
    if request.method == "GET":
        return render(request, "segments/form.html", _form_context(segment, _initial(segment), {}))
    data = _form_data(request)
    if "preview" in request.POST:
        context = _form_context(segment, data, {})
        try:
            context["preview"] = services.preview(actor.organisation_id or 0, data["rule"])
        except rules.RuleError as exc:
            context["errors"] = {"rule": [str(exc)]}
            return render(request, "segments/form.html", context, status=400)
        audit.record(actor, "segment.preview", detail={"rule": data["rule"][:1000]})
        return render(request, "segments/form.html", context)
    try:
        saved = services.save_segment(actor, data, segment.pk if segment else None)
    except ValidationFailed as exc:
        errors = {k: [str(m) for m in v] for k, v in (exc.details or {}).items()}
        return render(
            request, "segments/form.html", _form_context(segment, data, errors), status=400
        )
    messages.success(request, _("The segment is saved. Memberships follow at the next run."))
    if actor.can(Action.PATIENT_VIEW):
        return redirect("segments:detail", segment_id=saved.pk)
    return redirect("segments:list")


@require_http_methods(["GET", "POST"])
@staff_page
def segment_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    _require(actor, Action.ORG_MANAGE)
    return _edit(request, actor, None)


@require_http_methods(["GET", "POST"])
@staff_page
def segment_edit(request: HttpRequest, actor: Actor, segment_id: int) -> HttpResponse:
    _require(actor, Action.ORG_MANAGE)
    return _edit(request, actor, services.get_segment(actor, segment_id))


@require_http_methods(["GET", "POST"])
@staff_page
def segment_deactivate(request: HttpRequest, actor: Actor, segment_id: int) -> HttpResponse:
    _require(actor, Action.ORG_MANAGE)
    segment = services.get_segment(actor, segment_id)
    members = sm.Membership.objects.filter(
        organisation_id=actor.organisation_id or 0, segment=segment, left_at__isnull=True
    ).count()
    context = {"segment": segment, "members": members, "error": ""}
    if request.method == "GET":
        return render(request, "segments/deactivate.html", context)
    if request.POST.get("confirm") != "1":
        context["error"] = _("Tick the box to confirm.")
        return render(request, "segments/deactivate.html", context, status=400)
    if not segment.active:
        context["error"] = _("This segment is not active.")
        return render(request, "segments/deactivate.html", context, status=400)
    services.deactivate(actor, segment.pk)
    messages.success(request, _("The segment is deactivated; its members have left it."))
    return redirect("segments:list")


@require_POST
@staff_page
def recompute_now(request: HttpRequest, actor: Actor) -> HttpResponse:
    _require(actor, Action.ORG_MANAGE)
    run = services.recompute_now(actor)
    messages.success(
        request,
        _("Segments recomputed: %(entered)s entered, %(left)s left today.")
        % {"entered": run.entered, "left": run.left},
    )
    return redirect("segments:list")

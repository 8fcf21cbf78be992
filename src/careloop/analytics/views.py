"""The analytics pages: the dashboard, one metric, and the patients behind a figure.

Everything is drawn from the registry (careloop.analytics.registry): a metric's group picks its
section, its parts its table and chart series, its kind how figures read, its breakdowns the
tables under it. The dashboard loads each metric's card on its own (htmx, on load), so a slow
metric does not hold up the page.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.analytics import exports, registry, selectors
from careloop.audit import services as audit
from careloop.kit import exports as kit_exports
from careloop.kit.errors import NotFound
from careloop.web import access
from careloop.web.decorators import is_htmx, staff_page

GROUPS: dict[str, Any] = {
    "care": gettext_lazy("Care and control"),
    "adherence": gettext_lazy("Medication adherence"),
    "operations": gettext_lazy("Follow-up operations"),
    "engagement": gettext_lazy("Patient engagement"),
    "outcomes": gettext_lazy("Outcomes and satisfaction"),
}
FORMATS = ("csv", "xlsx")


def _fmt(request: HttpRequest) -> str:
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        raise NotFound()
    return fmt


def _query(selection: selectors.Selection, **override: Any) -> str:
    return urlencode(selection.query(**override))


def report_url(actor: Actor, selection: selectors.Selection) -> str:
    """The selected department's monthly PDF report, when the reports app serves one and the
    actor's role may open it."""
    if selection.department is None:
        return ""
    rule = access.page_rule("reports:monthly")
    if rule is None or not access.permits(rule, actor.user):
        return ""
    try:
        return reverse(
            "reports:monthly",
            kwargs={
                "department_id": selection.department.pk,
                "month": exports.month_text(selection.month),
            },
        )
    except NoReverseMatch:
        return ""


def _allowed_url(actor: Actor, name: str) -> str:
    """The address of the page `name` when the actor's role may open it, else ""."""
    rule = access.page_rule(name)
    if rule is None or not access.permits(rule, actor.user):
        return ""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _context(actor: Actor, selection: selectors.Selection) -> dict[str, Any]:
    """What every analytics page shows around its figures: the choices and the selection."""
    language = actor.user.language
    return {
        "s": selection,
        "month_text": exports.month_text(selection.month),
        "query": _query(selection),
        "levels": [(key, selectors.LEVEL_LABELS[key]) for key in selectors.levels(actor)],
        "departments": [(d.pk, d.label(language)) for d in selectors.departments(actor)],
        "doctors": [(d.pk, str(d)) for d in selectors.doctors(actor)],
        "conditions": list(selectors.CONDITION_LABELS.items()),
        "age_bands": list(registry.AGE_BANDS),
        "sexes": list(selectors.SEX_LABELS.items()),
        "plans": selectors.plan_choices(actor),
        "segments": selectors.segment_choices(actor),
        "max_month": exports.month_text(registry.month_of(selection.today)),
        "scope_label": _scope_label(actor, selection),
        "report_url": report_url(actor, selection),
        "schedules_url": _allowed_url(actor, "reports:schedules"),
        "estimates_url": _allowed_url(actor, "analytics_estimates:list"),
    }


def _scope_label(actor: Actor, s: selectors.Selection) -> str:
    parts = []
    if s.department is not None:
        parts.append(s.department.label(actor.user.language))
    if s.doctor is not None:
        parts.append(str(s.doctor))
    if not parts:
        parts.append(
            _("Whole organisation") if s.level == selectors.ORGANISATION else _("My departments")
        )
    return " · ".join(parts)


def _link_cells(
    table: exports.Table, metric: registry.Metric, selection: selectors.Selection
) -> None:
    """Point every drillable figure of a table at the patients behind it."""
    for row in table.rows:
        for cell in row:
            if cell.part and cell.month is not None and cell.value is not None:
                href = reverse("analytics:drilldown", args=[metric.key, cell.part])
                cell.href = f"{href}?{_query(selection, month=exports.month_text(cell.month))}"


def build_card(
    actor: Actor, metric: registry.Metric, selection: selectors.Selection
) -> dict[str, Any]:
    """A metric's figures for the selection: headline, 12-month chart, parts and breakdowns."""
    cohort = selection.valid_cohort()
    months = selection.months
    computed = metric.compute(cohort, months)
    headline = metric.headline or metric.parts[0].key
    headline_part = next(p for p in metric.parts if p.key == headline)
    value = computed.get(selection.month, {}).get(headline)
    parts = exports.parts_table(metric, computed, selection.month)
    trend = exports.trend_table(metric, computed, months)
    for table in (parts, trend):
        _link_cells(table, metric, selection)
    breakdowns = []
    for name in selectors.visible_breakdowns(actor, metric):
        rows = metric.breakdowns[name](cohort, selection.month)
        table = exports.breakdown_table(metric, name, rows, headline)
        breakdowns.append(
            {
                "table": table,
                "chart_json": json.dumps(table.chart, ensure_ascii=False) if table.chart else "",
            }
        )
    drill_href = ""
    if headline in exports.drillable(metric) and value is not None:
        drill_href = reverse("analytics:drilldown", args=[metric.key, headline])
        drill_href += "?" + _query(selection)
    return {
        "metric": metric,
        "title": str(metric.title),
        "definition": str(metric.definition),
        "headline_label": str(headline_part.label),
        "figure": exports.format_value(metric.kind, value),
        "counts": exports.counts_text(value),
        "drill_href": drill_href,
        "target": exports.format_target(metric.kind, metric.target),
        "has_data": exports.has_data(computed),
        "chart_json": json.dumps(exports.trend_chart(metric, computed, months), ensure_ascii=False),
        "parts": parts,
        "trend": trend,
        "breakdowns": breakdowns,
        "month_text": exports.month_text(selection.month),
        "detail_href": reverse("analytics:metric", args=[metric.key]) + "?" + _query(selection),
    }


def _invalid(
    request: HttpRequest, actor: Actor, selection: selectors.Selection, template: str, **extra: Any
) -> HttpResponse:
    context = {**_context(actor, selection), **extra}
    return render(request, template, context, status=400)


def _grouped() -> list[tuple[str, Any, list[registry.Metric]]]:
    metrics = list(registry.all_metrics().values())
    order = list(GROUPS) + sorted({m.group for m in metrics} - set(GROUPS))
    out = []
    for group in order:
        mine = [m for m in metrics if m.group == group]
        if mine:
            out.append((group, GROUPS.get(group, group.capitalize()), mine))
    return out


@require_GET
@staff_page
def dashboard(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.require(actor)
    selection = selectors.select(actor, request.GET)
    if selection.errors:
        return _invalid(request, actor, selection, "analytics/dashboard.html", groups=[])
    groups = _grouped()
    audit.record(
        actor,
        "analytics.dashboard",
        detail={
            **selection.audit_detail(),
            "metrics": [m.key for _g, _l, ms in groups for m in ms],
        },
    )
    return render(
        request, "analytics/dashboard.html", {**_context(actor, selection), "groups": groups}
    )


@require_GET
@staff_page
def card(request: HttpRequest, actor: Actor, metric: str) -> HttpResponse:
    """One metric's card of the dashboard (fetched by htmx when the dashboard loads)."""
    selectors.require(actor)
    found = selectors.metric(metric)
    selection = selectors.select(actor, request.GET)
    if selection.errors:
        return render(
            request, "analytics/_card_error.html", {"metric": found, "s": selection}, status=400
        )
    built = build_card(actor, found, selection)
    audit.record(actor, "analytics.view", detail={"metric": found.key, **selection.audit_detail()})
    return render(request, "analytics/_card.html", {"card": built, "query": _query(selection)})


@require_GET
@staff_page
def metric_detail(request: HttpRequest, actor: Actor, metric: str) -> HttpResponse:
    selectors.require(actor)
    found = selectors.metric(metric)
    selection = selectors.select(actor, request.GET)
    if selection.errors:
        return _invalid(request, actor, selection, "analytics/metric.html", metric=found)
    built = build_card(actor, found, selection)
    audit.record(actor, "analytics.view", detail={"metric": found.key, **selection.audit_detail()})
    return render(
        request,
        "analytics/metric.html",
        {**_context(actor, selection), "metric": found, "card": built},
    )


@require_GET
@staff_page
def metric_export(request: HttpRequest, actor: Actor, metric: str) -> HttpResponse:
    """A table of one metric (trend, parts, or a breakdown) as CSV or XLSX."""
    selectors.require(actor)
    found = selectors.metric(metric)
    fmt = _fmt(request)
    selection = selectors.select(actor, request.GET)
    if selection.errors:
        return _invalid(request, actor, selection, "analytics/metric.html", metric=found)
    name = request.GET.get("table", "trend")
    if name not in ("trend", "parts", *selectors.visible_breakdowns(actor, found)):
        raise NotFound()
    built = build_card(actor, found, selection)
    if name == "trend":
        table = built["trend"]
    elif name == "parts":
        table = built["parts"]
    else:
        table = next(b["table"] for b in built["breakdowns"] if b["table"].key == name)
    audit.record(
        actor,
        "analytics.export",
        detail={
            "metric": found.key,
            "table": name,
            "format": fmt,
            "rows": len(table.rows),
            **selection.audit_detail(),
        },
    )
    filename = f"{found.key}-{name}-{exports.month_text(selection.month)}"
    return kit_exports.download(filename, fmt, table.header, table.download_rows())


def _drill_context(
    actor: Actor, metric: registry.Metric, part: registry.Part, selection: selectors.Selection
) -> dict[str, Any]:
    return {
        **_context(actor, selection),
        "metric": metric,
        "part": part,
        "definition": str(metric.definition),
        "back": reverse("analytics:dashboard") + "?" + _query(selection),
        "detail_href": reverse("analytics:metric", args=[metric.key]) + "?" + _query(selection),
    }


@require_GET
@staff_page
def drilldown(request: HttpRequest, actor: Actor, metric: str, part: str) -> HttpResponse:
    """The patients behind one part of a metric in one month, as far as the actor sees them."""
    selectors.require(actor, Action.PATIENT_VIEW)
    found = selectors.metric(metric)
    chosen = selectors.drill_part(found, part)
    selection = selectors.select(actor, request.GET)
    context = _drill_context(actor, found, chosen, selection)
    if selection.errors:
        return render(request, "analytics/drilldown.html", context, status=400)
    q = request.GET.get("q", "")[:100]
    size = request.GET.get("size", "")
    page = selectors.drill_down(
        actor, found, chosen, selection, q=q, page=request.GET.get("page", 1), size=size or 25
    )
    keep = {**({"q": q} if q else {}), **({"size": str(page.size)} if size else {})}
    context.update({"page": page, "q": q, "list_query": urlencode({**selection.query(), **keep})})
    template = "analytics/_drill_results.html" if is_htmx(request) else "analytics/drilldown.html"
    return render(request, template, context)


@require_GET
@staff_page
def drilldown_export(request: HttpRequest, actor: Actor, metric: str, part: str) -> HttpResponse:
    selectors.require(actor, Action.PATIENT_VIEW)
    found = selectors.metric(metric)
    chosen = selectors.drill_part(found, part)
    fmt = _fmt(request)
    selection = selectors.select(actor, request.GET)
    if selection.errors:
        context = _drill_context(actor, found, chosen, selection)
        return render(request, "analytics/drilldown.html", context, status=400)
    rows = selectors.drill_down_export(
        actor, found, chosen, selection, request.GET.get("q", "")[:100], fmt
    )
    header, body = exports.patient_table(rows)
    filename = f"{found.key}-{chosen.key}-{exports.month_text(selection.month)}"
    return kit_exports.download(filename, fmt, header, body)

"""The auditor's viewer: filters, paging, CSV export."""

from __future__ import annotations

import csv
from datetime import date

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from careloop.accounts.actor import Actor
from careloop.audit import selectors
from careloop.audit.models import Outcome
from careloop.kit.csvsafe import safe_cell
from careloop.kit.pagination import paginate, to_int
from careloop.web.decorators import is_htmx, staff_page

EXPORT_LIMIT = 100_000


def _parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _filter(request: HttpRequest) -> tuple[selectors.AuditFilter, list[str]]:
    g = request.GET
    problems = []
    flt = selectors.AuditFilter(
        patient_id=to_int(g.get("patient"), 0, low=0, high=2**62) or None,
        actor=g.get("actor", "")[:150],
        action=g.get("action", "")[:64],
        outcome=g.get("outcome", "") if g.get("outcome") in Outcome.values else "",
        date_from=_parse_date(g.get("from")),
        date_to=_parse_date(g.get("to")),
    )
    for key in ("from", "to"):
        if g.get(key) and _parse_date(g.get(key)) is None:
            problems.append(key)
    return flt, problems


@staff_page
def audit_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    flt, problems = _filter(request)
    page = paginate(selectors.events(actor, flt), request.GET.get("page"), 50)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "flt": flt,
        "actions": selectors.action_names(actor),
        "outcomes": Outcome.choices,
        "query": query.urlencode(),
        "problems": problems,
    }
    return render(
        request, "audit/_results.html" if is_htmx(request) else "audit/list.html", context
    )


@staff_page
def audit_export(request: HttpRequest, actor: Actor) -> HttpResponseBase:
    flt, _ = _filter(request)
    qs = selectors.events(actor, flt, export=True)[:EXPORT_LIMIT]

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    header = [
        "seq",
        "at",
        "actor",
        "action",
        "outcome",
        "patient_id",
        "object_type",
        "object_id",
        "source",
    ]

    def rows():  # type: ignore[no-untyped-def]
        yield "\ufeff" + writer.writerow(header)  # BOM so spreadsheet programs read UTF-8
        for e in qs.iterator(chunk_size=2000):
            row = selectors.as_row(e)
            yield writer.writerow([safe_cell(row[h]) for h in header])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response

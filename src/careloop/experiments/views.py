"""The experiments pages: the list, create and change a draft, start and stop, the results.

Results are figures per arm (no patient is named), so viewing needs ANALYTICS_VIEW; designing,
starting and stopping need ORG_MANAGE. Every change is audited, and so is every view of results.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.experiments import analysis, services
from careloop.experiments.forms import KIND_CHOICES, ExperimentForm
from careloop.experiments.models import Experiment, Factor, Outcome, Status
from careloop.kit import exports as kit_exports
from careloop.kit import pagination
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.patients.selectors import require
from careloop.web.decorators import staff_page

KIND_LABELS = dict(KIND_CHOICES)
FORMATS = ("csv", "xlsx")


def _can_manage(actor: Actor) -> bool:
    return actor.can(Action.ORG_MANAGE)


@require_GET
@staff_page
def experiment_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    require(actor, Action.ANALYTICS_VIEW)
    qs = Experiment.objects.filter(organisation_id=actor.organisation_id or 0)
    status = request.GET.get("status", "")
    if status and status not in Status.values:
        return render(
            request,
            "experiments/list.html",
            {"page": None, "statuses": Status.choices, "status": "",
             "error": _("Unknown status."), "can_manage": _can_manage(actor)},
            status=400,
        )  # fmt: skip
    if status:
        qs = qs.filter(status=status)
    page = pagination.paginate(qs, request.GET.get("page", 1), request.GET.get("size", 25))
    counts = services.counts_by_experiment([e.pk for e in page.items])
    rows = [
        {"exp": e, "kinds": [str(KIND_LABELS.get(k, k)) for k in e.kinds],
         "patients": counts.get(e.pk, 0)}
        for e in page.items
    ]  # fmt: skip
    return render(
        request,
        "experiments/list.html",
        {"page": page, "rows": rows, "statuses": Status.choices, "status": status,
         "can_manage": _can_manage(actor)},
    )  # fmt: skip


def _form_page(
    request: HttpRequest, actor: Actor, form: ExperimentForm, exp: Experiment | None, status: int
) -> HttpResponse:
    return render(
        request,
        "experiments/edit.html",
        {"form": form, "exp": exp, "factors": Factor.choices},
        status=status,
    )


def _save(request: HttpRequest, actor: Actor, exp: Experiment | None) -> HttpResponse:
    form = ExperimentForm(request.POST, organisation_id=actor.organisation_id or 0)
    if not form.is_valid():
        return _form_page(request, actor, form, exp, 400)
    try:
        saved = services.save(actor, form.cleaned_data, exp)
    except ValidationFailed as exc:
        for field, errors in exc.details.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, str(error))
        return _form_page(request, actor, form, exp, 400)
    messages.success(request, _("Experiment saved."))
    return redirect("experiments:detail", experiment_id=saved.pk)


@require_http_methods(["GET", "POST"])
@staff_page
def experiment_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    if request.method == "POST":
        return _save(request, actor, None)
    factor = request.GET.get("factor", Factor.WORDING)
    if factor not in Factor.values:
        factor = Factor.WORDING
    form = ExperimentForm(
        initial=ExperimentForm.initial_for(None, factor), organisation_id=actor.organisation_id or 0
    )
    return _form_page(request, actor, form, None, 200)


@require_http_methods(["GET", "POST"])
@staff_page
def experiment_edit(request: HttpRequest, actor: Actor, experiment_id: int) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    exp = services.get(actor, experiment_id)
    if exp.status != Status.DRAFT:
        raise Conflict(_("Only a draft can be changed; this one has started."))
    if request.method == "POST":
        return _save(request, actor, exp)
    form = ExperimentForm(
        initial=ExperimentForm.initial_for(exp), organisation_id=actor.organisation_id or 0
    )
    return _form_page(request, actor, form, exp, 200)


@require_POST
@staff_page
def experiment_start(request: HttpRequest, actor: Actor, experiment_id: int) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    try:
        exp = services.start(actor, experiment_id)
    except ValidationFailed as exc:
        for errors in exc.details.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("experiments:detail", experiment_id=experiment_id)
    messages.success(request, _("Experiment {code} started.").format(code=exp.code))
    return redirect("experiments:detail", experiment_id=exp.pk)


@require_POST
@staff_page
def experiment_stop(request: HttpRequest, actor: Actor, experiment_id: int) -> HttpResponse:
    require(actor, Action.ORG_MANAGE)
    note = request.POST.get("note", "").strip()
    if len(note) > 300:
        messages.error(request, _("The reason is longer than 300 characters."))
        return redirect("experiments:detail", experiment_id=experiment_id)
    exp = services.stop(actor, experiment_id, note)
    messages.success(request, _("Experiment {code} stopped.").format(code=exp.code))
    return redirect("experiments:detail", experiment_id=exp.pk)


def _pct(value: Any) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _num(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _num2(value: Any) -> str:
    return _num(value, 2)


def _range(fmt: Any, low: Any, high: Any) -> str:
    return "" if low is None or high is None else f"{fmt(low)} – {fmt(high)}"


def _p(value: Any) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


OUTCOME_LABELS = dict(Outcome.choices)


def _display(res: dict[str, Any]) -> dict[str, Any]:
    """The figures as text for the page and the download, and the CI chart's data."""
    arms = []
    for arm in res["arms"]:
        ack, ret, pdc = arm["ack_rate"], arm["return_15d"], arm["pdc"]
        arms.append(
            {
                **arm,
                "ack_text": _pct(ack["rate"]),
                "ack_ci": _range(_pct, ack["low"], ack["high"]),
                "return_text": _pct(ret["rate"]),
                "return_ci": _range(_pct, ret["low"], ret["high"]),
                "pdc_text": _num(pdc["mean"]),
                "pdc_sd": _num(pdc["sd"]),
            }
        )
    comparisons = []
    for row in res["comparisons"]:
        percent = row["outcome"] != Outcome.PDC
        fmt = _pct if percent else _num
        comparisons.append(
            {
                **row,
                "label": str(OUTCOME_LABELS.get(row["outcome"], row["outcome"])),
                "primary": row["outcome"] == res["primary"],
                "difference_text": fmt(row["difference"]),
                "ci_text": _range(fmt, row["low"], row["high"]),
                "rr_text": _num2(row["relative_risk"]),
                "rr_ci_text": _range(_num2, row["rr_low"], row["rr_high"]),
                "p_text": _p(row["p_value"]),
            }
        )
    chart = {
        "labels": [f"{c['arm']} · {c['label']}" for c in comparisons if c["low"] is not None],
        "estimates": [round(c["difference"] * 100, 2) for c in comparisons if c["low"] is not None],
        "intervals": [
            [round(c["low"] * 100, 2), round(c["high"] * 100, 2)]
            for c in comparisons
            if c["low"] is not None
        ],
        "axis": _("Difference from control (percentage points)"),
        "estimate": _("Estimate"),
        "interval": _("Confidence interval (95 percent)"),
    }
    return {"arms": arms, "comparisons": comparisons, "chart_json": json.dumps(chart)}


@require_GET
@staff_page
def experiment_detail(request: HttpRequest, actor: Actor, experiment_id: int) -> HttpResponse:
    require(actor, Action.ANALYTICS_VIEW)
    exp = services.get(actor, experiment_id)
    res = analysis.results(exp)
    audit.record(actor, "experiment.results", obj=exp, detail={"code": exp.code})
    return render(
        request,
        "experiments/detail.html",
        {
            "exp": exp,
            "res": res,
            **_display(res),
            "kinds": [str(KIND_LABELS.get(k, k)) for k in exp.kinds],
            "looks": list(exp.looks_done.order_by("number")),
            "can_manage": _can_manage(actor),
            "primary_label": OUTCOME_LABELS.get(exp.primary_outcome, exp.primary_outcome),
            "arms_json": json.dumps(exp.arms, ensure_ascii=False, indent=2),
        },
    )


@require_GET
@staff_page
def experiment_export(request: HttpRequest, actor: Actor, experiment_id: int) -> HttpResponse:
    require(actor, Action.ANALYTICS_VIEW)
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        raise NotFound()
    exp = services.get(actor, experiment_id)
    res = analysis.results(exp)
    header = [
        _("Arm"), _("Control"), _("Patients"),
        _("Reminders sent"), _("Acknowledged in 12 h"), _("Acknowledgement rate"),
        _("Missed a visit"), _("Back within 15 days"), _("Return rate"),
        _("Patients with PDC"), _("Mean PDC"),
        _("Outcome"), _("Difference from control"), _("CI low"), _("CI high"),
        _("Relative risk"), _("RR CI low"), _("RR CI high"), _("p-value"),
    ]  # fmt: skip
    rows: list[list[Any]] = []
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for c in res["comparisons"]:
        by_arm.setdefault(c["arm"], []).append(c)
    for arm in res["arms"]:
        base = [
            arm["code"], "yes" if arm["control"] else "", arm["patients"],
            arm["ack_rate"]["n"], arm["ack_rate"]["successes"], _round(arm["ack_rate"]["rate"]),
            arm["return_15d"]["n"], arm["return_15d"]["successes"],
            _round(arm["return_15d"]["rate"]), arm["pdc"]["n"], _round(arm["pdc"]["mean"]),
        ]  # fmt: skip
        comps: list[dict[str, Any] | None] = list(by_arm.get(arm["code"], [])) or [None]
        for c in comps:
            if c is None:
                rows.append([*base, "", "", "", "", "", "", "", ""])
            else:
                rows.append(
                    [*base, c["outcome"], _round(c["difference"]), _round(c["low"]),
                     _round(c["high"]), _round(c["relative_risk"]), _round(c["rr_low"]),
                     _round(c["rr_high"]), _round(c["p_value"])]
                )  # fmt: skip
    audit.record(
        actor,
        "experiment.export",
        obj=exp,
        detail={"code": exp.code, "format": fmt, "rows": len(rows)},
    )
    return kit_exports.download(f"experiment-{exp.code}", fmt, header, rows)


def _round(value: Any) -> Any:
    return "" if value is None else round(float(value), 6)

"""The risk pages: the model card, the high-risk worklist (with a call task per patient) and the
drift history."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import selectors as alert_selectors
from careloop.audit import services as audit
from careloop.kit import exports as kit_exports
from careloop.kit.errors import NotFound
from careloop.kit.pagination import paginate
from careloop.patients import selectors as patient_selectors
from careloop.risk import features, selectors, services
from careloop.risk import models as rm
from careloop.web.decorators import staff_page

LIMITATIONS: dict[str, Any] = {
    "observational": gettext_lazy(
        "The model learns associations in past records, not causes: a factor that raises the "
        "score is a reason to look, not a diagnosis."
    ),
    "organisation": gettext_lazy(
        "It is trained on this organisation's own patients and reminders only; figures from "
        "another population may differ."
    ),
    "coverage": gettext_lazy(
        "Patients with fewer than five medication reminders sent in a 30-day window have no "
        "outcome, so the model says little about them."
    ),
    "time_split": gettext_lazy(
        "It is tested on the latest complete 30-day window, after every training window: a "
        "fair test of the near future, not a guarantee for later months."
    ),
    "small_test": gettext_lazy(
        "The test window had too few patients, or only one outcome, to measure discrimination."
    ),
}
SUBGROUP_LABELS: dict[str, Any] = {
    "female": gettext_lazy("Female"),
    "male_or_unknown": gettext_lazy("Male or not recorded"),
}
BANDS = [
    ("high", gettext_lazy("High")),
    ("medium", gettext_lazy("Medium")),
    ("low", gettext_lazy("Low")),
]
BAND_CHOICES = {key for key, _label in BANDS}


def _require(actor: Actor, *actions: Action) -> None:
    for action in actions:
        patient_selectors.require(actor, action)


def _percent(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _card_context(model: rm.Model) -> dict[str, Any]:
    card = model.card
    metrics = card.get("metrics", {})
    calibration = card.get("calibration", [])
    chart = {
        "labels": [f"{row['low']:.1f}–{row['high']:.1f}" for row in calibration],
        "predicted": [row.get("predicted") for row in calibration],
        "observed": [row.get("observed") for row in calibration],
        "counts": [row.get("n") for row in calibration],
        "predicted_label": _("Mean predicted risk"),
        "observed_label": _("Observed rate"),
    }
    coefficients = sorted(
        (
            {
                "name": f["name"],
                "label": features.label_of(f["name"]),
                "coef": f["coef"],
                "mean": f["mean"],
            }
            for f in card.get("features", [])
        ),
        key=lambda f: -abs(f["coef"]),
    )
    subgroups = card.get("subgroups", {})
    sexes = [
        {**row, "label": SUBGROUP_LABELS.get(row["group"], row["group"])}
        for row in subgroups.get("sex", [])
    ]
    return {
        "model": model,
        "card": card,
        "data": card.get("data", {}),
        "target": card.get("target", {}),
        "auroc": metrics.get("auroc", {}),
        "brier": metrics.get("brier", {}),
        "thresholds": card.get("thresholds", {}),
        "calibration": calibration,
        "calibration_json": json.dumps(chart, ensure_ascii=False),
        "age_groups": subgroups.get("age", []),
        "sex_groups": sexes,
        "coefficients": coefficients,
        "limitations": [LIMITATIONS.get(code, code) for code in card.get("limitations", [])],
    }


@require_GET
@staff_page
def card(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The active model's card (or another version's), and the list of versions."""
    _require(actor, Action.ANALYTICS_VIEW)
    org = actor.organisation_id or 0
    versions = list(selectors.model_versions(org))
    raw = request.GET.get("version", "")
    context: dict[str, Any] = {"versions": versions, "model": None}
    if raw:
        if not raw.isdigit():
            context["error"] = _("The version must be a whole number.")
            return render(request, "risk/card.html", context, status=400)
        chosen = next((m for m in versions if m.version == int(raw)), None)
        if chosen is None:
            raise NotFound()
    else:
        chosen = next((m for m in versions if m.active), versions[0] if versions else None)
    if chosen is not None:
        context.update(_card_context(chosen))
        audit.record(actor, "risk.card", obj=chosen, detail={"version": chosen.version})
    return render(request, "risk/card.html", context)


class _Filter:
    def __init__(self, actor: Actor, query: Any) -> None:
        self.errors: list[str] = []
        self.band = query.get("band", "high")
        if self.band not in BAND_CHOICES and self.band != "":
            self.errors.append(_("Choose a band: high, medium, low or all."))
            self.band = "high"
        self.departments = list(alert_selectors.departments(actor).order_by("name"))
        self.department: int | None = None
        raw = query.get("department", "")
        if raw:
            allowed = {d.pk for d in self.departments}
            if not raw.isdigit() or int(raw) not in allowed:
                self.errors.append(_("Choose one of your departments."))
            else:
                self.department = int(raw)

    def query(self) -> dict[str, Any]:
        out: dict[str, Any] = {"band": self.band}
        if self.department:
            out["department"] = self.department
        return out


def _rows(scores: list[rm.Score]) -> list[dict[str, Any]]:
    return [{"s": s, "factors": selectors.factors_of(s)} for s in scores]


@require_GET
@staff_page
def worklist(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The latest scores of the patients the actor may see, highest first, with reasons."""
    _require(actor, Action.PATIENT_VIEW)
    flt = _Filter(actor, request.GET)
    model = services.active_model(actor.organisation_id or 0)
    context: dict[str, Any] = {
        "f": flt,
        "bands": BANDS,
        "model": model,
        "day": selectors.latest_day(model),
        "can_task": actor.can(Action.CLINICAL_WRITE),
        "list_query": urlencode(flt.query()),
    }
    if flt.errors:
        context["page"] = None
        return render(request, "risk/worklist.html", context, status=400)
    qs = selectors.worklist(actor, band=flt.band, department_id=flt.department)
    page = paginate(qs, request.GET.get("page", 1), request.GET.get("size", 25))
    page.items = _rows(page.items)
    context["page"] = page
    audit.record(
        actor,
        "risk.worklist",
        detail={
            **flt.query(),
            "page": page.number,
            "patients": [r["s"].patient_id for r in page.items],
        },
    )
    return render(request, "risk/worklist.html", context)


@require_GET
@staff_page
def worklist_export(request: HttpRequest, actor: Actor) -> HttpResponse:
    _require(actor, Action.PATIENT_VIEW)
    flt = _Filter(actor, request.GET)
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        flt.errors.append(_("Choose CSV or XLSX."))
    if flt.errors:
        model = services.active_model(actor.organisation_id or 0)
        context = {"f": flt, "bands": BANDS, "page": None, "model": model, "can_task": False}
        return render(request, "risk/worklist.html", context, status=400)
    scores = list(selectors.worklist(actor, band=flt.band, department_id=flt.department)[:5000])
    header = [
        _("Patient"),
        _("Record number"),
        _("Risk score"),
        _("Band"),
        _("Reasons"),
        _("Scored on"),
    ]
    body = [
        [
            s.patient.name,
            s.patient.record_number,
            f"{s.score:.3f}",
            s.get_band_display(),
            "; ".join(f"{f['label']}: {f['shown']}" for f in selectors.factors_of(s)),
            s.day,
        ]
        for s in scores
    ]
    audit.record(
        actor,
        "risk.export",
        detail={**flt.query(), "format": fmt, "patients": [s.patient_id for s in scores]},
    )
    return kit_exports.download(f"risk-{flt.band or 'all'}", fmt, header, body)


@require_POST
@staff_page
def call_task(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """Open a nurse call task for a scored patient and record the action."""
    for needed in (Action.PATIENT_VIEW, Action.CLINICAL_WRITE):  # refusals audited with the patient
        patient_selectors.require(actor, needed, patient_id=patient_id)
    try:
        task, action = services.open_call_task(actor, patient_id)
    except services.RiskError as exc:
        return render(request, "web/error.html", {"title": exc.message, "text": ""}, status=400)
    if action is None:
        messages.info(request, _("A call task for this score is already open."))
    else:
        messages.success(request, _("Call task created for the responsible nurse."))
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("risk:worklist")


@require_GET
@staff_page
def drift(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The population stability index of each day's scores, over time."""
    _require(actor, Action.ANALYTICS_VIEW)
    org = actor.organisation_id or 0
    checks = selectors.drift_history(org)
    chart = {
        "labels": [c.day.isoformat() for c in checks],
        "psi": [round(c.psi, 4) for c in checks],
        "warn_at": services.PSI_WARN,
        "psi_label": _("PSI"),
        "warn_label": _("Warning threshold"),
    }
    audit.record(actor, "risk.drift", detail={"checks": len(checks)})
    return render(
        request,
        "risk/drift.html",
        {
            "checks": list(reversed(checks)),
            "chart_json": json.dumps(chart, ensure_ascii=False),
            "warn_at": services.PSI_WARN,
            "model": services.active_model(org),
        },
    )

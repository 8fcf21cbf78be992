"""Staff pages of a patient's readings: the vitals and alerts tabs of the patient page, the
charts and the forms behind them (a reading, a symptom, an adverse reaction, a personal
threshold).

The tabs are parts of patients/views.py's page (``vitals_tab_context`` and
``alerts_tab_context``); every route here answers htmx with the part it changed and a plain
browser with a page of its own (forms) or a redirect back to the tab.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import evaluation
from careloop.alerts import models as alert_models
from careloop.alerts import services as alert_services
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import ValidationFailed
from careloop.kit.pagination import paginate, to_int
from careloop.observations import domain, selectors, services
from careloop.observations import forms as f
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.web.decorators import is_htmx, staff_page

A = Action
PAGE_SIZE = 20
ALERT_PAGE_SIZE = 20
DEFAULT_RANGE = "30d"
RANGE_LABELS = [
    ("7d", gettext_lazy("7 days")),
    ("30d", gettext_lazy("30 days")),
    ("90d", gettext_lazy("90 days")),
    ("1y", gettext_lazy("1 year")),
]
ALWAYS_CHARTED = ("bp", "glucose", "heart_rate", "weight")
CHARTED_WHEN_PRESENT = ("spo2", "temperature", "hba1c")

# Targets drawn on the charts come from the rules, with the patient's personal thresholds:
# blood pressure is controlled below the public-health follow-up rule's sys/dia (140/90,
# 国家基本公共卫生服务规范 第三版); fasting glucose between the hypoglycaemia limit (3.9) and the
# follow-up rule's fasting limit (7.0). Lower edge of the BP band: 90/60, below which blood
# pressure is low (中国高血压防治指南 2018).
BP_TARGET = ("ph-bp-followup", {"sys": 140.0, "dia": 90.0})
BP_FLOOR = {"sys": 90.0, "dia": 60.0}
GLUCOSE_LOW = ("glucose-low", "low", 3.9)
GLUCOSE_TARGET = ("ph-glucose-followup", "fpg", 7.0)
LIMIT_LINES = {
    "heart_rate": ("hr-night-high-3", "hr_max", pgettext_lazy("chart", "Night limit")),
    "spo2": ("spo2-low", "low", pgettext_lazy("chart", "Low limit")),
    "temperature": ("temperature-fever", "fever", pgettext_lazy("chart", "Fever")),
}

RULE_NAMES = {
    "bp-crisis": gettext_lazy("Blood pressure crisis"),
    "bp-high-twice": gettext_lazy("Blood pressure at crisis level twice in 24 h"),
    "bp-trend-up": gettext_lazy("Rising blood pressure"),
    "glucose-low": gettext_lazy("Low glucose"),
    "glucose-very-high": gettext_lazy("Very high glucose"),
    "hr-night-high-3": gettext_lazy("High night-time heart rate"),
    "spo2-low": gettext_lazy("Low oxygen saturation"),
    "temperature-fever": gettext_lazy("Fever"),
    "phq9-severe": gettext_lazy("Severe depression (PHQ-9)"),
    "ph-bp-followup": gettext_lazy("Blood pressure target (follow-up)"),
    "ph-glucose-followup": gettext_lazy("Fasting glucose target (follow-up)"),
}
PARAM_LABELS = {
    "sys": gettext_lazy("Systolic (mmHg)"),
    "dia": gettext_lazy("Diastolic (mmHg)"),
    "low": gettext_lazy("Lower limit"),
    "high": gettext_lazy("Upper limit"),
    "hr_max": gettext_lazy("Heart rate (/min)"),
    "fever": gettext_lazy("Temperature (°C)"),
    "fpg": gettext_lazy("Fasting glucose (mmol/L)"),
    "severe": gettext_lazy("Total score"),
}
OUTCOME_LABELS = {
    "contacted_patient": gettext_lazy("Contacted the patient"),
    "plan_adjusted": gettext_lazy("Care plan adjusted"),
    "medication_changed": gettext_lazy("Medication changed"),
    "visit_booked": gettext_lazy("Visit booked"),
    "referred": gettext_lazy("Referred"),
    "advice_given": gettext_lazy("Advice given"),
    "no_action_needed": gettext_lazy("No action needed"),
    "false_reading": gettext_lazy("False reading"),
    "known_condition": gettext_lazy("Known condition"),
    "duplicate": gettext_lazy("Duplicate"),
    "not_relevant": gettext_lazy("Not relevant"),
    "other": gettext_lazy("Other"),
}
PRIORITY_TONES = {"stat": "bad", "asap": "bad", "urgent": "warn", "routine": "neutral"}
STATUS_TONES = {"open": "warn", "acknowledged": "info", "resolved": "ok", "dismissed": "muted"}


def _language() -> str:
    return translation.get_language() or "zh-hans"


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _range(value: Any) -> tuple[str, int]:
    key = str(value or DEFAULT_RANGE)
    if key not in selectors.RANGES:
        key = DEFAULT_RANGE
    return key, selectors.RANGES[key]


# --- rules and personal thresholds --------------------------------------------------------------


def _rules_with_params(organisation_id: int) -> list[Any]:
    return [r for r in evaluation.ruleset_for(organisation_id).rules() if r.enabled and r.params]


def _thresholds_for(
    patient: pm.Patient,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Each rule's thresholds for this patient (population defaults, then personal ones), and
    the personal ones alone."""
    personal = evaluation.personal_thresholds([patient.pk]).get(patient.pk, {})
    merged: dict[str, dict[str, float]] = {}
    for rule in _rules_with_params(patient.organisation_id):
        merged[rule.code] = {
            **{k: float(v) for k, v in rule.params.items()},
            **personal.get(rule.code, {}),
        }
    return merged, personal


def _rule_name(code: str) -> str:
    return str(RULE_NAMES.get(code, code))


# --- charts ---------------------------------------------------------------------------------


def _glucose_labels() -> dict[str, str]:
    return {value: str(label) for value, label in f.CONTEXTS}


def _ticks(start: datetime, end: datetime, days: int, tz: ZoneInfo) -> list[list[Any]]:
    """Axis ticks at the patient's local midnights (first of the month for a year), with labels."""
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    out: list[list[Any]] = []
    if days > 120:
        year, month = first.year, first.month
        while True:
            month += 1
            if month > 12:
                year, month = year + 1, 1
            day = date(year, month, 1)
            if day > last:
                break
            if (month - 1) % 2 == 0:
                out.append([_ms(datetime(year, month, 1, tzinfo=tz)), f"{year}-{month:02d}"])
        return out
    step = 1 if days <= 7 else (5 if days <= 30 else 15)
    day = first + timedelta(days=1)
    while day <= last:
        at = datetime(day.year, day.month, day.day, tzinfo=tz)
        out.append([_ms(at), f"{day.month:02d}-{day.day:02d}"])
        day += timedelta(days=step)
    return out


def _chart(
    kind: str,
    points: list[dict[str, Any]],
    *,
    zone: str,
    start: datetime,
    end: datetime,
    params: Mapping[str, Mapping[str, float]],
    personal: Mapping[str, Any],
) -> dict[str, Any]:
    spec = domain.KINDS[kind]
    tz = ZoneInfo(zone)
    unit = f.unit_label(spec.unit)
    rows = []
    for p in points:
        at = datetime.fromisoformat(p["at"])
        rows.append([_ms(at), p["value"], p["value2"], p["context"], p["source"], _local(at, tz)])
    payload: dict[str, Any] = {
        "kind": kind,
        "unit": unit,
        "zone": zone,
        "from": _ms(start),
        "to": _ms(end),
        "decimals": spec.decimals,
        "points": rows,
        "ticks": _ticks(start, end, round((end - start).total_seconds() / 86400), tz),
        "sources": {value: str(label) for value, label in om.Source.choices},
        "labels": {"value": str(f.KIND_LABELS[kind]), "target": str(_("Target"))},
    }
    caption = ""
    if kind == "bp":
        code, default = BP_TARGET
        target = {**default, **params.get(code, {})}
        payload["labels"].update(systolic=str(_("Systolic")), diastolic=str(_("Diastolic")))
        payload["bands"] = [
            {"from": BP_FLOOR["sys"], "to": target["sys"], "series": 0},
            {"from": BP_FLOOR["dia"], "to": target["dia"], "series": 1},
        ]
        caption = _("Target below %(sys)s/%(dia)s mmHg") % {
            "sys": f"{target['sys']:g}",
            "dia": f"{target['dia']:g}",
        }
        if code in personal:
            caption += " · " + _("personal target")
    elif kind == "glucose":
        low = params.get(GLUCOSE_LOW[0], {}).get(GLUCOSE_LOW[1], GLUCOSE_LOW[2])
        high = params.get(GLUCOSE_TARGET[0], {}).get(GLUCOSE_TARGET[1], GLUCOSE_TARGET[2])
        payload["labels"].update(_glucose_labels())
        payload["mgdl"] = domain.GLUCOSE_MG_PER_MMOL
        payload["bands"] = [{"from": low, "to": high, "series": -1}]
        caption = _("Fasting target %(low)s–%(high)s mmol/L") % {
            "low": f"{low:g}",
            "high": f"{high:g}",
        }
        if GLUCOSE_TARGET[0] in personal or GLUCOSE_LOW[0] in personal:
            caption += " · " + _("personal target")
    elif kind in LIMIT_LINES:
        code, name, label = LIMIT_LINES[kind]
        if name in params.get(code, {}):
            limit = params[code][name]
            payload["lines"] = [{"value": limit, "label": f"{label} {limit:g} {unit}"}]
    return {
        "kind": kind,
        "label": f.KIND_LABELS[kind],
        "unit": unit,
        "count": len(rows),
        "caption": caption,
        "data": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    }


def _charts_context(actor: Actor, patient: pm.Patient, range_key: Any) -> dict[str, Any]:
    key, days = _range(range_key)
    found = selectors.series(actor, patient.pk, ALWAYS_CHARTED + CHARTED_WHEN_PRESENT, days=days)
    end = utc_now()
    start = end - timedelta(days=days)
    params, personal = _thresholds_for(patient)
    charts = [
        _chart(
            kind,
            found[kind].points,
            zone=patient.time_zone,
            start=start,
            end=end,
            params=params,
            personal=personal,
        )
        for kind in (*ALWAYS_CHARTED, *CHARTED_WHEN_PRESENT)
        if kind in ALWAYS_CHARTED or found[kind].points
    ]
    return {
        "charts": charts,
        "range": key,
        "ranges": RANGE_LABELS,
        "has_readings": any(c["count"] for c in charts),
    }


@staff_page
@require_GET
def charts(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = patient_selectors.get_patient(
        actor, patient_id, action=A.CLINICAL_VIEW, audit_read=False
    )
    context = {"patient": patient, **_charts_context(actor, patient, request.GET.get("range"))}
    if is_htmx(request):
        return render(request, "observations/_charts.html", context)
    return redirect(_tab_url(patient.pk, "vitals", range=context["range"]))


# --- the table of readings --------------------------------------------------------------------


def _reading_row(obs: om.Observation, tz: ZoneInfo) -> dict[str, Any]:
    extra = ""
    if obs.kind == "glucose":
        extra = f"{domain.mg_dl(obs.value):.0f} mg/dL"
    return {
        "obs": obs,
        "at": _local(obs.effective_at, tz),
        "label": f.KIND_LABELS.get(obs.kind, obs.kind),
        "value": domain.display(obs.kind, obs.value, obs.value2)
        if obs.kind in domain.KINDS
        else f"{obs.value:g}",
        "unit": f.unit_label(obs.unit),
        "extra": extra,
        "context": _glucose_labels().get(obs.context, obs.context),
        "source": obs.get_source_display(),
        "device": obs.device_id,
    }


def _readings_context(actor: Actor, patient: pm.Patient, page: Any) -> dict[str, Any]:
    """One page of the patient's readings, newest first (the newest 500 are paged)."""
    number = to_int(page, 1, low=1, high=500 // PAGE_SIZE)
    wanted = number * PAGE_SIZE
    found = selectors.readings(actor, patient.pk, limit=wanted + 1)
    if number > 1 and len(found) <= (number - 1) * PAGE_SIZE:  # past the end: the last page
        number = max(1, -(-len(found) // PAGE_SIZE))
        wanted = number * PAGE_SIZE
    tz = ZoneInfo(patient.time_zone)
    rows = [_reading_row(o, tz) for o in found[(number - 1) * PAGE_SIZE : wanted]]
    return {
        "readings": rows,
        "readings_page": number,
        "readings_next": len(found) > wanted and wanted < 500,
        "readings_previous": number > 1,
    }


@staff_page
@require_GET
def reading_list(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = patient_selectors.get_patient(
        actor, patient_id, action=A.CLINICAL_VIEW, audit_read=False
    )
    context = {"patient": patient, **_readings_context(actor, patient, request.GET.get("page"))}
    audit.record(
        actor,
        "observation.read",
        patient_id=patient.pk,
        detail={"view": "readings", "page": context["readings_page"]},
    )
    if is_htmx(request):
        return render(request, "observations/_readings.html", context)
    return redirect(_tab_url(patient.pk, "vitals"))


# --- the vitals tab ---------------------------------------------------------------------------


def vitals_tab_context(actor: Actor, patient: pm.Patient) -> dict[str, Any]:
    """What the patient page's vitals tab shows (the patient is already in scope)."""
    can_write = actor.can(A.CLINICAL_WRITE)
    context: dict[str, Any] = {
        **_charts_context(actor, patient, DEFAULT_RANGE),
        **_readings_context(actor, patient, 1),
        **_symptoms_context(actor, patient),
        **_reactions_context(actor, patient),
        **_thresholds_context(actor, patient, ""),
        "can_write": can_write,
        "zone": patient.time_zone,
    }
    if can_write:
        context["reading_form"] = f.ReadingForm(zone=patient.time_zone)
        context["symptom_form"] = f.SymptomForm(zone=patient.time_zone)
        context["reaction_form"] = _reaction_form(actor, patient)
    audit.record(
        actor,
        "observation.read",
        patient_id=patient.pk,
        detail={
            "view": "vitals_tab",
            "readings": len(context["readings"]),
            "symptoms": len(context["symptoms"]),
            "reactions": len(context["reactions"]),
        },
    )
    return context


def _tab_url(patient_id: int, tab: str, **query: str) -> str:
    url = reverse("patients:detail", args=[patient_id]) + f"?tab={tab}"
    return url + "".join(f"&{k}={v}" for k, v in query.items())


def _apply(form: Any, exc: ValidationFailed, aliases: Mapping[str, str] | None = None) -> None:
    """Show a service's refusal next to the field it names."""
    for name, errors in exc.details.items():
        field = (aliases or {}).get(name, name)
        for error in errors:
            form.add_error(field if field in form.fields else None, str(error))


def _writable(actor: Actor, patient_id: int, request: HttpRequest) -> pm.Patient:
    return patient_selectors.get_patient(
        actor, patient_id, action=A.CLINICAL_WRITE, audit_read=request.method == "GET"
    )


def _form_page(
    request: HttpRequest, patient: pm.Patient, template: str, title: str, context: dict[str, Any]
) -> HttpResponse:
    """A form on a page of its own (no htmx): first shown, or shown again with its errors."""
    status = 422 if request.method == "POST" else 200
    return render(
        request,
        "observations/form_page.html",
        {
            "patient": patient,
            "part": template,
            "title": title,
            "back": _tab_url(patient.pk, "vitals"),
            "can_write": True,
            **context,
        },
        status=status,
    )


# --- a new reading ----------------------------------------------------------------------------


@staff_page
@require_http_methods(["GET", "POST"])
def reading_create(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = _writable(actor, patient_id, request)
    zone = patient.time_zone
    saved: om.Observation | None = None
    if request.method == "POST":
        form = f.ReadingForm(request.POST, zone=zone)
        if form.is_valid():
            try:
                saved = services.record_one(actor, patient.pk, form.item())
            except ValidationFailed as exc:
                _apply(form, exc, f.READING_FIELDS)
        if saved is not None:
            note = _("Reading saved: %(label)s %(value)s %(unit)s") % {
                "label": f.KIND_LABELS.get(saved.kind, saved.kind),
                "value": domain.display(saved.kind, saved.value, saved.value2),
                "unit": f.unit_label(saved.unit),
            }
            if not is_htmx(request):
                messages.success(request, note)
                return redirect(_tab_url(patient.pk, "vitals"))
            range_key = request.POST.get("range", DEFAULT_RANGE)
            context = {
                "patient": patient,
                "can_write": True,
                "reading_form": f.ReadingForm(zone=zone, initial={"kind": saved.kind}),
                "saved_note": note,
                "refresh": True,
                **_charts_context(actor, patient, range_key),
                **_readings_context(actor, patient, 1),
            }
            return render(request, "observations/_reading_saved.html", context)
    else:
        form = f.ReadingForm(zone=zone, initial={"kind": request.GET.get("kind", "bp")})
    context = {"reading_form": form, "zone": zone, "range": request.POST.get("range", "")}
    if is_htmx(request):
        return render(request, "observations/_reading_form.html", {"patient": patient, **context})
    return _form_page(
        request, patient, "observations/_reading_form.html", _("Add a reading"), context
    )


# --- symptom diary ----------------------------------------------------------------------------


def _symptoms_context(actor: Actor, patient: pm.Patient) -> dict[str, Any]:
    tz = ZoneInfo(patient.time_zone)
    return {
        "symptoms": [
            {"entry": s, "at": _local(s.effective_at, tz), "source": s.get_source_display()}
            for s in selectors.symptoms(actor, patient.pk, limit=20)
        ]
    }


@staff_page
@require_http_methods(["GET", "POST"])
def symptom_create(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = _writable(actor, patient_id, request)
    zone = patient.time_zone
    if request.method == "POST":
        form = f.SymptomForm(request.POST, zone=zone)
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.record_symptom(
                    actor,
                    patient.pk,
                    symptom=d["symptom"],
                    severity=d["severity"],
                    effective_at=d["at"],
                    note=d.get("note") or "",
                )
            except ValidationFailed as exc:
                _apply(form, exc)
            else:
                if not is_htmx(request):
                    messages.success(request, _("Symptom recorded."))
                    return redirect(_tab_url(patient.pk, "vitals"))
                form = f.SymptomForm(zone=zone)
                return _section(
                    request, actor, patient, "symptoms", symptom_form=form,
                    saved_note=_("Symptom recorded."),
                )  # fmt: skip
    else:
        form = f.SymptomForm(zone=zone)
    if is_htmx(request):
        return _section(request, actor, patient, "symptoms", symptom_form=form)
    return _form_page(
        request, patient, "observations/_symptom_form.html", _("Symptom diary"),
        {"symptom_form": form},
    )  # fmt: skip


def _section(
    request: HttpRequest, actor: Actor, patient: pm.Patient, name: str, **extra: Any
) -> HttpResponse:
    """A section of the vitals tab drawn again (after a save, or with a form's errors)."""
    context: dict[str, Any] = {"patient": patient, "can_write": True, **extra}
    if name == "symptoms":
        context.update(_symptoms_context(actor, patient))
    elif name == "reactions":
        context.update(_reactions_context(actor, patient))
    audit.record(actor, "observation.read", patient_id=patient.pk, detail={"view": name})
    return render(request, f"observations/_{name}.html", context)


# --- adverse drug reactions -------------------------------------------------------------------


def _medications(actor: Actor, patient: pm.Patient) -> list[tuple[int, str]]:
    """The patient's current medicines, for the reaction form's menu."""
    _patient, rows = patient_selectors.list_records(actor, patient.pk, "medications")
    active = [m for m in rows if m.status == pm.Medication.Status.ACTIVE]
    return [(m.pk, m.name) for m in sorted(active, key=lambda m: m.name)[:50]]


def _reaction_form(actor: Actor, patient: pm.Patient, data: Any = None) -> f.ReactionForm:
    today = utc_now().astimezone(ZoneInfo(patient.time_zone)).date()
    return f.ReactionForm(data, medications=_medications(actor, patient), today=today)


def _reactions_context(actor: Actor, patient: pm.Patient) -> dict[str, Any]:
    tz = ZoneInfo(patient.time_zone)
    return {
        "reactions": [
            {"r": r, "at": _local(r.reported_at, tz), "source": r.get_source_display()}
            for r in selectors.adverse_reactions(actor, patient.pk)[:20]
        ]
    }


@staff_page
@require_http_methods(["GET", "POST"])
def reaction_create(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = _writable(actor, patient_id, request)
    if request.method == "POST":
        form = _reaction_form(actor, patient, request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.report_adverse_reaction(
                    actor,
                    patient.pk,
                    drug=d.get("drug") or "",
                    symptom=d["symptom"],
                    severity=d["severity"],
                    onset=d["onset"],
                    medication_id=d["medication_id"],
                    note=d.get("note") or "",
                )
            except ValidationFailed as exc:
                _apply(form, exc)
            else:
                note = _("Reaction reported; the responsible doctor is alerted.")
                if not is_htmx(request):
                    messages.success(request, note)
                    return redirect(_tab_url(patient.pk, "vitals"))
                return _section(
                    request, actor, patient, "reactions",
                    reaction_form=_reaction_form(actor, patient), saved_note=note,
                )  # fmt: skip
    else:
        form = _reaction_form(actor, patient)
    if is_htmx(request):
        return _section(request, actor, patient, "reactions", reaction_form=form)
    return _form_page(
        request, patient, "observations/_reaction_form.html", _("Report an adverse drug reaction"),
        {"reaction_form": form},
    )  # fmt: skip


# --- personal thresholds ----------------------------------------------------------------------


def _thresholds_context(
    actor: Actor, patient: pm.Patient, chosen: str, form: f.ThresholdForm | None = None
) -> dict[str, Any]:
    rules = _rules_with_params(patient.organisation_id)
    personal = evaluation.personal_thresholds([patient.pk]).get(patient.pk, {})
    codes = [r.code for r in rules]
    if chosen not in codes:
        chosen = next((c for c in codes if c in personal), BP_TARGET[0])
        if chosen not in codes:
            chosen = codes[0] if codes else ""
    rule = next((r for r in rules if r.code == chosen), None)
    if rule is not None and form is None:
        form = f.ThresholdForm(
            params={k: float(v) for k, v in rule.params.items()}, current=personal.get(rule.code)
        )
    if form is not None:
        for bound in form.param_fields():
            name = bound.name[2:]
            bound.field.label = str(PARAM_LABELS.get(name, name))
    set_rows = [
        {
            "code": code,
            "name": _rule_name(code),
            "values": ", ".join(f"{PARAM_LABELS.get(k, k)} {v:g}" for k, v in values.items()),
        }
        for code, values in sorted(personal.items())
    ]
    return {
        "threshold_rules": [(r.code, _rule_name(r.code)) for r in rules],
        "threshold_rule": chosen,
        "threshold_form": form,
        "threshold_defaults": (
            ", ".join(f"{PARAM_LABELS.get(k, k)} {float(v):g}" for k, v in rule.params.items())
            if rule is not None
            else ""
        ),
        "thresholds_set": set_rows,
        "can_set_thresholds": actor.can(A.CLINICAL_WRITE),
    }


@staff_page
@require_http_methods(["GET", "POST"])
def thresholds(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = _writable(actor, patient_id, request)
    chosen = request.POST.get("rule") or request.GET.get("rule") or ""
    form = None
    saved_note = error = ""
    if request.method == "POST":
        rules = {r.code: r for r in _rules_with_params(patient.organisation_id)}
        rule = rules.get(chosen)
        if rule is None:
            error = _("Choose a rule.")
        else:
            form = f.ThresholdForm(
                request.POST, params={k: float(v) for k, v in rule.params.items()}
            )
            if form.is_valid():
                try:
                    alert_services.set_personal_threshold(
                        actor,
                        patient.pk,
                        rule.code,
                        form.params(),
                        form.cleaned_data.get("reason") or "",
                    )
                except ValidationFailed as exc:
                    _apply(form, exc, {k: f"p_{k}" for k in rule.params})
                else:
                    saved_note = (
                        _("Personal thresholds saved.")
                        if form.params()
                        else _("Personal thresholds removed; the defaults apply.")
                    )
                    if not is_htmx(request):
                        messages.success(request, saved_note)
                        return redirect(_tab_url(patient.pk, "vitals"))
                    form = None
    context = {
        "patient": patient,
        "saved_note": saved_note,
        "threshold_error": error,
        **_thresholds_context(actor, patient, chosen, form),
    }
    if is_htmx(request):
        if saved_note:
            context.update(
                refresh=True, **_charts_context(actor, patient, request.POST.get("range"))
            )
        elif request.method == "POST":
            audit.record(actor, "threshold.read", patient_id=patient.pk, detail={"rule": chosen})
        return render(request, "observations/_thresholds.html", context)
    return _form_page(
        request, patient, "observations/_thresholds.html", _("Personal thresholds"), context
    )


# --- the alerts tab ---------------------------------------------------------------------------


def _who(user: Any) -> str:
    return str(user) if user is not None else ""


def _alert_row(alert: alert_models.Alert, tz: ZoneInfo, language: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "text": alert.text(language),
        "raised": _local(alert.raised_at, tz),
        "due": _local(alert.due_at, tz),
        "priority": alert.get_priority_display(),
        "priority_tone": PRIORITY_TONES.get(alert.priority, "muted"),
        "status": alert.get_status_display(),
        "status_tone": STATUS_TONES.get(alert.status, "muted"),
        "route": alert.get_performer_role_display(),
        "owner": _who(alert.owner),
        "acknowledged": _local(alert.acknowledged_at, tz) if alert.acknowledged_at else "",
        "acknowledged_by": _who(alert.acknowledged_by),
        "closed": _local(alert.closed_at, tz) if alert.closed_at else "",
        "closed_by": _who(alert.closed_by),
        "outcome": str(OUTCOME_LABELS.get(alert.outcome, alert.outcome)),
        "url": f"/alerts/{alert.pk}/",
    }


def alerts_tab_context(actor: Actor, patient: pm.Patient, page: Any = 1) -> dict[str, Any]:
    """The patient's alert history, newest first, every status (the patient is in scope)."""
    qs = (
        alert_services.visible_alerts(actor)
        .filter(patient_id=patient.pk)
        .select_related("owner", "acknowledged_by", "closed_by")
        .order_by("-raised_at", "priority_rank", "-id")
    )
    found = paginate(qs, page, ALERT_PAGE_SIZE)
    tz = ZoneInfo(patient.time_zone)
    language = _language()
    audit.record(
        actor,
        "alert.read",
        patient_id=patient.pk,
        detail={"view": "patient_history", "page": found.number, "count": len(found.items)},
    )
    return {
        "alerts": [_alert_row(a, tz, language) for a in found.items],
        "alerts_page": found,
    }


@staff_page
@require_GET
def alert_history(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = patient_selectors.get_patient(
        actor, patient_id, action=A.CLINICAL_VIEW, audit_read=False
    )
    context = {"patient": patient, **alerts_tab_context(actor, patient, request.GET.get("page"))}
    if is_htmx(request):
        return render(request, "observations/_alerts_tab.html", context)
    return redirect(_tab_url(patient.pk, "alerts"))

"""Staff pages of care plans: the patient's plans tab, the enrolment wizard, the plan calendar."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import domain, selectors, services
from careloop.careplans import models as cm
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, StaleVersion, ValidationFailed
from careloop.kit.pagination import paginate, to_int
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.reminders import models as rm
from careloop.reminders.labels import ACK_SOURCES, ATTEMPT_TONES, CHANNELS, REASONS, TONES
from careloop.web.decorators import is_htmx, staff_page

A = Action
TAB = "careplans"
PREVIEW_DAYS = 14

WHEN_LABELS = [
    ("upcoming", pgettext_lazy("reminders", "Today and later")),
    ("past", pgettext_lazy("reminders", "Earlier")),
    ("all", pgettext_lazy("reminders", "All")),
]
CHANNEL_CHOICES = 3  # ordered choices per kind of reminder on the preferences form
_SPLIT = re.compile(r"[\s,，、;；]+")


def _english() -> bool:
    return (translation.get_language() or "").startswith("en")


def _title(payload: Mapping[str, Any]) -> str:
    title = payload.get("title_en") if _english() else None
    return str(title or payload.get("title") or "")


def _read(actor: Actor, patient_id: int, view: str, **extra: Any) -> None:
    audit.record(actor, "careplan.read", patient_id=patient_id, detail={"view": view, **extra})


# --- the "Care plans" tab of the patient page ---------------------------------------------------


def patient_tab_context(actor: Actor, patient: pm.Patient) -> dict[str, Any]:
    """What the patient page's care plans tab shows (the patient is already in scope)."""
    _read(actor, patient.pk, "tab")
    pref = selectors.preference(patient)
    return {
        "enrolments": [_enrolment_row(e) for e in selectors.enrolments_of(patient)],
        "consented": selectors.consented_channels(patient),
        "can_enrol": actor.can(A.CAREPLAN_ENROL),
        "can_prefer": actor.can(A.PATIENT_UPDATE),
        "pref": _preference_form(pref),
        "pref_summary": _preference_summary(pref),
    }


def _enrolment_row(e: cm.Enrolment) -> dict[str, Any]:
    return {
        "e": e,
        "name": e.template.label("en" if _english() else "zh-hans"),
        "active": e.status == cm.Enrolment.Status.ACTIVE,
    }


# --- reminder preferences -----------------------------------------------------------------------


def _preference_form(pref: cm.ReminderPreference, data: QueryDict | None = None) -> dict[str, Any]:
    """Rows of the preferences form, from the saved preference or from submitted input."""
    frequencies = dict(pm.Frequency.choices)
    kinds = dict(cm.ActivityKind.choices)
    dose_rows = []
    for freq, default in domain.DOSE_TIMES.items():
        saved = ", ".join((pref.dose_times or {}).get(freq, []))
        dose_rows.append(
            {
                "name": f"dose-{freq}",
                "label": frequencies.get(freq, freq),
                "value": data.get(f"dose-{freq}", "") if data is not None else saved,
                "placeholder": ", ".join(default),
            }
        )
    channel_rows = []
    for kind, label in kinds.items():
        saved_list = list((pref.channels or {}).get(kind, []))
        picks = []
        for i in range(CHANNEL_CHOICES):
            name = f"channel-{kind}-{i}"
            value = (
                data.get(name, "")
                if data is not None
                else (saved_list[i] if i < len(saved_list) else "")
            )
            picks.append({"name": name, "value": value, "n": i + 1})
        channel_rows.append({"kind": kind, "label": label, "picks": picks})

    def field(name: str, saved: Any) -> Any:
        return data.get(name, "") if data is not None else saved

    return {
        "dose_rows": dose_rows,
        "channel_rows": channel_rows,
        "channels": list(CHANNELS.items()),
        "daily_cap": field("daily_cap", pref.daily_cap or ""),
        "elderly": (data.get("elderly") == "on") if data is not None else pref.elderly,
        "high_risk": (data.get("high_risk") == "on") if data is not None else pref.high_risk,
        "email": field("email", pref.email),
        "wechat_openid": field("wechat_openid", pref.wechat_openid),
        "version": pref.version if pref.pk else "",
    }


def _preference_summary(pref: cm.ReminderPreference) -> list[tuple[Any, str]]:
    rows: list[tuple[Any, str]] = []
    if pref.dose_times:
        rows.append(
            (
                _("Dose times"),
                "; ".join(f"{f} {', '.join(t)}" for f, t in sorted(pref.dose_times.items())),
            )
        )
    if pref.channels:
        kinds = dict(cm.ActivityKind.choices)
        rows.append(
            (
                _("Channels"),
                "; ".join(
                    f"{kinds.get(k, k)}: {' → '.join(str(CHANNELS.get(c, c)) for c in v)}"
                    for k, v in pref.channels.items()
                ),
            )
        )
    if pref.daily_cap:
        rows.append((_("Daily cap"), str(pref.daily_cap)))
    flags = [
        str(lbl)
        for on, lbl in ((pref.elderly, _("elderly mode")), (pref.high_risk, _("high risk")))
        if on
    ]
    if flags:
        rows.append((_("Flags"), ", ".join(flags)))
    return rows


def _preference_input(post: QueryDict) -> dict[str, Any]:
    dose_times: dict[str, list[str]] = {}
    for freq in domain.DOSE_TIMES:
        raw = post.get(f"dose-{freq}", "").strip()
        if raw:
            dose_times[freq] = [t for t in _SPLIT.split(raw) if t]
    channels: dict[str, list[str]] = {}
    for kind in cm.ActivityKind.values:
        chosen: list[str] = []
        for i in range(CHANNEL_CHOICES):
            value = post.get(f"channel-{kind}-{i}", "")
            if value and value not in chosen:
                chosen.append(value)
        if chosen:
            channels[kind] = chosen
    return {
        "dose_times": dose_times,
        "channels": channels,
        "daily_cap": post.get("daily_cap", "").strip(),
        "elderly": post.get("elderly") == "on",
        "high_risk": post.get("high_risk") == "on",
        "email": post.get("email", ""),
        "wechat_openid": post.get("wechat_openid", ""),
    }


def _check_times(values: list[str]) -> bool:
    try:
        for v in values:
            domain.parse_time(v)
    except domain.ScheduleError:
        return False
    return True


@staff_page
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = selectors.patient(actor, patient_id, A.CLINICAL_VIEW, A.PATIENT_UPDATE)
    pref = selectors.preference(patient)
    errors: dict[str, list[str]] = {}
    stale = False
    form = _preference_form(pref)
    if request.method == "POST":
        data = _preference_input(request.POST)
        form = _preference_form(pref, request.POST)
        if not all(_check_times(v) for v in data["dose_times"].values()):
            errors["dose_times"] = [_("Use 24-hour times like 08:00, separated by commas.")]
        else:
            try:
                services.set_preferences(actor, patient.pk, data, request.POST.get("version"))
            except ValidationFailed as exc:
                errors = {k: [str(m) for m in v] for k, v in exc.details.items()}
            except StaleVersion:
                stale = True
                form["version"] = selectors.preference(patient).version
            else:
                messages.success(request, _("Reminder preferences saved."))
                return redirect(_tab_url(patient))
    else:
        _read(actor, patient.pk, "preferences")
    return render(
        request,
        "careplans/preferences.html",
        {"patient": patient, "pref": form, "errors": errors, "stale": stale},
        status=(409 if stale else 422) if request.method == "POST" else 200,
    )


def _tab_url(patient: pm.Patient) -> str:
    return reverse("patients:detail", args=[patient.pk]) + f"?tab={TAB}"


# --- activities: schedule text and per-enrolment adjustments -------------------------------------


def _mode(schedule: Mapping[str, Any]) -> str:
    if schedule.get("prescriptions"):
        return "prescriptions"
    if "rrule" in schedule:
        return "times"
    if "offsets_days" in schedule:
        return "time"
    return ""


def _default_times(schedule: Mapping[str, Any]) -> str:
    mode = _mode(schedule)
    if mode == "times":
        return ", ".join(schedule.get("times", []) or [])
    if mode == "time":
        return str(schedule.get("time", "09:00"))
    return ""


_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


def schedule_text(schedule: Mapping[str, Any], anchor: str = "") -> str:
    """A schedule in words, for people choosing and adjusting a plan."""
    mode = _mode(schedule)
    if mode == "prescriptions":
        return _("at the dose times of each active prescription")
    if mode == "time":
        days = ", ".join(str(d) for d in schedule.get("offsets_days", []))
        which = schedule.get("anchor") or anchor or "enrolment"
        base = {
            "discharge": _("days %(days)s after discharge"),
            "last_visit": _("days %(days)s after the last visit"),
        }.get(which, _("days %(days)s after enrolment"))
        return base % {"days": days}
    if mode != "times":
        return ""
    parts = dict(
        p.split("=", 1) for p in str(schedule.get("rrule", "")).upper().split(";") if "=" in p
    )
    freq = parts.get("FREQ", "")
    n = to_int(parts.get("INTERVAL"), 1, low=1, high=999)
    if freq == "DAILY":
        text = _("every day") if n == 1 else _("every %(n)d days") % {"n": n}
    elif freq == "WEEKLY":
        names = [
            str(WEEKDAYS[_WEEKDAYS[d]]) for d in parts.get("BYDAY", "").split(",") if d in _WEEKDAYS
        ]
        text = _("every week") if n == 1 else _("every %(n)d weeks") % {"n": n}
        if names:
            text += " (" + ", ".join(names) + ")"
    elif freq == "MONTHLY":
        text = _("every month") if n == 1 else _("every %(n)d months") % {"n": n}
        if parts.get("BYMONTHDAY"):
            text += " · " + _("on day %(day)s") % {"day": parts["BYMONTHDAY"]}
    elif freq == "YEARLY":
        text = _("every year")
    else:
        text = str(schedule.get("rrule", ""))
    after = schedule.get("start_after_days")
    if after:
        text += " · " + _("starting %(n)s days after enrolment") % {"n": after}
    return text


def _activity_rows(
    tpl: cm.PlanTemplate,
    adjustments: Mapping[str, Any],
    data: QueryDict | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per activity of a plan: whether it is on and its times (saved or submitted)."""
    kinds = dict(cm.ActivityKind.choices)
    rows = []
    for a in tpl.activities.all():
        mode = _mode(a.schedule)
        default = _default_times(a.schedule)
        adj = adjustments.get(a.code, {}) or {}
        if data is not None and data.get("configured"):
            on = bool(data.get(f"on-{a.code}"))
            value = data.get(f"times-{a.code}", default)
        else:
            on = not adj.get("off")
            value = ", ".join(adj["times"]) if adj.get("times") else adj.get("time") or default
        rows.append(
            {
                "code": a.code,
                "title": a.label("en" if _english() else "zh-hans"),
                "kind": a.kind,
                "kind_label": kinds.get(a.kind, a.kind),
                "schedule": schedule_text(a.schedule, tpl.anchor),
                "mode": mode,
                "on": on,
                "value": value,
                "default": default,
                "error": (errors or {}).get(a.code, ""),
            }
        )
    return rows


def _adjustments_from(
    data: QueryDict, tpl: cm.PlanTemplate
) -> tuple[dict[str, Any], dict[str, str]]:
    """Adjustments from the activity form (only what differs from the plan) and field errors."""
    if not data.get("configured"):
        return {}, {}
    adjustments: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for a in tpl.activities.all():
        if not data.get(f"on-{a.code}"):
            adjustments[a.code] = {"off": True}
            continue
        mode = _mode(a.schedule)
        raw = data.get(f"times-{a.code}", "").strip()
        if mode not in ("times", "time") or not raw:
            continue
        values = [t for t in _SPLIT.split(raw) if t]
        if not _check_times(values) or (mode == "time" and len(values) != 1):
            errors[a.code] = (
                _("Use one 24-hour time like 10:00.")
                if mode == "time"
                else _("Use 24-hour times like 08:00, separated by commas.")
            )
            continue
        normal = [domain.parse_time(v).strftime("%H:%M") for v in values]
        if mode == "times" and normal != list(a.schedule.get("times", [])):
            adjustments[a.code] = {"times": normal}
        elif mode == "time" and normal[0] != a.schedule.get("time", "09:00"):
            adjustments[a.code] = {"time": normal[0]}
    return adjustments, errors


# --- the enrolment wizard -----------------------------------------------------------------------


def _anchor_field(tpl: cm.PlanTemplate, patient: pm.Patient, data: QueryDict) -> dict[str, Any]:
    """The optional anchor date: the discharge (or last visit) date that day offsets count from."""
    if tpl.anchor not in ("discharge", "last_visit"):
        return {}
    known = (
        selectors.last_discharge(patient)
        if tpl.anchor == "discharge"
        else selectors.last_visit(patient)
    )
    value = (
        data.get("anchor_date") if "anchor_date" in data else (known.isoformat() if known else "")
    )
    return {
        "label": _("Discharge date") if tpl.anchor == "discharge" else _("Last visit date"),
        "value": value or "",
        "known": known,
    }


def _anchor_date(data: QueryDict) -> tuple[date | None, str]:
    raw = (data.get("anchor_date") or "").strip()
    if not raw:
        return None, ""
    try:
        return date.fromisoformat(raw), ""
    except ValueError:
        return None, _("Enter a date as YYYY-MM-DD.")


def _preview_days(items: list[services.PreviewItem]) -> list[dict[str, Any]]:
    days: list[dict[str, Any]] = []
    for item in items:
        day = item.local.date()
        if not days or days[-1]["date"] != day:
            days.append({"date": day, "items": []})
        days[-1]["items"].append(item)
    return days


def _preview_context(
    actor: Actor, patient: pm.Patient, tpl: cm.PlanTemplate | None, data: QueryDict
) -> dict[str, Any]:
    if tpl is None:
        return {"preview_state": "no_plan"}
    adjustments, errors = _adjustments_from(data, tpl)
    anchor, anchor_error = _anchor_date(data)
    if errors or anchor_error:
        return {"preview_state": "invalid"}
    try:
        items = services.preview(
            actor,
            patient.pk,
            tpl.pk,
            anchor_date=anchor if tpl.anchor in ("discharge", "last_visit") else None,
            adjustments=adjustments,
            days=PREVIEW_DAYS,
        )
    except ValidationFailed:
        return {"preview_state": "invalid"}
    return {
        "preview_state": "ok",
        "preview_days": _preview_days(items),
        "preview_count": len(items),
        "preview_span": PREVIEW_DAYS,
    }


@staff_page
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient = selectors.patient(actor, patient_id, A.CAREPLAN_ENROL)
    data = request.POST if request.method == "POST" else request.GET
    tpl = selectors.template(actor, data.get("template"))
    context: dict[str, Any] = {
        "patient": patient,
        "tpl": tpl,
        "consented": selectors.consented_channels(patient),
        "departments": selectors.departments_for(actor, patient),
        "errors": {},
        "error": "",
    }
    status = 200
    if request.method == "POST" and tpl is not None:
        adjustments, errors = _adjustments_from(data, tpl)
        anchor, anchor_error = _anchor_date(data)
        if errors or anchor_error:
            context["errors"] = {"activities": errors, "anchor_date": anchor_error}
            status = 422
        else:
            department = to_int(data.get("department"), 0, low=0, high=2**62) or None
            try:
                enrolment = services.enrol(
                    actor,
                    patient.pk,
                    tpl.pk,
                    anchor_date=anchor if tpl.anchor in ("discharge", "last_visit") else None,
                    adjustments=adjustments,
                    department_id=department,
                )
            except ValidationFailed as exc:
                context["errors"] = {
                    "anchor_date": " ".join(str(m) for m in exc.details.get("anchor_date", [])),
                    "department": " ".join(str(m) for m in exc.details.get("department", [])),
                }
                context["error"] = str(exc.message)
                status = 422
            except Conflict as exc:
                context["error"] = str(exc.message)
                status = 409
            else:
                messages.success(
                    request,
                    _("%(patient)s is enrolled in %(plan)s.")
                    % {"patient": patient.name, "plan": tpl.label(_lang())},
                )
                return redirect("careplans:enrolment", enrolment_id=enrolment.pk)
    else:
        _read(actor, patient.pk, "enrol", template=tpl.code if tpl else "")
    if tpl is None:
        active = selectors.active_template_ids(patient)
        context["choices"] = [
            {
                "tpl": t,
                "name": t.label(_lang()),
                "description": (t.description_en if _english() else "") or t.description,
                "enrolled": t.pk in active,
                "count": len(t.activities.all()),
            }
            for t in selectors.templates(actor)
        ]
        if request.method == "POST":
            context["error"] = _("Choose a plan.")
            status = 422
        return render(request, "careplans/enrol_pick.html", context, status=status)
    context.update(
        {
            "tpl_name": tpl.label(_lang()),
            "anchor": _anchor_field(tpl, patient, data),
            "activities": _activity_rows(
                tpl, {}, data, (context["errors"] or {}).get("activities")
            ),
            "chosen_department": to_int(data.get("department"), 0, low=0, high=2**62),
        }
    )
    context.update(_preview_context(actor, patient, tpl, data))
    return render(request, "careplans/enrol.html", context, status=status)


def _lang() -> str:
    return "en" if _english() else "zh-hans"


@staff_page
@require_GET
def preview(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """The calendar an enrolment would produce, refreshed while the wizard's inputs change."""
    patient = selectors.patient(actor, patient_id, A.CAREPLAN_ENROL)
    tpl = selectors.template(actor, request.GET.get("template"))
    _read(actor, patient.pk, "preview", template=tpl.code if tpl else "")
    context = {"patient": patient, "tpl": tpl}
    context.update(_preview_context(actor, patient, tpl, request.GET))
    return render(request, "careplans/_preview.html", context)


# --- enrolments and their calendar --------------------------------------------------------------


@staff_page
@require_GET
def index(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Enrolments of the patients in the actor's departments."""
    for action in (A.PATIENT_VIEW, A.CLINICAL_VIEW):
        patient_selectors.require(actor, action)
    tpl = selectors.template(actor, request.GET.get("plan"))
    status = request.GET.get("status", "active")
    if status not in cm.Enrolment.Status.values and status != "any":
        status = "active"
    qs = selectors.visible_enrolments(
        actor, template_id=tpl.pk if tpl else None, status="" if status == "any" else status
    )
    page = paginate(qs, request.GET.get("page"), 25)
    audit.record(
        actor,
        "careplan.search",
        detail={"plan": tpl.code if tpl else "", "status": status, "results": page.total},
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": [_enrolment_row(e) for e in page.items],
        "plans": [(t.pk, t.label(_lang())) for t in selectors.templates(actor)],
        "plan": tpl.pk if tpl else 0,
        "status": status,
        "statuses": [*cm.Enrolment.Status.choices, ("any", _("Any"))],
        "query": query.urlencode(),
    }
    template = "careplans/_index_results.html" if is_htmx(request) else "careplans/index.html"
    return render(request, template, context)


def _calendar(
    request: HttpRequest,
    patient: pm.Patient,
    *,
    enrolment: cm.Enrolment | None,
    activities: list[tuple[str, Any]],
) -> dict[str, Any]:
    g = request.GET
    flt = selectors.CalendarFilter(
        status=g.get("status", "") if g.get("status") in rm.Status.values else "",
        activity=g.get("activity", "") if g.get("activity") in dict(activities) else "",
        when=g.get("when", "upcoming") if g.get("when") in selectors.WHEN else "upcoming",
    )
    now = utc_now()
    qs = selectors.occurrences(
        patient, flt, now=now, enrolment_id=enrolment.pk if enrolment else None
    )
    page = paginate(qs, g.get("page"), 40)
    tz = domain.zone(patient.time_zone)
    today = domain.local_of(now, tz).date()
    days: list[dict[str, Any]] = []
    for occ in page.items:
        day = date.fromisoformat(occ.local_due[:10])
        if not days or days[-1]["date"] != day:
            days.append({"date": day, "today": day == today, "items": []})
        days[-1]["items"].append(_occurrence_row(occ))
    query = g.copy()
    query.pop("page", None)
    return {
        "page": page,
        "days": days,
        "flt": flt,
        "statuses": rm.Status.choices,
        "activities": activities,
        "whens": WHEN_LABELS,
        "query": query.urlencode(),
        "time_zone": patient.time_zone,
    }


def _when(instant: Any, tz: Any) -> str:
    return domain.local_of(instant, tz).strftime("%Y-%m-%d %H:%M:%S") if instant else ""


def _occurrence_row(occ: rm.Occurrence) -> dict[str, Any]:
    tz = domain.zone(occ.time_zone)
    payload = occ.payload or {}
    detail = " ".join(str(payload.get(k, "")) for k in ("medication", "dose")).strip()
    intake = getattr(occ, "intake", None) if occ.kind == "medication" else None
    attempts = [
        {
            "channel": CHANNELS.get(a.channel, a.channel),
            "provider": a.provider,
            "address": a.address_hint,
            "outcome": a.get_outcome_display(),
            "tone": ATTEMPT_TONES.get(rm.Attempt.Outcome(a.outcome), "neutral")
            if a.outcome in rm.Attempt.Outcome.values
            else "neutral",
            "error": a.error_code,
            "detail": a.detail,
            "step": a.step,
            "try_no": a.try_no,
            "in_doubt": a.in_doubt,
            "started": _when(a.started_at, tz),
            "finished": _when(a.finished_at, tz),
            "delivered": _when(a.delivered_at, tz),
        }
        for a in occ.attempts.all()
    ]
    status = rm.Status(occ.status) if occ.status in rm.Status.values else None
    return {
        "occ": occ,
        "time": occ.local_due[11:16],
        "title": _title(payload),
        "detail": detail,
        "status": occ.get_status_display(),
        "tone": TONES.get(status, "neutral") if status else "neutral",
        "reason": REASONS.get(occ.reason, occ.reason) if occ.reason else "",
        "acknowledged": _when(occ.acknowledged_at, tz)[:16],
        "ack_source": ACK_SOURCES.get(occ.ack_source, occ.ack_source),
        "intake": intake,
        "attempts": attempts,
    }


@staff_page
@require_GET
def enrolment_page(request: HttpRequest, actor: Actor, enrolment_id: int) -> HttpResponse:
    e = selectors.enrolment(actor, enrolment_id, A.CLINICAL_VIEW)
    audit.record(actor, "careplan.read", patient_id=e.patient_id, obj=e, detail={"view": "plan"})
    activities = [(a.code, a.label(_lang())) for a in e.template.activities.all()]
    context = _calendar(request, e.patient, enrolment=e, activities=activities)
    context.update(
        {
            "e": e,
            "patient": e.patient,
            "name": e.template.label(_lang()),
            "active": e.status == cm.Enrolment.Status.ACTIVE,
            "can_enrol": actor.can(A.CAREPLAN_ENROL),
            "plan_activities": _activity_rows(e.template, e.adjustments or {}),
            "calendar_url": reverse("careplans:enrolment", args=[e.pk]),
        }
    )
    if is_htmx(request):
        return render(request, "careplans/_calendar.html", context)
    return render(request, "careplans/enrolment.html", context)


@staff_page
@require_GET
def calendar(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    """Every reminder of a patient, of every plan and one-off reminders too."""
    patient = selectors.patient(actor, patient_id, A.CLINICAL_VIEW)
    _read(actor, patient.pk, "calendar")
    kinds = dict(cm.ActivityKind.choices)
    activities = [(k, kinds.get(k, k)) for k in selectors.kinds_of(patient)]
    context = _calendar(request, patient, enrolment=None, activities=activities)
    context.update(
        {
            "patient": patient,
            "calendar_url": reverse("careplans:calendar", args=[patient.pk]),
            "enrolments": [_enrolment_row(e) for e in selectors.enrolments_of(patient)],
        }
    )
    if is_htmx(request):
        return render(request, "careplans/_calendar.html", context)
    return render(request, "careplans/calendar.html", context)


@staff_page
@require_http_methods(["GET", "POST"])
def end(request: HttpRequest, actor: Actor, enrolment_id: int) -> HttpResponse:
    """End an enrolment, after saying why and confirming."""
    e = selectors.enrolment(actor, enrolment_id, A.CAREPLAN_ENROL)
    error = ""
    stale = False
    status = 200
    reason = request.POST.get("reason", "").strip()[:200]
    if e.status != cm.Enrolment.Status.ACTIVE:
        messages.info(request, _("This enrolment has already ended."))
        return redirect("careplans:enrolment", enrolment_id=e.pk)
    if request.method == "POST":
        try:
            services.end_enrolment(actor, e.pk, reason=reason, expected=request.POST.get("version"))
        except ValidationFailed:
            error = _("Say why the enrolment ends.")
            status = 422
        except StaleVersion:
            stale = True
            status = 409
            e.refresh_from_db()
        except Conflict as exc:
            messages.info(request, str(exc.message))
            return redirect("careplans:enrolment", enrolment_id=e.pk)
        else:
            messages.success(
                request, _("Enrolment ended. Reminders that had not been sent were cancelled.")
            )
            return redirect("careplans:enrolment", enrolment_id=e.pk)
    else:
        audit.record(actor, "careplan.read", patient_id=e.patient_id, obj=e, detail={"view": "end"})
    return render(
        request,
        "careplans/end.html",
        {
            "e": e,
            "patient": e.patient,
            "name": e.template.label(_lang()),
            "pending": selectors.pending_count(e.pk),
            "reason": reason,
            "error": error,
            "stale": stale,
            "suggestions": [
                _("Goals reached"),
                _("Patient declined further follow-up"),
                _("Transferred to another facility"),
                _("Enrolled by mistake"),
            ],
        },
        status=status,
    )


@staff_page
@require_http_methods(["GET", "POST"])
def adjust(request: HttpRequest, actor: Actor, enrolment_id: int) -> HttpResponse:
    """Turn a plan's activities off or on, or move their times, for this patient only."""
    e = selectors.enrolment(actor, enrolment_id, A.CAREPLAN_ENROL)
    if e.status != cm.Enrolment.Status.ACTIVE:
        messages.info(request, _("This enrolment has already ended."))
        return redirect("careplans:enrolment", enrolment_id=e.pk)
    errors: dict[str, str] = {}
    stale = False
    status = 200
    data = request.POST if request.method == "POST" else None
    if data is not None:
        adjustments, errors = _adjustments_from(data, e.template)
        if errors:
            status = 422
        else:
            try:
                services.adjust(actor, e.pk, adjustments, data.get("version"))
            except ValidationFailed as exc:
                errors = {
                    k.split(".")[0]: " ".join(str(m) for m in v) for k, v in exc.details.items()
                }
                status = 422
            except StaleVersion:
                stale = True
                status = 409
                e.refresh_from_db()
            else:
                messages.success(request, _("Plan adjusted. Future reminders were planned again."))
                return redirect("careplans:enrolment", enrolment_id=e.pk)
    else:
        audit.record(
            actor, "careplan.read", patient_id=e.patient_id, obj=e, detail={"view": "adjust"}
        )
    return render(
        request,
        "careplans/adjust.html",
        {
            "e": e,
            "patient": e.patient,
            "name": e.template.label(_lang()),
            "activities": _activity_rows(e.template, e.adjustments or {}, data, errors),
            "stale": stale,
            "has_errors": bool(errors),
        },
        status=status,
    )

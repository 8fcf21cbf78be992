"""Staff pages of the patient record: list and search, the 360 page, forms."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.forms import BaseForm
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import views as careplan_views
from careloop.kit.clock import age_on, utc_now
from careloop.kit.errors import DuplicatePatient, NotFound, StaleVersion, ValidationFailed
from careloop.kit.pagination import to_int
from careloop.patients import forms as f
from careloop.patients import models as m
from careloop.patients import selectors, services
from careloop.patients.records import KINDS, RecordKind
from careloop.web.decorators import is_htmx, staff_page

TABS = [
    "overview",
    "history",
    "medications",
    "visits",
    "reports",
    "consents",
    "careplans",
    "vitals",
    "alerts",
    "timeline",
]
TAB_KINDS = {
    "overview": ["conditions", "allergies", "lifestyle"],
    "history": ["history", "caregivers"],
    "medications": ["medications", "dispenses"],
    "visits": ["visits"],
    "reports": ["reports"],
    "consents": ["consents"],
}


def _criteria(request: HttpRequest) -> selectors.Criteria:
    g = request.GET
    age_min = g.get("age_min", "").strip()
    age_max = g.get("age_max", "").strip()
    return selectors.Criteria(
        q=g.get("q", "")[:100],
        condition=g.get("condition", "")[:100],
        department=to_int(g.get("department"), 0, low=0, high=2**62) or None,
        sex=g.get("sex", "") if g.get("sex") in m.Sex.values else "",
        age_min=to_int(age_min, 0, low=0, high=150) if age_min else None,
        age_max=to_int(age_max, 150, low=0, high=150) if age_max else None,
        sort=g.get("sort", selectors.DEFAULT_SORT),
        page=g.get("page", 1),
        size=g.get("size", 25),
    )


def _departments(actor: Actor) -> Any:
    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    return qs if actor.is_org_wide else qs.filter(pk__in=actor.department_ids)


@staff_page
def patient_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    criteria = _criteria(request)
    page = selectors.search_patients(actor, criteria)
    today = utc_now().date()
    ids = [p.pk for p in page.items]
    conditions: dict[int, list[str]] = {}
    for pid, code, display in m.Condition.objects.filter(
        patient_id__in=ids, deleted_at__isnull=True, status=m.Condition.Status.ACTIVE
    ).values_list("patient_id", "icd10_code", "display"):
        conditions.setdefault(pid, []).append(display or code)
    tails: dict[int, str] = {}
    for phone in m.PatientPhone.objects.filter(patient_id__in=ids, position=0):
        tails[phone.patient_id] = phone.number[-4:]
    rows = [
        {
            "p": p,
            "age": age_on(p.date_of_birth, today),
            "conditions": conditions.get(p.pk, []),
            "tail": tails.get(p.pk, ""),
        }
        for p in page.items
    ]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "rows": rows,
        "page": page,
        "criteria": criteria,
        "query": query.urlencode(),
        "departments": _departments(actor),
        "sexes": m.Sex.choices,
        "sorts": [
            ("-updated", _("Recently updated")),
            ("name", _("Name")),
            ("age", _("Youngest first")),
            ("-age", _("Oldest first")),
            ("-created", _("Newest registered")),
        ],
        "can_create": actor.can(Action.PATIENT_CREATE),
        "filtered": bool(criteria.used),
    }
    template = "patients/_results.html" if is_htmx(request) else "patients/list.html"
    return render(request, template, context)


def _patient_initial(actor: Actor) -> dict[str, Any]:
    org = actor.user.organisation
    return {
        "time_zone": org.time_zone if org else "Asia/Shanghai",
        "preferred_language": "zh-hans",
        "preferred_channels": ["sms", "wechat"],
    }


@staff_page
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.require(actor, Action.PATIENT_CREATE)
    duplicate: DuplicatePatient | None = None
    departments = _departments(actor)
    if request.method == "POST":
        data = _form_data(request.POST, f.PatientForm)
        form = f.PatientForm(data)
        try:
            patient = services.create_patient(
                actor,
                data,
                department_id=request.POST.get("department") or None,
                link_existing=request.POST.get("link_existing") == "1",
                allow_duplicate=request.POST.get("allow_duplicate") == "1",
            )
        except ValidationFailed as exc:
            _apply_errors(form, exc)
        except DuplicatePatient as exc:
            form.is_valid()
            duplicate = exc
        else:
            messages.success(request, _("Patient saved."))
            return redirect("patients:detail", patient_id=patient.pk)
    else:
        form = f.PatientForm(initial=_patient_initial(actor))
    return render(
        request,
        "patients/patient_form.html",
        {
            "form": form,
            "creating": True,
            "duplicate": duplicate,
            "departments": departments,
            "chosen_department": request.POST.get("department", ""),
        },
        status=422 if request.method == "POST" else 200,
    )


def _form_data(post: Any, form_class: type[BaseForm]) -> dict[str, Any]:
    """Form input as a plain dict: multi-valued fields as lists."""
    data: dict[str, Any] = {}
    for key in post:
        values = post.getlist(key)
        data[key] = values if key == "preferred_channels" else values[-1]
    return data


def _apply_errors(form: BaseForm, exc: ValidationFailed) -> None:
    form.is_valid()
    for field, errs in exc.details.items():
        for err in errs:
            if field in form.fields:
                if err not in form.errors.get(field, []):
                    form.add_error(field, err)
            else:
                form.add_error(None, err)


def _stale_notice(exc: StaleVersion, kind_fields: dict[str, Any]) -> dict[str, Any]:
    changed = []
    for name, change in exc.details.get("changed", {}).items():
        field = kind_fields.get(name)
        label = field.label if field is not None else name
        now = change.get("now")
        if isinstance(now, str) and now.startswith("#"):
            now = _("(changed)")
        changed.append({"label": label, "now": now})
    return {
        "message": exc.message,
        "changed": changed,
        "by": exc.details.get("changed_by"),
        "version": exc.details.get("current_version"),
    }


@staff_page
def patient_detail(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    try:
        patient = selectors.get_patient(actor, patient_id)
    except selectors.PatientMerged as exc:
        messages.info(request, _("This record was merged into another one."))
        return redirect("patients:detail", patient_id=exc.details["merged_into"])
    tab = request.GET.get("tab", "overview")
    if tab not in TABS:
        tab = "overview"
    context = _header_context(actor, patient)
    context.update({"tabs": _tab_labels(), "tab": tab})
    context.update(_tab_context(actor, patient, tab))
    return render(request, "patients/detail.html", context)


def _tab_labels() -> list[tuple[str, str]]:
    return [
        ("overview", _("Overview")),
        ("history", _("History")),
        ("medications", _("Medications")),
        ("visits", _("Visits")),
        ("reports", _("Reports")),
        ("consents", _("Consents")),
        ("careplans", _("Care plans")),
        ("vitals", _("Vitals")),
        ("alerts", _("Alerts")),
        ("timeline", _("Timeline")),
    ]


def _header_context(actor: Actor, patient: m.Patient) -> dict[str, Any]:
    head = selectors.header(patient)
    return {
        "patient": patient,
        "age": age_on(patient.date_of_birth, utc_now().date()),
        "head": head,
        "can_edit": actor.can(Action.PATIENT_UPDATE),
        "can_merge": actor.can(Action.PATIENT_MERGE),
        "can_write": actor.can(Action.CLINICAL_WRITE),
        "can_consent": actor.can(Action.CONSENT_WRITE),
        "masked_id": ("*" * 14 + patient.national_id[-4:]) if patient.national_id else "",
    }


def _tab_context(actor: Actor, patient: m.Patient, tab: str) -> dict[str, Any]:
    if tab == "timeline":
        _, events = selectors.timeline(actor, patient.pk)
        return {"events": events}
    if tab == "careplans":
        return careplan_views.patient_tab_context(actor, patient)
    if tab in ("vitals", "alerts"):
        from careloop.observations import views as observation_views

        if tab == "vitals":
            return observation_views.vitals_tab_context(actor, patient)
        return observation_views.alerts_tab_context(actor, patient)
    sections = []
    for key in TAB_KINDS[tab]:
        kind = KINDS[key]
        _, rows = selectors.list_records(actor, patient.pk, key)
        headers = [getattr(kind.model._meta.get_field(n), "verbose_name", n) for n in kind.columns]
        sections.append(
            {
                "kind": kind,
                "rows": [_row(kind, r) for r in rows],
                "headers": headers,
                "can_write": actor.can(kind.write_action),
            }
        )
    return {"sections": sections}


def _row(kind: RecordKind, obj: Any) -> dict[str, Any]:
    cells = []
    for name in kind.columns:
        field = obj._meta.get_field(name)
        if getattr(field, "choices", None):
            value = getattr(obj, f"get_{name}_display")()
        else:
            value = getattr(obj, name)
        if isinstance(value, date):
            value = value.isoformat()  # 2024-05-01: the format Chinese hospital systems use
        if value is True:
            value = _("Yes")
        elif value is False:
            value = _("No")
        cells.append(value if value not in (None, "") else "—")
    return {"obj": obj, "cells": cells}


@staff_page
def patient_tab(request: HttpRequest, actor: Actor, patient_id: int, tab: str) -> HttpResponse:
    if tab not in TABS:
        raise NotFound()
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    context = _header_context(actor, patient)
    context.update({"tab": tab})
    context.update(_tab_context(actor, patient, tab))
    return render(request, "patients/_tab.html", context)


@staff_page
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    selectors.require(actor, Action.PATIENT_UPDATE, patient_id=patient_id)
    patient = selectors.get_patient(actor, patient_id, audit_read=request.method == "GET")
    stale = None
    version = patient.version
    if request.method == "POST":
        data = _form_data(request.POST, f.PatientForm)
        form = f.PatientForm(data, instance=patient)
        try:
            services.update_patient(actor, patient.pk, data, request.POST.get("version"))
        except ValidationFailed as exc:
            _apply_errors(form, exc)
        except StaleVersion as exc:
            form.is_valid()
            stale = _stale_notice(exc, form.fields)
            version = exc.details["current_version"]
        else:
            messages.success(request, _("Changes saved."))
            return redirect("patients:detail", patient_id=patient.pk)
    else:
        form = f.PatientForm(
            instance=patient, initial={"phones": [p.number for p in patient.phones.all()]}
        )
    return render(
        request,
        "patients/patient_form.html",
        {
            "form": form,
            "patient": patient,
            "version": version,
            "stale": stale,
        },
        status=422 if request.method == "POST" else 200,
    )


@staff_page
@require_http_methods(["GET", "POST"])
def patient_merge(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    selectors.require(actor, Action.PATIENT_MERGE, patient_id=patient_id)
    keep = selectors.get_patient(actor, patient_id, audit_read=request.method == "GET")
    error = ""
    other = None
    other_id = request.POST.get("other") or request.GET.get("other")
    if other_id:
        try:
            other = selectors.get_patient(actor, to_int(other_id, 0, low=0, high=2**62))
        except NotFound:
            error = _("No patient with that number in your departments.")
    if request.method == "POST" and other is not None and request.POST.get("confirm") == "1":
        try:
            services.merge_patients(actor, keep.pk, other.pk, request.POST.get("version"))
        except (ValidationFailed, StaleVersion) as exc:
            error = str(exc.message)
        else:
            messages.success(request, _("Records merged."))
            return redirect("patients:detail", patient_id=keep.pk)
    return render(request, "patients/merge.html", {"patient": keep, "other": other, "error": error})


def _kind_form(kind: RecordKind, actor: Actor, *args: Any, **kwargs: Any) -> BaseForm:
    if kind.model is m.Encounter:
        kwargs["organisation_id"] = actor.organisation_id
    return kind.form(*args, **kwargs)


@staff_page
@require_http_methods(["GET", "POST"])
def record_create(request: HttpRequest, actor: Actor, patient_id: int, kind: str) -> HttpResponse:
    rk = selectors.kind_of(kind)
    selectors.require(actor, rk.write_action, patient_id=patient_id)
    patient = selectors.get_patient(actor, patient_id, audit_read=request.method == "GET")
    if request.method == "POST":
        form = _kind_form(rk, actor, request.POST, request.FILES)
        try:
            services.add_record(actor, patient.pk, kind, request.POST.dict(), request.FILES)
        except ValidationFailed as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect(_back(patient, kind))
    else:
        form = _kind_form(rk, actor, initial=_record_initial(rk, actor))
    return _record_page(request, form, patient, rk, creating=True)


def _record_page(
    request: HttpRequest, form: BaseForm, patient: m.Patient, rk: RecordKind, **extra: Any
) -> HttpResponse:
    """The add/edit form of a row; a re-shown POST answers 422 (it was refused)."""
    context = {"form": form, "patient": patient, "kind": rk, "back": _back(patient, rk.key)}
    status = 422 if request.method == "POST" else 200
    return render(request, "patients/record_form.html", {**context, **extra}, status=status)


def _record_initial(rk: RecordKind, actor: Actor) -> dict[str, Any]:
    today = utc_now().date()
    initial: dict[str, dict[str, Any]] = {
        "consents": {"decided_on": today, "granted": True},
        "lifestyle": {"recorded_on": today},
        "visits": {"admitted_on": today, "attending": str(actor.user)},
        "reports": {"reported_on": today},
        "allergies": {"noted_on": today},
        "medications": {"start_date": today, "prescriber": str(actor.user)},
    }
    return initial.get(rk.key, {})


def _back(patient: m.Patient, kind: str) -> str:
    tab = next((t for t, kinds in TAB_KINDS.items() if kind in kinds), "overview")
    return reverse("patients:detail", args=[patient.pk]) + f"?tab={tab}"


@staff_page
@require_http_methods(["GET", "POST"])
def record_edit(
    request: HttpRequest, actor: Actor, patient_id: int, kind: str, record_id: int
) -> HttpResponse:
    rk = selectors.kind_of(kind)
    selectors.require(actor, rk.write_action, patient_id=patient_id)
    patient, row = selectors.get_record(actor, patient_id, kind, record_id)
    stale = None
    version = row.version
    if request.method == "POST":
        form = _kind_form(rk, actor, request.POST, request.FILES, instance=row)
        try:
            services.update_record(
                actor,
                patient.pk,
                kind,
                row.pk,
                request.POST.dict(),
                request.POST.get("version"),
                request.FILES,
            )
        except ValidationFailed as exc:
            _apply_errors(form, exc)
        except StaleVersion as exc:
            form.is_valid()
            stale = _stale_notice(exc, form.fields)
            version = exc.details["current_version"]
        else:
            messages.success(request, _("Changes saved."))
            return redirect(_back(patient, kind))
    else:
        form = _kind_form(rk, actor, instance=row)
    return _record_page(request, form, patient, rk, row=row, version=version, stale=stale)


@staff_page
@require_http_methods(["GET", "POST"])
def record_delete(
    request: HttpRequest, actor: Actor, patient_id: int, kind: str, record_id: int
) -> HttpResponse:
    rk = selectors.kind_of(kind)
    selectors.require(actor, rk.write_action, patient_id=patient_id)
    patient, row = selectors.get_record(actor, patient_id, kind, record_id)
    error = ""
    if request.method == "POST":
        try:
            services.delete_record(actor, patient.pk, kind, row.pk, request.POST.get("version"))
        except StaleVersion as exc:
            error = str(exc.message)
        else:
            messages.success(request, _("Removed. The entry is kept in the record's history."))
            return redirect(_back(patient, kind))
    return render(
        request,
        "patients/record_delete.html",
        {
            "patient": patient,
            "kind": rk,
            "row": row,
            "cells": _row(rk, row)["cells"],
            "error": error,
            "back": _back(patient, kind),
        },
    )


@staff_page
def report_file(
    request: HttpRequest, actor: Actor, patient_id: int, record_id: int
) -> HttpResponseBase:
    patient, row = selectors.get_record(actor, patient_id, "reports", record_id)
    if not row.file:
        raise NotFound()
    audit.record(actor, "reports.download", patient_id=patient.pk, obj=row)
    response = FileResponse(
        row.file.open("rb"),
        content_type=row.content_type or "application/octet-stream",
        as_attachment=True,
        filename=row.file_name or "report",
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response

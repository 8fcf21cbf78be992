"""Staff pages of appointments: the clinic day, booking, the queue, the overdue list, schedules."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.appointments import domain, selectors, services
from careloop.appointments import models as am
from careloop.appointments.forms import WEEKDAY_CHOICES
from careloop.kit.clock import age_on, utc_now
from careloop.kit.errors import Conflict, StaleVersion, ValidationFailed
from careloop.kit.pagination import to_int
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.web.decorators import is_htmx, staff_page

A = am.Appointment


def _day(value: Any, default: date) -> date:
    try:
        return date.fromisoformat(str(value))
    except (TypeError, ValueError):
        return default


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Return to the page the form was on (a local address only), or to ``default``."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def _common(actor: Actor) -> dict[str, Any]:
    return {
        "can_manage": actor.can(Action.SCHEDULE_MANAGE),
        "departments": selectors.departments(actor),
        "language": actor.user.language,
        "tz": selectors.org_zone(actor).key,
    }


def _first_error(exc: ValidationFailed) -> str:
    for errs in exc.details.values():
        for err in errs:
            return str(err)
    return str(exc.message)


# --- the clinic day ---------------------------------------------------------------------------


@staff_page
def day_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    today = selectors.today_for(actor)
    on = _day(request.GET.get("date"), today)
    dept, rows = selectors.day(actor, request.GET.get("department"), on)
    now = utc_now()
    context = {
        **_common(actor),
        "section": "day",
        "department": dept,
        "on": on,
        "today": today,
        "previous": on - timedelta(days=1),
        "next": on + timedelta(days=1),
        "rows": rows,
        "now": now,
        "booked_total": sum(len(r.appointments) for r in rows),
        "places_total": sum(r.slot.capacity for r in rows),
    }
    return render(request, "appointments/day.html", context)


# --- booking ----------------------------------------------------------------------------------


def _slot_choices(actor: Actor, department_id: int, on: date) -> list[am.Slot]:
    now = utc_now()
    return [s for s in selectors.slots(actor, department_id, on) if s.ends_at > now]


def _patient_row(patient: pm.Patient) -> dict[str, Any]:
    phone = patient.phones.first()
    return {
        "p": patient,
        "age": age_on(patient.date_of_birth, utc_now().date()),
        "tail": phone.number[-4:] if phone else "",
    }


@staff_page
@require_http_methods(["GET", "POST"])
def book_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.require(actor, Action.APPOINTMENT_BOOK)
    selectors.require(actor, Action.PATIENT_VIEW)
    source = request.POST if request.method == "POST" else request.GET
    today = selectors.today_for(actor)
    chosen_slot = None
    if source.get("slot"):
        chosen_slot = selectors.get_slot(actor, source.get("slot"))
    dept = selectors.department(
        actor, chosen_slot.department_id if chosen_slot else source.get("department")
    )
    on = chosen_slot.local_date if chosen_slot else _day(source.get("date"), today)
    if request.GET.get("date"):
        on = _day(request.GET.get("date"), on)
    patient = None
    patient_id = to_int(source.get("patient"), 0, low=0, high=2**62)
    if patient_id:
        patient = patient_selectors.get_patient(actor, patient_id)
    errors: dict[str, list[str]] = {}
    problem = ""
    status = 200
    if request.method == "POST":
        if patient is None:
            errors["patient"] = [_("Choose a patient.")]
        if chosen_slot is None:
            errors["slot"] = [_("Choose a time.")]
        if not errors and patient is not None and chosen_slot is not None:
            try:
                booking = services.book(
                    actor,
                    patient.pk,
                    chosen_slot.pk,
                    kind=request.POST.get("kind", A.Kind.REVISIT),
                    reason=request.POST.get("reason", ""),
                )
            except ValidationFailed as exc:
                errors = {k: [str(e) for e in v] for k, v in exc.details.items()}
            except Conflict as exc:
                problem = str(exc.message)
                status = exc.status
            else:
                appt = booking.appointment
                messages.success(
                    request,
                    _("Booked %(name)s for %(when)s.")
                    % {
                        "name": patient.name,
                        "when": appt.starts_at.astimezone(selectors.org_zone(actor)).strftime(
                            "%Y-%m-%d %H:%M"
                        ),
                    },
                )
                return redirect("appointments:detail", appointment_id=appt.pk)
        if errors:
            status = 422
    context = {
        **_common(actor),
        "section": "day",
        "department": dept,
        "on": on,
        "previous": on - timedelta(days=1),
        "next": on + timedelta(days=1),
        "slots": _slot_choices(actor, dept.pk, on),
        "chosen_slot": chosen_slot,
        "patient": _patient_row(patient) if patient else None,
        "kinds": A.Kind.choices,
        "kind": source.get("kind", A.Kind.REVISIT),
        "reason": source.get("reason", ""),
        "errors": errors,
        "problem": problem,
    }
    return render(request, "appointments/book.html", context, status=status)


@staff_page
def patient_search(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Patients to book, found by name, phone digits or ID number (htmx partial)."""
    selectors.require(actor, Action.APPOINTMENT_BOOK)
    criteria = patient_selectors.Criteria(q=request.GET.get("q", "")[:100], size=10)
    page = patient_selectors.search_patients(actor, criteria)
    rows = [_patient_row(p) for p in page.items]
    return render(
        request,
        "appointments/_patient_choices.html",
        {"rows": rows, "total": page.total, "searched": bool(criteria.used)},
    )


# --- one appointment --------------------------------------------------------------------------


def _actions(actor: Actor, appt: am.Appointment) -> dict[str, bool]:
    today = selectors.today_for(actor)
    booked = appt.status == A.Status.BOOKED
    return {
        "can_reschedule": booked,
        "can_cancel": booked,
        "can_check_in": booked and appt.local_date == today,
        "can_no_show": appt.status in A.ACTIVE and appt.local_date <= today,
        "can_complete": appt.status == A.Status.CHECKED_IN,
    }


@staff_page
def detail(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponse:
    appt = selectors.read_appointment(actor, appointment_id)
    context = {
        **_common(actor),
        "section": "day",
        "appt": appt,
        "patient": _patient_row(appt.patient),
        **_actions(actor, appt),
    }
    return render(request, "appointments/detail.html", context)


@staff_page
@require_http_methods(["GET", "POST"])
def reschedule_view(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponse:
    appt = selectors.read_appointment(actor, appointment_id)
    problem = ""
    status = 200
    version = appt.version
    if request.method == "POST":
        try:
            moved = services.reschedule(
                actor, appt.pk, request.POST.get("slot"), request.POST.get("version")
            )
        except StaleVersion as exc:
            problem = str(exc.message)
            status = exc.status
            version = exc.details.get("current_version", version)
        except ValidationFailed as exc:
            problem = _first_error(exc)
            status = exc.status
        except Conflict as exc:
            problem = str(exc.message)
            status = exc.status
        else:
            messages.success(request, _("The appointment was moved."))
            return redirect("appointments:detail", appointment_id=moved.pk)
    on = _day(request.GET.get("date"), appt.local_date)
    context = {
        **_common(actor),
        "section": "day",
        "appt": appt,
        "version": version,
        "on": on,
        "previous": on - timedelta(days=1),
        "next": on + timedelta(days=1),
        "slots": _slot_choices(actor, appt.department_id, on),
        "problem": problem,
    }
    return render(request, "appointments/reschedule.html", context, status=status)


@staff_page
@require_http_methods(["GET", "POST"])
def cancel_view(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponse:
    appt = selectors.read_appointment(actor, appointment_id)
    problem = ""
    status = 200
    if request.method == "POST":
        try:
            services.cancel(
                actor, appt.pk, request.POST.get("reason", ""), request.POST.get("version")
            )
        except ValidationFailed as exc:
            problem = _first_error(exc)
            status = exc.status
        except Conflict as exc:
            problem = str(exc.message)
            status = exc.status
        else:
            messages.success(request, _("The appointment was cancelled."))
            return redirect("appointments:detail", appointment_id=appt.pk)
    context = {**_common(actor), "section": "day", "appt": appt, "problem": problem}
    return render(request, "appointments/cancel.html", context, status=status)


def _queue_url(appt: am.Appointment) -> str:
    return f"{reverse('appointments:queue')}?department={appt.department_id}"


def _queue_action(request: HttpRequest, actor: Actor, appointment_id: int, action: Any) -> Any:
    appt = selectors.get_appointment(actor, appointment_id)
    try:
        done = action(actor, appt.pk)
    except Conflict as exc:
        messages.error(request, str(exc.message))
        return _back(request, _queue_url(appt))
    return done


@staff_page
@require_POST
def check_in_view(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponseBase:
    done = _queue_action(request, actor, appointment_id, services.check_in)
    if isinstance(done, HttpResponseBase):
        return done
    messages.success(
        request,
        _("%(name)s checked in: number %(number)s.")
        % {"name": done.patient.name, "number": done.queue_number},
    )
    return _back(request, _queue_url(done))


@staff_page
@require_POST
def no_show_view(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponseBase:
    done = _queue_action(request, actor, appointment_id, services.mark_no_show)
    if isinstance(done, HttpResponseBase):
        return done
    messages.success(request, _("%(name)s marked as not come.") % {"name": done.patient.name})
    return _back(request, _queue_url(done))


@staff_page
@require_POST
def complete_view(request: HttpRequest, actor: Actor, appointment_id: int) -> HttpResponseBase:
    done = _queue_action(request, actor, appointment_id, services.complete)
    if isinstance(done, HttpResponseBase):
        return done
    messages.success(request, _("%(name)s's visit is done.") % {"name": done.patient.name})
    return _back(request, _queue_url(done))


# --- the queue --------------------------------------------------------------------------------


@staff_page
def queue_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    q = selectors.queue(actor, request.GET.get("department"))
    context = {
        **_common(actor),
        "section": "queue",
        "q": q,
        "department": q.department,
        "near": services.near_positions(),
    }
    template = "appointments/_queue.html" if is_htmx(request) else "appointments/queue.html"
    return render(request, template, context)


@staff_page
@require_POST
def call_next_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    called = services.call_next(actor, request.POST.get("department"))
    dept = selectors.department(actor, request.POST.get("department"))
    if called is None:
        messages.info(request, _("Nobody is waiting."))
    else:
        messages.success(
            request,
            _("Number %(number)s, %(name)s, please come in.")
            % {"number": called.queue_number, "name": called.patient.name},
        )
    return redirect(f"{reverse('appointments:queue')}?department={dept.pk}")


# --- overdue ----------------------------------------------------------------------------------


def _source_labels() -> list[tuple[str, str]]:
    return [
        ("appointment", _("Missed appointment")),
        ("revisit", _("Revisit due")),
        ("call", _("Follow-up call due")),
    ]


@staff_page
def overdue_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    g = request.GET
    criteria = selectors.OverdueCriteria(
        department=to_int(g.get("department"), 0, low=0, high=2**62) or None,
        source=g.get("source", "") if g.get("source") in selectors.SOURCES else "",
        min_days=to_int(g.get("min_days"), 0, low=0, high=365),
        q=g.get("q", "")[:100],
        page=g.get("page", 1),
        size=g.get("size", 25),
    )
    page = selectors.overdue(actor, criteria)
    labels = dict(_source_labels())
    rows = [{"r": r, "label": labels.get(r.source, r.source)} for r in page.items]
    query = g.copy()
    query.pop("page", None)
    context = {
        **_common(actor),
        "section": "overdue",
        "rows": rows,
        "page": page,
        "criteria": criteria,
        "sources": _source_labels(),
        "query": query.urlencode(),
        "outcomes": [
            (am.CallResult.Outcome.AGREED_TO_VISIT, _("Agreed to visit (remind in 30 days)")),
            (am.CallResult.Outcome.REMIND_LATER, _("Call again later (in 7 days)")),
        ],
        "remove_reasons": am.CallResult.RemoveReason.choices,
        "filtered": bool(criteria.department or criteria.source or criteria.min_days or criteria.q),
    }
    template = (
        "appointments/_overdue_results.html" if is_htmx(request) else "appointments/overdue.html"
    )
    return render(request, template, context)


@staff_page
@require_POST
def call_result_view(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    choice = request.POST.get("outcome", "")
    outcome, _sep, reason = choice.partition(":")
    try:
        services.record_call_result(
            actor, patient_id, outcome, remove_reason=reason, note=request.POST.get("note", "")
        )
    except ValidationFailed as exc:
        messages.error(request, _first_error(exc))
    else:
        messages.success(request, _("Call result saved."))
    return _back(request, reverse("appointments:overdue"))


# --- a patient's appointments -----------------------------------------------------------------


@staff_page
def patient_view(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    patient, rows = selectors.patient_appointments(actor, patient_id)
    context = {
        **_common(actor),
        "section": "day",
        "patient": _patient_row(patient),
        "rows": rows,
    }
    return render(request, "appointments/patient.html", context)


# --- schedules --------------------------------------------------------------------------------


def _weekday_names(days: list[int]) -> str:
    names = dict(WEEKDAY_CHOICES)
    return "、".join(str(names[str(d)]) for d in days if str(d) in names)


@staff_page
def schedules_view(request: HttpRequest, actor: Actor) -> HttpResponse:
    schedules = selectors.list_schedules(actor)
    rows = [
        {
            "s": s,
            "weekdays": _weekday_names(s.weekdays),
            "sessions": domain.sessions_text(s.sessions),
        }
        for s in schedules
    ]
    context = {**_common(actor), "section": "schedules", "rows": rows}
    return render(request, "appointments/schedules.html", context)


def _schedule_initial(s: am.ClinicSchedule) -> dict[str, Any]:
    return {
        "name": s.name,
        "department": s.department_id,
        "doctor": s.doctor_id,
        "weekdays": [str(d) for d in s.weekdays],
        "sessions": domain.sessions_text(s.sessions),
        "slot_minutes": s.slot_minutes,
        "capacity": s.capacity,
        "valid_from": s.valid_from,
        "valid_to": s.valid_to,
        "active": s.active,
    }


def _schedule_page(
    request: HttpRequest, actor: Actor, schedule: am.ClinicSchedule | None
) -> HttpResponse:
    selectors.require(actor, Action.SCHEDULE_MANAGE)
    stale = ""
    version = schedule.version if schedule else None
    status = 200
    if request.method == "POST":
        form = services.schedule_form(actor, request.POST)
        try:
            services.save_schedule(
                actor,
                request.POST,
                schedule_id=schedule.pk if schedule else None,
                expected_version=request.POST.get("version"),
            )
        except StaleVersion as exc:
            form.is_valid()
            stale = str(exc.message)
            version = exc.details.get("current_version", version)
            status = exc.status
        except ValidationFailed as exc:
            form.is_valid()
            for name, errs in exc.details.items():
                for err in errs:
                    if name in form.fields and err not in form.errors.get(name, []):
                        form.add_error(name, err)
                    elif name not in form.fields:
                        form.add_error(None, err)
            status = 422
        else:
            messages.success(request, _("Schedule saved; its slots are open."))
            return redirect("appointments:schedules")
    elif schedule is not None:
        form = services.schedule_form(actor, initial=_schedule_initial(schedule))
    else:
        form = services.schedule_form(
            actor,
            initial={
                "valid_from": selectors.today_for(actor),
                "weekdays": ["1", "2", "3", "4", "5"],
                "sessions": "08:00-11:30, 13:30-16:30",
                "active": True,
            },
        )
    context = {
        **_common(actor),
        "section": "schedules",
        "form": form,
        "schedule": schedule,
        "version": version,
        "stale": stale,
    }
    return render(request, "appointments/schedule_form.html", context, status=status)


@staff_page
@require_http_methods(["GET", "POST"])
def schedule_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    return _schedule_page(request, actor, None)


@staff_page
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, actor: Actor, schedule_id: int) -> HttpResponse:
    return _schedule_page(request, actor, selectors.get_schedule(actor, schedule_id))


@staff_page
@require_POST
def slot_status_view(request: HttpRequest, actor: Actor, slot_id: int) -> HttpResponse:
    try:
        slot = services.set_slot_status(actor, slot_id, request.POST.get("status", ""))
    except ValidationFailed as exc:
        messages.error(request, _first_error(exc))
        return _back(request, reverse("appointments:day"))
    if slot.status == am.Slot.Status.CLOSED:
        messages.success(request, _("The time is closed to new bookings."))
    else:
        messages.success(request, _("The time is open for booking."))
    return _back(
        request,
        f"{reverse('appointments:day')}?department={slot.department_id}&date={slot.local_date}",
    )

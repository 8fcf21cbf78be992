"""Portal pages of the patient's day: Today (doses, readings, questionnaires, appointments,
messages), appointments (book, reschedule, cancel), History, My plan and My care team.

Each view gets the PortalActor from ``patient_page``; reads and writes go through
``portal.today`` (scoped to the patient) and the owning apps' services.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.appointments import services as appointment_services
from careloop.kit.errors import Conflict, StaleVersion, ValidationFailed
from careloop.messaging import selectors as messaging_selectors
from careloop.portal import today
from careloop.portal.context import PortalActor
from careloop.portal.decorators import patient_page
from careloop.questionnaires import selectors as questionnaire_selectors
from careloop.web.decorators import is_htmx

# In elder mode the page starts with fewer things: the doses and one reading card; the rest
# waits behind "More".


def _reading_cards(
    actor: PortalActor, patient: Any, bound: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    targets = today.targets_for(patient)
    cards = []
    for measure in today.ENTRY_KINDS:
        card = (bound or {}).get(measure) or {"form": today.reading_form(measure, patient)}
        card.setdefault("measure", measure)
        card.setdefault("targets", targets)
        cards.append(card)
    return cards


def _today_context(
    request: HttpRequest, actor: PortalActor, bound: dict[str, Any] | None = None
) -> dict[str, Any]:
    patient = today.patient_of(actor)
    tz = today.zone_of(patient.time_zone)
    doses = today.doses_today(actor, tz)
    return {
        "active": "today",
        "patient": patient,
        "doses": doses,
        "open_doses": sum(1 for d in doses if d.open),
        "reasons": today.skip_reasons(),
        "measurements": today.measurements_due(actor, tz),
        "reading_cards": _reading_cards(actor, patient, bound),
        "questionnaires": questionnaire_selectors.due_for_patient(actor.patient_id),
        "appointments": today.upcoming_appointments(actor),
        "unread": messaging_selectors.unread_count(actor.patient_id),
        "elder": bool(getattr(request, "elder", False)),
    }


@patient_page
@require_GET
def today_page(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    context = _today_context(request, actor)
    actor.audit(
        "portal.today.view",
        detail={"doses": len(context["doses"]), "appointments": len(context["appointments"])},
    )
    return render(request, "portal/today.html", context)


@patient_page
@require_POST
def dose(request: HttpRequest, actor: PortalActor, occurrence_id: int) -> HttpResponse:
    """Taken or skipped (with a reason); htmx gets the dose's card back."""
    answer = request.POST.get("answer", "")
    reason = request.POST.get("reason", "")
    error = ""
    try:
        item = today.answer_dose(actor, occurrence_id, answer, reason)
    except ValidationFailed as exc:
        error = _first(exc)
        item = today.dose_of(actor, occurrence_id)
    except Conflict:
        error = _("This reminder was withdrawn by your care team.")
        item = today.dose_of(actor, occurrence_id)
    if is_htmx(request):
        context = {"dose": item, "reasons": today.skip_reasons(), "error": error}
        return render(request, "portal/today_dose.html", context)
    if error:
        messages.error(request, error)
    elif item.state == "skipped":
        messages.success(request, _("Noted: you skipped this dose."))
    else:
        messages.success(request, _("Well done: your dose is marked as taken."))
    return redirect("portal:today")


@patient_page
@require_POST
def reading(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    """A blood pressure or glucose entered on a Today card: stored through ingest (the rules
    run on it), with feedback against the patient's target; a refusal keeps the input."""
    measure = request.POST.get("measure", "")
    patient = today.patient_of(actor)
    form = today.reading_form(measure, patient, request.POST)
    result = today.enter_reading(actor, patient, form)
    card: dict[str, Any] = {"measure": measure, "targets": today.targets_for(patient)}
    if result.stored is not None:
        card.update(form=today.reading_form(measure, patient), result=result)
    else:
        card.update(form=form)
    if is_htmx(request):
        # htmx swaps only successful answers: a refusal is a 200 carrying the field errors.
        return render(request, "portal/today_reading.html", {"card": card})
    if result.stored is not None:
        if result.feedback is not None:
            messages.success(request, result.feedback.text)
        return redirect("portal:today")
    context = _today_context(request, actor, bound={measure: card})
    return render(request, "portal/today.html", context, status=422)


# --- appointments -----------------------------------------------------------------------------


def _key() -> str:
    return secrets.token_urlsafe(18)


@patient_page
@require_GET
def appointments(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    upcoming = today.upcoming_appointments(actor, limit=20)
    past = today.past_appointments(actor)
    actor.audit("portal.appointment.list", detail={"upcoming": len(upcoming)})
    return render(
        request,
        "portal/appointments.html",
        {"active": "today", "upcoming": upcoming, "past": past},
    )


def _slots_page(
    request: HttpRequest,
    actor: PortalActor,
    *,
    appointment: Any = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    days = today.open_slots(actor, exclude_slot=appointment.slot_id if appointment else None)
    if appointment is not None:
        today.dress([appointment], today.clinic_zone(actor))
    actor.audit(
        "portal.slot.list",
        detail={"days": len(days), "for": appointment.pk if appointment else None},
    )
    context = {
        "active": "today",
        "days": days,
        "appointment": appointment,
        "idempotency_key": _key(),
        "error": error,
    }
    return render(request, "portal/appointments_slots.html", context, status=status)


_FILLED = (appointment_services.SlotFull, appointment_services.SlotUnavailable)


def _filled_message() -> str:
    return _("Sorry, that time has just filled up. Please choose another time.")


@patient_page
@require_http_methods(["GET", "POST"])
def appointment_book(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    if request.method != "POST":
        return _slots_page(request, actor)
    try:
        booking = appointment_services.book_for_patient(
            actor,
            request.POST.get("slot", ""),
            reason=request.POST.get("reason", ""),
            idempotency_key=request.POST.get("idempotency_key", ""),
        )
    except _FILLED:
        return _slots_page(request, actor, error=_filled_message(), status=409)
    except appointment_services.AlreadyBooked:
        error = _("You already have an appointment at this time.")
        return _slots_page(request, actor, error=error, status=409)
    except ValidationFailed as exc:
        return _slots_page(request, actor, error=_first(exc), status=422)
    appt = booking.appointment
    messages.success(
        request,
        _("Your revisit is booked for %(when)s.") % {"when": _when(actor, appt)},
    )
    return redirect("portal:appointments")


def _first(exc: ValidationFailed) -> str:
    for problems in (exc.details or {}).values():
        if problems:
            return str(problems[0])
    return str(exc.message)


def _when(actor: PortalActor, appt: Any) -> str:
    return f"{appt.starts_at.astimezone(today.clinic_zone(actor)):%Y-%m-%d %H:%M}"


@patient_page
@require_http_methods(["GET", "POST"])
def appointment_reschedule(
    request: HttpRequest, actor: PortalActor, appointment_id: int
) -> HttpResponse:
    appt = appointment_services.own_appointment(actor, appointment_id)
    if request.method != "POST":
        return _slots_page(request, actor, appointment=appt)
    try:
        moved = appointment_services.reschedule_for_patient(
            actor, appt.pk, request.POST.get("slot", ""), request.POST.get("version", "")
        )
    except _FILLED:
        return _slots_page(request, actor, appointment=appt, error=_filled_message(), status=409)
    except StaleVersion:
        current = appointment_services.own_appointment(actor, appt.pk)
        if str(current.slot_id) == request.POST.get("slot", ""):
            return redirect("portal:appointments")  # the same move, sent twice
        error = _("This appointment was changed meanwhile. Please look at it again.")
        return _slots_page(request, actor, appointment=current, error=error, status=409)
    except appointment_services.WrongState:
        error = _("This appointment can no longer be moved.")
        return _slots_page(request, actor, appointment=appt, error=error, status=409)
    except (ValidationFailed, appointment_services.AlreadyBooked) as exc:
        error = _first(exc) if isinstance(exc, ValidationFailed) else str(exc.message)
        return _slots_page(request, actor, appointment=appt, error=error, status=409)
    messages.success(
        request, _("Your appointment is moved to %(when)s.") % {"when": _when(actor, moved)}
    )
    return redirect("portal:appointments")


@patient_page
@require_http_methods(["GET", "POST"])
def appointment_cancel(
    request: HttpRequest, actor: PortalActor, appointment_id: int
) -> HttpResponse:
    """A confirmation page, then the cancellation."""
    appt = appointment_services.own_appointment(actor, appointment_id)
    error = ""
    if request.method == "POST":
        try:
            appointment_services.cancel_for_patient(
                actor, appt.pk, request.POST.get("reason", ""), request.POST.get("version", "")
            )
        except StaleVersion:
            error = _("This appointment was changed meanwhile. Please look at it again.")
            appt = appointment_services.own_appointment(actor, appt.pk)
        except appointment_services.WrongState:
            error = _("This appointment can no longer be cancelled.")
        except ValidationFailed as exc:
            error = _first(exc)
        else:
            messages.success(request, _("Your appointment is cancelled."))
            return redirect("portal:appointments")
    else:
        actor.audit("portal.appointment.read", object_type="appointments.appointment",
                    object_id=appt.pk)  # fmt: skip
    today.dress([appt], today.clinic_zone(actor))
    return render(
        request,
        "portal/appointments_cancel.html",
        {"active": "today", "appointment": appt, "error": error},
        status=409 if error else 200,
    )


# --- history, plan, care team -----------------------------------------------------------------


@patient_page
@require_GET
def history(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    patient = today.patient_of(actor)
    tz = today.zone_of(patient.time_zone)
    days = today.history_days(request.GET.get("days"))
    data = today.chart_data(actor, patient, days)
    context = {
        "active": "health",
        "days": days,
        "ranges": today.HISTORY_DAYS,
        "chart_data": data,
        "charts": data["charts"],
        "readings": today.latest_readings(actor, tz),
        "weeks": today.adherence_by_week(actor, tz, max(days, 28)),
    }
    actor.audit("portal.history.view", detail={"days": days})
    return render(request, "portal/history.html", context)


@patient_page
@require_GET
def plan(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    patient = today.patient_of(actor)
    context = {"active": "health", **today.plan_for(actor, patient)}
    actor.audit("portal.plan.view", detail={"plans": len(context["plans"])})
    return render(request, "portal/plan.html", context)


@patient_page
@require_GET
def team(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    teams = today.care_team_for(actor)
    actor.audit("portal.team.view", detail={"departments": len(teams)})
    return render(request, "portal/team.html", {"active": "health", "teams": teams})

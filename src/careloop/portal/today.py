"""The patient's side of the loop: today's doses, readings and appointments, history, plan and
care team (reads and writes of the portal's Today, History, My plan and My care team pages).

Every query is filtered by the signed-in patient (``actor.patient_id``) and organisation; an id
of anyone else's row answers 404. Writes go through the owning apps' services: a dose answer
through ``reminders.services.acknowledge``, a reading through ``observations.services.ingest``
(which feeds the rule engine, so an alert reaches the care team's worklist at once), a booking
through ``appointments.services``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from careloop.accounts.models import CareTeamMember, Staff
from careloop.alerts import evaluation
from careloop.appointments import models as apm
from careloop.appointments import services as appointment_services
from careloop.careplans import domain as plan_domain
from careloop.careplans import models as cm
from careloop.careplans import planning
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.kit.pagination import to_int
from careloop.observations import domain as obs_domain
from careloop.observations import forms as obs_forms
from careloop.observations import models as om
from careloop.observations import services as observation_services
from careloop.patients import models as pm
from careloop.portal import events
from careloop.portal.context import PortalActor
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

S = rm.Status
A = apm.Appointment
WITHDRAWN = (S.CANCELLED, S.SKIPPED)
ENTRY_KINDS = ("bp", "glucose")
CHARTED = ("bp", "glucose", "weight", "heart_rate")
HISTORY_DAYS = (7, 30, 90)
BOOKING_DAYS = 28
UPCOMING = 3

# Targets shown to the patient. Blood pressure: below the public-health follow-up rule's
# sys/dia (140/90 by default, 国家基本公共卫生服务规范 第三版), the crisis level from the bp-crisis
# rule; below 90/60 is low (中国高血压防治指南 2018). Glucose: fasting 4.4–7.0 mmol/L and below
# 10.0 mmol/L otherwise (中国2型糖尿病防治指南 2020), the upper fasting limit and the low and
# very high limits from the rules (ph-glucose-followup, glucose-low, glucose-very-high). A
# clinician's personal thresholds for the patient replace the rule defaults.
BP_LOW = (90.0, 60.0)
FASTING_LOW = 4.4
NON_FASTING_HIGH = 10.0
_RULE_DEFAULTS: dict[str, dict[str, float]] = {
    "ph-bp-followup": {"sys": 140.0, "dia": 90.0},
    "bp-crisis": {"sys": 180.0, "dia": 110.0},
    "glucose-low": {"low": 3.9},
    "ph-glucose-followup": {"fpg": 7.0},
    "glucose-very-high": {"high": 16.7},
}


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def patient_of(actor: PortalActor) -> pm.Patient:
    found = pm.Patient.objects.filter(
        pk=actor.patient_id, organisation_id=actor.organisation_id
    ).first()
    if found is None:
        raise NotFound()
    return found


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a local calendar day starts and ends."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def _english() -> bool:
    return (get_language() or "").startswith("en")


def _title(payload: dict[str, Any]) -> str:
    english = payload.get("title_en") if _english() else None
    return str(english or payload.get("title") or "")


def staff_name(staff: Staff | None) -> str:
    if staff is None:
        return ""
    return staff.display_name or staff.get_full_name() or staff.get_username()


# --- doses ------------------------------------------------------------------------------------


@dataclass
class Dose:
    occ: rm.Occurrence
    title: str
    medicine: str
    amount: str
    at: str  # local time, HH:MM
    state: str  # due | later | taken | late | skipped
    reason: str = ""

    @property
    def open(self) -> bool:
        return self.state in ("due", "later")


def _dose(occ: rm.Occurrence, tz: ZoneInfo, now: datetime) -> Dose:
    payload = occ.payload or {}
    intake = getattr(occ, "intake", None) if occ.status == S.ACKNOWLEDGED else None
    if intake is not None:
        state = str(intake.status)
        reason = str(intake.get_reason_display()) if intake.reason else ""
    elif occ.status == S.ACKNOWLEDGED:
        state, reason = "taken", ""
    else:
        state, reason = ("due" if occ.due_at <= now else "later"), ""
    return Dose(
        occ=occ,
        title=_title(payload),
        medicine=str(payload.get("medication") or ""),
        amount=str(payload.get("dose") or ""),
        at=f"{occ.due_at.astimezone(tz):%H:%M}",
        state=state,
        reason=reason,
    )


LATE_DOSE_WINDOW = timedelta(hours=6)


def doses_today(actor: PortalActor, tz: ZoneInfo) -> list[Dose]:
    """Today's dose reminders (the patient's day, and the last hours of yesterday so that a
    late-evening dose can still be confirmed after midnight): open ones first, answered after."""
    now = utc_now()
    start, end = day_bounds(now.astimezone(tz).date(), tz)
    start = min(start, now - LATE_DOSE_WINDOW)
    rows = (
        rm.Occurrence.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            kind="medication",
            due_at__gte=start,
            due_at__lt=end,
        )
        .exclude(status__in=WITHDRAWN)
        .select_related("intake")
        .order_by("due_at", "id")
    )
    doses = [_dose(occ, tz, now) for occ in rows[:50]]
    return sorted(doses, key=lambda d: (not d.open, d.occ.due_at, d.occ.pk))


def own_dose(actor: PortalActor, occurrence_id: Any) -> rm.Occurrence:
    """One of the patient's own dose reminders (404 otherwise, audited)."""
    pk = to_int(occurrence_id, 0, low=0, high=2**62)
    found = (
        rm.Occurrence.objects.filter(
            pk=pk,
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            kind="medication",
        )
        .select_related("intake")
        .first()
    )
    if found is None:
        actor.audit("reminder.read", outcome="denied", object_type="reminders.occurrence",
                    object_id=pk, detail={"reason": "scope"})  # fmt: skip
        raise NotFound()
    return found


def dose_of(actor: PortalActor, occurrence_id: Any) -> Dose:
    """One of the patient's own doses, as the Today card shows it."""
    occ = own_dose(actor, occurrence_id)
    return _dose(occ, zone_of(patient_of(actor).time_zone), utc_now())


def answer_dose(actor: PortalActor, occurrence_id: Any, answer: str, reason: str = "") -> Dose:
    """Taken or skipped (with a reason): stored as an intake event; answering again changes
    nothing. A confirmed dose is announced to the engagement listeners."""
    occ = own_dose(actor, occurrence_id)
    if answer not in ("taken", "skipped"):
        raise ValidationFailed(details={"answer": [_("Choose taken or skipped.")]})
    if answer == "skipped" and reason not in rm.IntakeEvent.SkipReason.values:
        raise ValidationFailed(details={"reason": [_("Choose why you skipped this dose.")]})
    answered_before = rm.IntakeEvent.objects.filter(occurrence_id=occ.pk).exists()
    reminder_services.acknowledge(
        occ.pk,
        source="portal",
        intake=answer,
        reason=reason if answer == "skipped" else "",
        actor_name=actor.name,
    )
    occ = own_dose(actor, occ.pk)
    intake = getattr(occ, "intake", None)
    if not answered_before and intake is not None and intake.status != "skipped":
        events.emit(
            events.DOSE_TAKEN,
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            ref=f"occurrence:{occ.pk}",
        )
    patient = patient_of(actor)
    return _dose(occ, zone_of(patient.time_zone), utc_now())


# --- targets and readings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    sys: float
    dia: float
    crisis_sys: float
    crisis_dia: float
    glucose_low: float
    fasting_high: float
    glucose_very_high: float
    personal: bool

    @property
    def bp_text(self) -> str:
        return f"{self.sys:g}/{self.dia:g}"

    @property
    def fasting_text(self) -> str:
        return f"{FASTING_LOW:g}–{self.fasting_high:g}"


def targets_for(patient: pm.Patient) -> Targets:
    """The patient's targets: the rules' thresholds, replaced by personal ones where set."""
    params: dict[str, dict[str, float]] = {k: dict(v) for k, v in _RULE_DEFAULTS.items()}
    for rule in evaluation.ruleset_for(patient.organisation_id).rules():
        if rule.code in params and rule.params:
            params[rule.code].update({k: float(v) for k, v in rule.params.items()})
    personal = evaluation.personal_thresholds([patient.pk]).get(patient.pk, {})
    for code, values in personal.items():
        if code in params:
            params[code].update(values)
    return Targets(
        sys=params["ph-bp-followup"]["sys"],
        dia=params["ph-bp-followup"]["dia"],
        crisis_sys=params["bp-crisis"]["sys"],
        crisis_dia=params["bp-crisis"]["dia"],
        glucose_low=params["glucose-low"]["low"],
        fasting_high=params["ph-glucose-followup"]["fpg"],
        glucose_very_high=params["glucose-very-high"]["high"],
        personal=bool(set(personal) & set(_RULE_DEFAULTS)),
    )


@dataclass(frozen=True)
class Feedback:
    tone: str  # good | warn | bad
    text: str


def _told(alerts: int) -> str:
    return (" " + _("Your care team has been told.")) if alerts else ""


def bp_feedback(systolic: float, diastolic: float, t: Targets, alerts: int) -> Feedback:
    if systolic >= t.crisis_sys or diastolic >= t.crisis_dia:
        text = _("Your blood pressure is above your target of %(target)s.") % {"target": t.bp_text}
        if not alerts:
            text += " " + _("Rest for five minutes and measure again.")
        text += _told(alerts) or (
            " " + _("If you feel unwell (chest pain, severe headache), call for help now.")
        )
        return Feedback("bad", text)
    if systolic >= t.sys or diastolic >= t.dia:
        text = _("Your blood pressure is above your target of %(target)s.") % {"target": t.bp_text}
        return Feedback("warn" if not alerts else "bad", text + _told(alerts))
    if systolic < BP_LOW[0] or diastolic < BP_LOW[1]:
        text = _("Your blood pressure is lower than usual. If you feel dizzy, sit down.")
        return Feedback("warn", text + _told(alerts))
    text = _("Well done: your blood pressure is within your target (below %(target)s).") % {
        "target": t.bp_text
    }
    return Feedback("good" if not alerts else "warn", text + _told(alerts))


def glucose_feedback(value: float, context: str, t: Targets, alerts: int) -> Feedback:
    """``value`` in mmol/L, judged as shown (one decimal: 126 mg/dL is 7.0, not 7.0000001)."""
    value = round(value, 1)
    if value < t.glucose_low:
        text = _("Your glucose is low. Eat or drink something sweet now and measure again in "
                 "15 minutes.")  # fmt: skip
        return Feedback("bad", text + _told(alerts))
    if value >= t.glucose_very_high:
        text = _("Your glucose is very high. Drink water and measure again soon.")
        return Feedback("bad", text + _told(alerts))
    if context == "fasting":
        if value > t.fasting_high:
            text = _("Your fasting glucose is above your target of %(target)s mmol/L.") % {
                "target": t.fasting_text
            }
            return Feedback("warn", text + _told(alerts))
        if value < FASTING_LOW:
            text = _("Your fasting glucose is a little below your target of %(target)s mmol/L.")
            return Feedback("warn", text % {"target": t.fasting_text} + _told(alerts))
        text = _("Well done: your fasting glucose is within your target of %(target)s mmol/L.")
        return Feedback("good", text % {"target": t.fasting_text} + _told(alerts))
    if value >= NON_FASTING_HIGH:
        text = _("Your glucose is above the target of below %(target)s mmol/L.") % {
            "target": f"{NON_FASTING_HIGH:g}"
        }
        return Feedback("warn", text + _told(alerts))
    text = _("Well done: your glucose is below %(target)s mmol/L.") % {
        "target": f"{NON_FASTING_HIGH:g}"
    }
    return Feedback("good", text + _told(alerts))


class ReadingEntryForm(obs_forms.ReadingForm):
    """A blood pressure or glucose the patient types in. The limits of what is possible (and
    their messages) are the staff form's; the time is now unless the patient gives another."""

    def __init__(self, data: Any = None, *, measure: str, zone: str, **kwargs: Any) -> None:
        if data is not None:  # the card decides the kind, not the request
            data = data.copy()
            data[f"{measure}-kind"] = measure
        super().__init__(data, zone=zone, prefix=measure, **kwargs)
        self.measure = measure
        kind = cast(forms.ChoiceField, self.fields["kind"])
        kind.choices = [(measure, obs_forms.KIND_LABELS[measure])]
        kind.initial = measure
        kind.widget = forms.HiddenInput()
        self.fields["effective"].required = False
        self.fields["effective"].label = _("Measured at")
        self.fields["value"].label = _("Glucose")
        if measure == "glucose":
            self.fields["unit"].initial = "mmol/L"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("at") is None and not self.errors.get("effective"):
            data["at"] = utc_now().replace(microsecond=0)
        return data


def reading_form(measure: str, patient: pm.Patient, data: Any = None) -> ReadingEntryForm:
    if measure not in ENTRY_KINDS:
        raise NotFound()
    return ReadingEntryForm(data, measure=measure, zone=patient.time_zone)


# Where a refusal of observations.domain is shown, by the field it names.
_PROBLEM_FIELDS = {"systolic": "systolic", "diastolic": "diastolic", "value": "value",
                   "unit": "unit", "context": "context", "effective": "effective"}  # fmt: skip


@dataclass
class ReadingResult:
    stored: om.Observation | None
    feedback: Feedback | None = None
    alerts: int = 0


def enter_reading(actor: PortalActor, patient: pm.Patient, form: ReadingEntryForm) -> ReadingResult:
    """Store the reading the patient entered (through ingest, which runs the rules) and judge
    it against the patient's targets. A refusal is put on the form; nothing is stored then."""
    if not form.is_valid():
        return ReadingResult(None)
    item = form.item()
    report = observation_services.ingest(
        None,
        [item],
        organisation_id=actor.organisation_id,
        patient_id=actor.patient_id,
        source="patient",
        origin="portal",
    )
    if report.problems:
        problem = report.problems[0]
        target = _PROBLEM_FIELDS.get(problem.field)
        form.add_error(target, problem.reason)
        return ReadingResult(None)
    if not report.ids:
        form.add_error("effective", _("This reading is already recorded."))
        return ReadingResult(None)
    obs = om.Observation.objects.get(pk=report.ids[0], patient_id=actor.patient_id)
    actor.audit("portal.reading.create", object_type="observations.observation", object_id=obs.pk,
                detail={"kind": obs.kind, "alerts": report.alerts})  # fmt: skip
    events.emit(
        events.READING,
        patient_id=actor.patient_id,
        organisation_id=actor.organisation_id,
        ref=f"observation:{obs.pk}",
    )
    targets = targets_for(patient)
    if obs.kind == "bp":
        feedback = bp_feedback(obs.value, obs.value2 or 0.0, targets, report.alerts)
    else:
        feedback = glucose_feedback(obs.value, obs.context, targets, report.alerts)
    return ReadingResult(obs, feedback, report.alerts)


@dataclass
class MeasurementDue:
    kind: str  # bp | glucose | another reading kind
    context: str
    title: str
    at: str  # local HH:MM, or "" for "once a day"
    done: bool


def measurements_due(actor: PortalActor, tz: ZoneInfo) -> list[MeasurementDue]:
    """What the patient's plans ask them to measure today: measurement reminders due today,
    and the readings a plan expects daily (observations.Latest.expected_since)."""
    now = utc_now()
    today = now.astimezone(tz).date()
    start, end = day_bounds(today, tz)
    measured = set(
        om.Observation.objects.filter(
            patient_id=actor.patient_id, effective_at__gte=start, effective_at__lt=end
        ).values_list("kind", "context")
    )
    kinds_measured = {k for k, _c in measured}
    out: list[MeasurementDue] = []
    seen: set[str] = set()
    rows = (
        rm.Occurrence.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            kind="measurement",
            due_at__gte=start,
            due_at__lt=end,
        )
        .exclude(status__in=WITHDRAWN)
        .order_by("due_at", "id")
    )
    for occ in rows[:20]:
        payload = occ.payload or {}
        try:
            kind, context, _unit = obs_domain.resolve_kind(str(payload.get("measurement") or ""))
        except obs_domain.Problem:
            continue
        done = (kind, context) in measured if kind == "glucose" else kind in kinds_measured
        out.append(
            MeasurementDue(
                kind,
                context,
                _title(payload),
                f"{occ.due_at.astimezone(tz):%H:%M}",
                done or occ.status == S.ACKNOWLEDGED,
            )  # fmt: skip
        )
        seen.add(kind)
    expected = om.Latest.objects.filter(
        patient_id=actor.patient_id, expected_since__isnull=False
    ).values_list("kind", flat=True)
    for kind in expected:
        if kind in seen or kind not in obs_domain.KINDS:
            continue
        label = str(obs_forms.KIND_LABELS.get(kind, kind))
        title = _("Measure your %(reading)s once a day") % {"reading": label.lower()}
        out.append(MeasurementDue(kind, "", title, "", kind in kinds_measured))
    return out


# --- appointments -----------------------------------------------------------------------------


def clinic_zone(actor: PortalActor) -> ZoneInfo:
    org = pm.Patient.objects.filter(pk=actor.patient_id).values_list(
        "organisation__time_zone", flat=True
    )
    return zone_of(org.first() or "Asia/Shanghai")


def dress(rows: list[apm.Appointment], tz: ZoneInfo) -> list[apm.Appointment]:
    """What the patient reads of an appointment: clinic-local time, department, doctor."""
    language = get_language()
    for appt in rows:
        appt.local_start = f"{appt.starts_at.astimezone(tz):%Y-%m-%d %H:%M}"  # type: ignore[attr-defined]
        appt.department_label = appt.department.label(language)  # type: ignore[attr-defined]
        appt.doctor_name = staff_name(appt.doctor)  # type: ignore[attr-defined]
    return rows


def upcoming_appointments(actor: PortalActor, limit: int = UPCOMING) -> list[apm.Appointment]:
    """The patient's coming appointments (booked or checked in), soonest first."""
    tz = clinic_zone(actor)
    today = utc_now().astimezone(tz).date()
    return dress(
        list(
            A.objects.filter(
                patient_id=actor.patient_id,
                organisation_id=actor.organisation_id,
                status__in=A.ACTIVE,
                local_date__gte=today,
            )
            .select_related("department", "doctor")
            .order_by("starts_at", "id")[:limit]
        ),
        tz,
    )


def past_appointments(actor: PortalActor, limit: int = 10) -> list[apm.Appointment]:
    tz = clinic_zone(actor)
    today = utc_now().astimezone(tz).date()
    return dress(
        list(
            A.objects.filter(patient_id=actor.patient_id, organisation_id=actor.organisation_id)
            .filter(Q(local_date__lt=today) | ~Q(status__in=A.ACTIVE))
            .select_related("department", "doctor")
            .order_by("-starts_at", "-id")[:limit]
        ),
        tz,
    )


@dataclass
class SlotDay:
    day: date
    slots: list[apm.Slot] = field(default_factory=list)


def open_slots(actor: PortalActor, *, exclude_slot: int | None = None) -> list[SlotDay]:
    """Open revisit times with a free place in the patient's departments, for the coming weeks
    (none the patient is already booked in)."""
    tz = clinic_zone(actor)
    now = utc_now()
    today = now.astimezone(tz).date()
    mine = A.objects.filter(patient_id=actor.patient_id, status__in=A.ACTIVE).values("slot_id")
    rows = (
        apm.Slot.objects.filter(
            organisation_id=actor.organisation_id,
            department_id__in=appointment_services.patient_departments(actor),
            status=apm.Slot.Status.OPEN,
            booked__lt=F("capacity"),
            starts_at__gt=now,
            local_date__lt=today + timedelta(days=BOOKING_DAYS),
        )
        .exclude(pk__in=mine)
        .select_related("department", "doctor")
        .order_by("starts_at", "id")
    )
    days: dict[date, SlotDay] = {}
    language = get_language()
    for slot in rows[:300]:
        if slot.pk == exclude_slot:
            continue
        slot.local_time = f"{slot.starts_at.astimezone(tz):%H:%M}"  # type: ignore[attr-defined]
        slot.department_label = slot.department.label(language)  # type: ignore[attr-defined]
        slot.doctor_name = staff_name(slot.doctor)  # type: ignore[attr-defined]
        days.setdefault(slot.local_date, SlotDay(slot.local_date)).slots.append(slot)
    return list(days.values())


# --- history ----------------------------------------------------------------------------------


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def history_days(raw: Any) -> int:
    days = to_int(raw, 30, low=1, high=365)
    return days if days in HISTORY_DAYS else 30


def chart_data(actor: PortalActor, patient: pm.Patient, days: int) -> dict[str, Any]:
    """The patient's own readings of the charted kinds over ``days`` days, with target bands;
    JSON for the History page's charts."""
    end = utc_now()
    start = end - timedelta(days=days)
    targets = targets_for(patient)
    points: dict[str, list[list[Any]]] = {k: [] for k in CHARTED}
    rows = (
        om.Observation.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            kind__in=CHARTED,
            effective_at__gte=start,
        )
        .order_by("effective_at", "id")
        .values_list("kind", "effective_at", "value", "value2", "context")
    )
    for kind, at, value, value2, context in rows[:5000]:
        points[kind].append([_ms(at), round(value, 1), value2, context])
    charts = []
    for kind in CHARTED:
        spec = obs_domain.KINDS[kind]
        chart: dict[str, Any] = {
            "kind": kind,
            "label": str(obs_forms.KIND_LABELS[kind]),
            "unit": obs_forms.unit_label(spec.unit),
            "points": points[kind],
            "bands": [],
        }
        if kind == "bp":
            chart["series"] = [_("Systolic"), _("Diastolic")]
            chart["bands"] = [
                {"from": BP_LOW[0], "to": targets.sys, "series": 0},
                {"from": BP_LOW[1], "to": targets.dia, "series": 1},
            ]
            chart["caption"] = _("Target below %(target)s mmHg") % {"target": targets.bp_text}
        elif kind == "glucose":
            chart["series"] = [str(obs_forms.KIND_LABELS[kind])]
            chart["bands"] = [{"from": FASTING_LOW, "to": targets.fasting_high, "series": 0}]
            chart["caption"] = _("Fasting target %(target)s mmol/L") % {
                "target": targets.fasting_text
            }
        else:
            chart["series"] = [str(obs_forms.KIND_LABELS[kind])]
            chart["caption"] = ""
        charts.append(chart)
    return {
        "from": _ms(start),
        "to": _ms(end),
        "days": days,
        "zone": patient.time_zone,
        "labels": {"target": _("Target"), "empty": _("No readings in this period.")},
        "charts": charts,
    }


@dataclass
class ReadingRow:
    day: str
    time: str
    label: str
    value: str
    unit: str
    context: str
    source: str


def latest_readings(actor: PortalActor, tz: ZoneInfo, limit: int = 15) -> list[ReadingRow]:
    contexts = {value: str(label) for value, label in obs_forms.CONTEXTS}
    sources = dict(om.Source.choices)
    rows = om.Observation.objects.filter(
        patient_id=actor.patient_id, organisation_id=actor.organisation_id
    ).order_by("-effective_at", "-id")[:limit]
    return [
        ReadingRow(
            day=f"{o.effective_at.astimezone(tz):%Y-%m-%d}",
            time=f"{o.effective_at.astimezone(tz):%H:%M}",
            label=str(obs_forms.KIND_LABELS.get(o.kind, o.kind)),
            value=obs_domain.display(o.kind, o.value, o.value2),
            unit=obs_forms.unit_label(o.unit),
            context=contexts.get(o.context, ""),
            source=str(sources.get(o.source, o.source)),
        )
        for o in rows
    ]


@dataclass
class WeekAdherence:
    week: date  # Monday
    taken: int
    planned: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.taken / self.planned) if self.planned else None


def adherence_by_week(actor: PortalActor, tz: ZoneInfo, days: int) -> list[WeekAdherence]:
    """Doses taken (on time or late) against doses planned (due so far, not withdrawn), per
    local week (Monday first), newest week first."""
    now = utc_now()
    since = now - timedelta(days=days)
    planned: dict[date, int] = defaultdict(int)
    taken: dict[date, int] = defaultdict(int)

    def week_of(at: datetime) -> date:
        local = at.astimezone(tz).date()
        return local - timedelta(days=local.weekday())

    due = (
        rm.Occurrence.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            kind="medication",
            due_at__gte=since,
            due_at__lte=now,
        )
        .exclude(status__in=WITHDRAWN)
        .values_list("due_at", flat=True)
    )
    for at in due[:10000]:
        planned[week_of(at)] += 1
    intakes = rm.IntakeEvent.objects.filter(
        patient_id=actor.patient_id,
        organisation_id=actor.organisation_id,
        status__in=["taken", "late"],
        scheduled_at__gte=since,
        scheduled_at__lte=now,
    ).values_list("scheduled_at", flat=True)
    for scheduled in intakes[:10000]:
        if scheduled is not None:
            taken[week_of(scheduled)] += 1
    weeks = sorted(set(planned) | set(taken), reverse=True)
    return [WeekAdherence(w, min(taken[w], planned[w]) if planned[w] else taken[w], planned[w])
            for w in weeks]  # fmt: skip


# --- my plan and my care team -----------------------------------------------------------------


@dataclass
class PlanActivityText:
    kind: str
    title: str
    when: str


@dataclass
class PlanView:
    name: str
    description: str
    since: date
    department: str
    activities: list[PlanActivityText]


@dataclass
class MedicineText:
    name: str
    amount: str
    how_often: str
    times: list[str]


_FREQ_TEXT = {
    "DAILY": lambda: _("every day"),
    "WEEKLY": lambda: _("every week"),
    "MONTHLY": lambda: _("every month"),
    "YEARLY": lambda: _("every year"),
}


def schedule_text(schedule: dict[str, Any]) -> str:
    """A plan activity's schedule in plain words: "every day at 08:30"."""
    if schedule.get("prescriptions"):
        return _("at the times of your medicines")
    rrule = str(schedule.get("rrule") or "")
    parts = dict(p.split("=", 1) for p in rrule.split(";") if "=" in p)
    freq = parts.get("FREQ", "")
    interval = to_int(parts.get("INTERVAL"), 1, low=1, high=1000)
    if freq == "MONTHLY" and interval > 1:
        text = _("every %(n)s months") % {"n": interval}
    elif freq == "WEEKLY" and interval > 1:
        text = _("every %(n)s weeks") % {"n": interval}
    elif freq in _FREQ_TEXT:
        text = _FREQ_TEXT[freq]()
    elif schedule.get("offsets_days"):
        offsets = ", ".join(str(d) for d in schedule["offsets_days"])
        return _("on days %(days)s after the start") % {"days": offsets}
    else:
        return ""
    times = schedule.get("times") or []
    if times:
        text = _("%(often)s at %(times)s") % {"often": text, "times": ", ".join(times)}
    return text


def plan_for(actor: PortalActor, patient: pm.Patient) -> dict[str, Any]:
    """The patient's active plans in plain language, their medicines with dose times and the
    next revisit. Nothing staff-only (escalation ladders, call routing) is included."""
    language_en = _english()
    enrolments = (
        cm.Enrolment.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            status=cm.Enrolment.Status.ACTIVE,
        )
        .select_related("template", "department")
        .order_by("starts_on", "id")
    )
    shown = (cm.ActivityKind.MEDICATION, cm.ActivityKind.MEASUREMENT, cm.ActivityKind.REVISIT,
             cm.ActivityKind.QUESTIONNAIRE, cm.ActivityKind.EDUCATION)  # fmt: skip
    plans = []
    for e in enrolments:
        t = e.template
        activities = []
        for a in t.activities.filter(kind__in=shown).order_by("position", "id"):
            if (e.adjustments or {}).get(a.code, {}).get("off"):
                continue
            schedule = dict(a.schedule or {})
            adjust = (e.adjustments or {}).get(a.code, {}) or {}
            if adjust.get("times"):
                schedule["times"] = list(adjust["times"])
            activities.append(
                PlanActivityText(
                    kind=a.kind,
                    title=(a.title_en if language_en and a.title_en else a.title),
                    when=schedule_text(schedule),
                )
            )
        plans.append(
            PlanView(
                name=(t.name_en if language_en and t.name_en else t.name),
                description=(t.description_en if language_en and t.description_en
                             else t.description),
                since=e.starts_on,
                department=e.department.label(get_language()) if e.department else "",
                activities=activities,
            )
        )  # fmt: skip
    ctx = planning.context_for(patient, utc_now().astimezone(zone_of(patient.time_zone)).date())
    medicines = []
    frequencies = dict(pm.Medication._meta.get_field("frequency").choices or [])
    for rx in pm.Medication.objects.filter(
        patient_id=actor.patient_id, status=pm.Medication.Status.ACTIVE
    ).order_by("name", "id"):
        times = list(ctx.dose_times.get(rx.frequency, plan_domain.DOSE_TIMES.get(rx.frequency, ())))
        medicines.append(
            MedicineText(
                name=rx.name,
                amount=f"{rx.dose.normalize():f} {rx.unit}".strip() if rx.dose is not None else "",
                # "qd — once a day": the Latin abbreviation is for staff.
                how_often=str(frequencies.get(rx.frequency, rx.frequency)).split(" — ", 1)[-1],
                times=times,
            )
        )
    upcoming = upcoming_appointments(actor, limit=1)
    return {"plans": plans, "medicines": medicines, "next_visit": upcoming[0] if upcoming else None}


@dataclass
class TeamView:
    department: str
    team: str
    doctor: str
    nurses: list[str]


def care_team_for(actor: PortalActor) -> list[TeamView]:
    """The departments and care teams looking after the patient: names only."""
    links = (
        pm.PatientDepartment.objects.filter(
            patient_id=actor.patient_id, patient__organisation_id=actor.organisation_id
        )
        .select_related("department", "care_team", "care_team__responsible_doctor")
        .order_by("department__code")
    )
    out = []
    for link in links:
        team = link.care_team
        nurses: list[str] = []
        if team is not None:
            nurses = [
                staff_name(m.staff)
                for m in team.memberships.filter(
                    team_role=CareTeamMember.TeamRole.NURSE, staff__is_active=True
                ).select_related("staff")
            ]
        out.append(
            TeamView(
                department=link.department.label(get_language()),
                team=team.name if team else "",
                doctor=staff_name(team.responsible_doctor) if team else "",
                nurses=nurses,
            )
        )
    return out


def skip_reasons() -> list[tuple[str, str]]:
    return [(value, str(label)) for value, label in rm.IntakeEvent.SkipReason.choices]

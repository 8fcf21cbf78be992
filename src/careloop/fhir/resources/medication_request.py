"""MedicationRequest ↔ patients.Medication (a prescription: medicine, dose, route, frequency).

The medicine is ``medicationCodeableConcept`` — its text (or the first coding's display) is
the medicine name, the first coding's code its code — or a ``medicationReference`` to a
Medication contained in the resource (``#id``): the name is then the contained Medication's
code text or first display, else the reference's display, else its ingredients joined with
" + ". CareLoop holds no Medication resources, so a reference to one outside the resource is
refused. ``authoredOn`` is the start date, ``dosageInstruction.timing.repeat.boundsPeriod.end``
the end date (no dose reminders after it), ``requester.display`` the prescriber.

Status: active → active; completed → completed; stopped, cancelled, on-hold and draft →
stopped (a stopped prescription makes no dose reminders; the status reads back as sent while
staff leave it unchanged). entered-in-error and unknown are refused: an order entered in error
is not recorded (delete the prescription instead), and for one of unknown status CareLoop
could not tell whether to remind. CareLoop holds orders only (``intent`` = order).

The ``dosageInstruction`` gives dose, unit, route and frequency; a dosage in several steps
(more than one ``dosageInstruction``, e.g. a tapering dose) is refused — CareLoop would remind
of the first step only. With no ``route`` the route is oral, as on the staff form.
Frequency mapping:

- ``asNeededBoolean`` true, or an ``asNeededCodeableConcept`` (as needed for a reason) → prn
- ``timing.code`` (v3 GTSAbbreviation) QD → qd, BID → bid, TID → tid, QID → qid, QOD → qod,
  WK → qw, HS (or ``timing.repeat.when`` HS) → qn
- ``timing.repeat`` frequency per period, counted per day: 1 → qd, 2 → bid, 3 → tid,
  4 → qid (so "every 6 hours" is qid), ½ → qod, 1/7 → qw; ``count`` 1 with no period → st;
  ``timeOfDay`` alone: that many times each day (one time → qd).
  A range (``frequencyMax``, ``periodMax``) or days of the week (other than once a week) has
  no CareLoop frequency.

An order with no ``dosageInstruction`` at all, or with one that has neither a timing nor "as
needed" (exports from other systems often carry only the medicine), is stored as taken "as
directed" (frequency ud, no dose): it is listed with the patient's medicines and never reminded.
An order taken as needed may come without a dose; a scheduled one may not, because its
reminders say how much to take.

A timing that maps onto none of these is refused, and so is a dose range (CareLoop records
one dose per administration). Entries reported by the patient or another provider
(MedicationStatement) are not MedicationRequests. Writes go through patients.services like
the staff form, so an active prescription makes dose reminders exactly as it does there.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.patients import models as pm

GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
_STATUS_IN = {
    "active": "active",
    "stopped": "stopped",
    "cancelled": "stopped",
    "completed": "completed",
    "on-hold": "stopped",
    "draft": "stopped",
}
# Statuses CareLoop could only misrecord → why they are refused.
_STATUS_REFUSED = {
    "entered-in-error": gettext_lazy(
        "A prescription entered in error is not recorded; delete the prescription instead."
    ),
    "unknown": gettext_lazy(
        "A prescription of unknown status cannot be recorded: CareLoop must know whether to "
        "remind the patient of their doses."
    ),
}
_GTS_IN = {
    "QD": "qd",
    "BID": "bid",
    "TID": "tid",
    "QID": "qid",
    "QOD": "qod",
    "WK": "qw",
    "HS": "qn",
}
_GTS_OUT = {v: k for k, v in _GTS_IN.items()}
# Doses per day → frequency, and the length of each timing period unit in days.
_PER_DAY = {
    Fraction(1): "qd",
    Fraction(2): "bid",
    Fraction(3): "tid",
    Fraction(4): "qid",
    Fraction(1, 2): "qod",
    Fraction(1, 7): "qw",
}
_UNIT_DAYS = {"min": Fraction(1, 1440), "h": Fraction(1, 24), "d": Fraction(1), "wk": Fraction(7)}
# SNOMED CT route of administration → CareLoop route.
_ROUTE_IN = {
    "26643006": "po",
    "37839007": "sl",
    "34206005": "sc",
    "263887005": "sc",
    "78421000": "im",
    "47625008": "iv",
    "447694001": "inh",
    "6064005": "top",
    "255559005": "im",  # Intramuscular (qualifier value)
    "255560000": "iv",  # Intravenous (qualifier value)
    "359540000": "top",  # Topical (qualifier value)
    "54485002": "top",  # Ophthalmic route: applied to the eye
}
_ROUTE_OUT = {v: k for k, v in reversed(_ROUTE_IN.items())}
_FIELDS = {
    "name": "medicationCodeableConcept",
    "code": "medicationCodeableConcept",
    "dose": "dosageInstruction",
    "unit": "dosageInstruction",
    "route": "dosageInstruction",
    "frequency": "dosageInstruction",
    "start_date": "authoredOn",
    "end_date": "dosageInstruction.timing.repeat.boundsPeriod.end",
    "prescriber": "requester",
    "status": "status",
}


# Statuses stored as another one: found by the status they were sent with.
_STORED_AS_OTHER = sorted(k for k, v in _STATUS_IN.items() if k != v)


def _status(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    stored = _STATUS_IN.get(value)
    if stored is None:
        return Q(pk__in=[])
    if value in _STORED_AS_OTHER:
        return Q(status=stored, fhir_extra__resource__status=value)
    others = [k for k in _STORED_AS_OTHER if _STATUS_IN[k] == stored]
    if not others:
        return Q(status=stored)
    sent_other = pm.Medication.objects.filter(
        status=stored, fhir_extra__resource__status__in=others
    )
    return Q(status=stored) & ~Q(pk__in=sent_other.values("pk"))


def _intent(system: str | None, value: str) -> Q:
    return Q(pk__isnull=False) if value == "order" else Q(pk__in=[])


def _code(system: str | None, value: str) -> Q:
    if system in (None, ""):
        return Q(code=value) | Q(name__iexact=value)
    return Q(code=value)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _fraction(value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return Fraction(str(value))


def frequency_of(dosage: dict[str, Any]) -> str | None:
    """The CareLoop frequency a FHIR Dosage's timing names, or None (see the module docstring)."""
    if dosage.get("asNeededBoolean") is True or isinstance(
        dosage.get("asNeededCodeableConcept"), dict
    ):
        return "prn"
    found = dosage.get("timing")
    timing: dict[str, Any] = found if isinstance(found, dict) else {}
    for coding in c.codings(timing.get("code")):
        if str(coding.get("code")) in _GTS_IN:
            return _GTS_IN[str(coding.get("code"))]
    found = timing.get("repeat")
    repeat: dict[str, Any] = found if isinstance(found, dict) else {}
    if "HS" in (repeat.get("when") or []):
        return "qn"
    if repeat.get("count") == 1 and repeat.get("period") is None:
        return "st"
    if "frequencyMax" in repeat or "periodMax" in repeat:
        return None  # a range: "every 4 to 6 hours" is no one frequency
    times = _fraction(repeat.get("frequency", 1))
    period = _fraction(repeat.get("period"))
    days = _UNIT_DAYS.get(str(repeat.get("periodUnit")))
    clock = repeat.get("timeOfDay")
    if period is None and "frequency" not in repeat and isinstance(clock, list) and clock:
        times, period, days = Fraction(len(clock)), Fraction(1), Fraction(1)  # each day
    if times is None or period is None or days is None:
        return None
    found_frequency = _PER_DAY.get(times / (period * days))
    weekdays = repeat.get("dayOfWeek")
    if weekdays and not (found_frequency == "qw" and len(weekdays) == 1):
        return None  # only some days of the week: CareLoop would remind every day
    return found_frequency


def _contained(resource: dict[str, Any], reference: str) -> dict[str, Any] | None:
    for item in resource.get("contained") or []:
        if (
            isinstance(item, dict)
            and item.get("resourceType") == "Medication"
            and f"#{item.get('id')}" == reference
        ):
            return item
    return None


def _concept_name(concept: Any) -> tuple[str, str]:
    """(name, code) a medicine CodeableConcept gives; empty strings when it gives none."""
    if not isinstance(concept, dict):
        return "", ""
    first = next(iter(c.codings(concept)), {})
    name = concept.get("text") if isinstance(concept.get("text"), str) else None
    name = name or first.get("display") or ""
    code = str(first.get("code") or "")
    return (name.strip() if isinstance(name, str) else ""), code


def medicine_of(resource: dict[str, Any], where: str) -> tuple[str, str]:
    """(name, code) of the medicine a request names (see the module docstring)."""
    concept = resource.get("medicationCodeableConcept")
    reference = resource.get("medicationReference")
    if isinstance(concept, dict):
        name, code = _concept_name(concept)
        if not (name or code):
            raise c.required(f"{where}.medicationCodeableConcept.text")
        return name or code, code
    if not isinstance(reference, dict):
        raise c.required(f"{where}.medicationCodeableConcept")
    target = reference.get("reference")
    medication = _contained(resource, target) if isinstance(target, str) else None
    if medication is None:
        raise c.not_supported(
            f"{where}.medicationReference",
            _(
                "CareLoop holds no Medication resources: reference a Medication contained in "
                "this resource (“#id”) or send medicationCodeableConcept."
            ),
        )
    name, code = _concept_name(medication.get("code"))
    if not name and isinstance(reference.get("display"), str):
        name = reference["display"].strip()
    if not name:
        parts = [
            _concept_name(i.get("itemCodeableConcept"))[0]
            for i in medication.get("ingredient") or []
            if isinstance(i, dict)
        ]
        name = " + ".join(p for p in parts if p)
    if not (name or code):
        raise c.required(f"{where}.contained.code")
    return name or code, code


@register
class MedicationRequestMapper(c.PatientRecordMapper):
    resource_type = "MedicationRequest"
    model = pm.Medication
    record_kind = "medications"
    field_elements = _FIELDS
    moved_message = gettext_lazy("A prescription cannot be moved to another patient.")
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "status": SearchParam("token", _status),
        "intent": SearchParam("token", _intent),
        "code": SearchParam("token", _code),
        "authoredon": SearchParam("date", lambda r: r.q("start_date", dates=True)),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "authoredon": "start_date"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "status": ("status",),
        "medicationCodeableConcept": ("name", "code"),
        # A contained Medication reads back as sent while the medicine is unchanged.
        "medicationReference": ("name", "code"),
        "contained": ("name", "code"),
        "dosageInstruction": ("dose", "unit", "route", "frequency", "end_date"),
        "authoredOn": ("start_date",),
        "requester": ("prescriber",),
    }
    generated = frozenset({"subject", "intent"})

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "subject")

    def visible(self, actor: Actor) -> QuerySet[Any]:
        # Entries reported by the patient or another provider are MedicationStatements only.
        return super().visible(actor).exclude(origin=pm.Medication.Origin.REPORTED)

    def field_value(self, obj: Any, name: str) -> Any:
        value = getattr(obj, name, None)
        if name == "dose" and value is not None:
            return f"{Decimal(str(value)).normalize():f}"  # the same before and after storing
        return value

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        medicine: dict[str, Any] = {"text": obj.name}
        if obj.code:
            medicine["coding"] = [{"code": obj.code, "display": obj.name}]
        amount = f"{obj.dose.normalize():f} {obj.unit} " if obj.dose is not None else ""
        dosage: dict[str, Any] = {"text": f"{amount}{obj.frequency}"}
        if obj.frequency == "ud":
            dosage["text"] = "as directed"
        elif obj.frequency == "prn":
            dosage["asNeededBoolean"] = True
        elif obj.frequency == "st":
            dosage["timing"] = {"repeat": {"count": 1}}
        else:
            dosage["timing"] = {
                "code": {"coding": [{"system": GTS, "code": _GTS_OUT[obj.frequency]}]}
            }
        if obj.route in _ROUTE_OUT:
            dosage["route"] = {"coding": [{"system": c.SNOMED, "code": _ROUTE_OUT[obj.route]}]}
        if obj.end_date and obj.frequency not in ("prn", "st", "ud"):
            dosage["timing"]["repeat"] = {"boundsPeriod": {"end": obj.end_date.isoformat()}}
        if obj.dose is not None:
            dosage["doseAndRate"] = [{"doseQuantity": {"value": float(obj.dose), "unit": obj.unit}}]
        out: dict[str, Any] = {
            "status": obj.status,
            "intent": "order",
            "medicationCodeableConcept": medicine,
            "subject": sent.reference(obj, "subject", f"Patient/{obj.patient_id}"),
            "dosageInstruction": [dosage],
        }
        if obj.start_date:
            out["authoredOn"] = obj.start_date.isoformat()
        if obj.prescriber:
            out["requester"] = {"display": obj.prescriber}
        return out

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        if resource.get("intent") not in (None, "order"):
            raise c.not_supported(
                "MedicationRequest.intent", _("Only orders (intent “order”) are kept.")
            )
        sent_status = str(resource.get("status"))
        if sent_status in _STATUS_REFUSED:
            raise c.not_supported("MedicationRequest.status", str(_STATUS_REFUSED[sent_status]))
        status = _STATUS_IN.get(sent_status)
        if status is None:
            raise c.not_supported(
                "MedicationRequest.status",
                _("The status must be active, on-hold, draft, stopped, cancelled or completed."),
            )
        name, code = medicine_of(resource, "MedicationRequest")
        dosages = [d for d in resource.get("dosageInstruction") or [] if isinstance(d, dict)]
        if not dosages:
            # An order without dosing instructions (common in exports from other systems):
            # listed with the patient's medicines, never reminded.
            dosages = [{}]
        if len(dosages) > 1:
            raise c.not_supported(
                "MedicationRequest.dosageInstruction[1]",
                _(
                    "CareLoop records one dosage per prescription; send one MedicationRequest "
                    "per step of a dosage in several steps."
                ),
            )
        dosage = dosages[0]
        as_needed = "asNeededBoolean" in dosage or "asNeededCodeableConcept" in dosage
        frequency = frequency_of(dosage) if "timing" in dosage or as_needed else "ud"
        if frequency is None:
            raise c.not_supported(
                "MedicationRequest.dosageInstruction.timing",
                _("This timing matches none of CareLoop's dosing frequencies."),
            )
        amounts = [x for x in dosage.get("doseAndRate") or [] if isinstance(x, dict)]
        if amounts and "doseRange" in amounts[0]:
            raise c.not_supported(
                "MedicationRequest.dosageInstruction.doseAndRate.doseRange",
                _("CareLoop records one dose per administration, not a range."),
            )
        quantity = amounts[0].get("doseQuantity") if amounts else None
        quantity = quantity if isinstance(quantity, dict) else {}
        dose = _number(quantity.get("value"))
        unit = quantity.get("unit") or quantity.get("code")
        if frequency in ("ud", "prn") and dose is None:
            unit = ""  # taken as directed or as needed: no fixed amount was sent
        elif dose is None or not isinstance(unit, str) or not unit:
            raise c.required("MedicationRequest.dosageInstruction.doseAndRate.doseQuantity")
        route = "po"
        for coding in c.codings(dosage.get("route")):
            route = _ROUTE_IN.get(str(coding.get("code")), route)
        requester = resource.get("requester")
        prescriber = requester.get("display") if isinstance(requester, dict) else None
        authored = resource.get("authoredOn")
        found = dosage.get("timing")
        repeat = found.get("repeat") if isinstance(found, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        until = bounds.get("end") if isinstance(bounds, dict) else None
        return {
            "name": name[:200],
            "code": code[:40],
            "dose": dose,
            "unit": str(unit)[:20],
            "route": route,
            "frequency": frequency,
            "start_date": authored[:10]
            if isinstance(authored, str) and len(authored) >= 10
            else None,
            "end_date": until[:10] if isinstance(until, str) and len(until) >= 10 else None,
            "prescriber": prescriber[:100] if isinstance(prescriber, str) else "",
            "status": status,
        }

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        if data["end_date"] is None:
            data["end_date"] = obj.end_date

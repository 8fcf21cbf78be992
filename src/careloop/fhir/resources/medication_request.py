"""MedicationRequest ↔ patients.Medication (a prescription: medicine, dose, route, frequency).

``medicationCodeableConcept``: its text (or the first coding's display) is the medicine name,
the first coding's code its code; ``medicationReference`` is not accepted. ``authoredOn`` is the
start date, ``requester.display`` the prescriber. Status: active → active, stopped and
cancelled → stopped, completed → completed; CareLoop holds orders only (``intent`` = order).

The first ``dosageInstruction`` gives dose, unit, route and frequency. Frequency mapping:

- ``asNeededBoolean`` true → prn
- ``timing.code`` (v3 GTSAbbreviation) QD → qd, BID → bid, TID → tid, QID → qid, QOD → qod,
  WK → qw, HS (or ``timing.repeat.when`` HS) → qn
- ``timing.repeat`` frequency per period: 1/1 d → qd, 2/1 d → bid, 3/1 d → tid, 4/1 d → qid,
  1/2 d → qod, 1/1 wk → qw; ``count`` 1 with no period → st

A timing that maps onto none of these is refused. Writes go through patients.services like
the staff form, so an active prescription makes dose reminders exactly as it does there.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.patients import models as pm

GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
_STATUS_IN = {
    "active": "active",
    "stopped": "stopped",
    "cancelled": "stopped",
    "completed": "completed",
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
_REPEAT_IN = {
    (1, 1, "d"): "qd",
    (2, 1, "d"): "bid",
    (3, 1, "d"): "tid",
    (4, 1, "d"): "qid",
    (1, 2, "d"): "qod",
    (1, 1, "wk"): "qw",
}
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
    "prescriber": "requester",
    "status": "status",
}


def _status(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    wanted = {v for k, v in _STATUS_IN.items() if k == value}
    return Q(status__in=wanted) if wanted else Q(pk__in=[])


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


def frequency_of(dosage: dict[str, Any]) -> str | None:
    """The CareLoop frequency a FHIR Dosage's timing names, or None (see the module docstring)."""
    if dosage.get("asNeededBoolean") is True:
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
    key = (repeat.get("frequency", 1), repeat.get("period"), repeat.get("periodUnit"))
    if key in _REPEAT_IN:
        return _REPEAT_IN[key]  # type: ignore[index]
    if repeat.get("count") == 1 and repeat.get("period") is None:
        return "st"
    return None


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
        "dosageInstruction": ("dose", "unit", "route", "frequency"),
        "authoredOn": ("start_date",),
        "requester": ("prescriber",),
    }
    generated = frozenset({"subject", "intent"})

    def field_value(self, obj: Any, name: str) -> Any:
        value = getattr(obj, name, None)
        if name == "dose" and value is not None:
            return f"{Decimal(str(value)).normalize():f}"  # the same before and after storing
        return value

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        medicine: dict[str, Any] = {"text": obj.name}
        if obj.code:
            medicine["coding"] = [{"code": obj.code, "display": obj.name}]
        dosage: dict[str, Any] = {"text": f"{obj.dose.normalize():f} {obj.unit} {obj.frequency}"}
        if obj.frequency == "prn":
            dosage["asNeededBoolean"] = True
        elif obj.frequency == "st":
            dosage["timing"] = {"repeat": {"count": 1}}
        else:
            dosage["timing"] = {
                "code": {"coding": [{"system": GTS, "code": _GTS_OUT[obj.frequency]}]}
            }
        if obj.route in _ROUTE_OUT:
            dosage["route"] = {"coding": [{"system": c.SNOMED, "code": _ROUTE_OUT[obj.route]}]}
        dosage["doseAndRate"] = [{"doseQuantity": {"value": float(obj.dose), "unit": obj.unit}}]
        out: dict[str, Any] = {
            "status": obj.status,
            "intent": "order",
            "medicationCodeableConcept": medicine,
            "subject": {"reference": f"Patient/{obj.patient_id}"},
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
        status = _STATUS_IN.get(str(resource.get("status")))
        if status is None:
            raise c.not_supported(
                "MedicationRequest.status",
                _("The status must be active, stopped, cancelled or completed."),
            )
        concept = resource.get("medicationCodeableConcept")
        if not isinstance(concept, dict):
            raise c.required("MedicationRequest.medicationCodeableConcept")
        first = next(iter(c.codings(concept)), {})
        name = concept.get("text") if isinstance(concept.get("text"), str) else None
        name = name or first.get("display") or first.get("code")
        if not isinstance(name, str) or not name.strip():
            raise c.required("MedicationRequest.medicationCodeableConcept.text")
        dosages = [d for d in resource.get("dosageInstruction") or [] if isinstance(d, dict)]
        if not dosages:
            raise c.required("MedicationRequest.dosageInstruction")
        dosage = dosages[0]
        frequency = frequency_of(dosage)
        if frequency is None:
            raise c.not_supported(
                "MedicationRequest.dosageInstruction.timing",
                _("This timing matches none of CareLoop's dosing frequencies."),
            )
        amounts = [x for x in dosage.get("doseAndRate") or [] if isinstance(x, dict)]
        quantity = amounts[0].get("doseQuantity") if amounts else None
        quantity = quantity if isinstance(quantity, dict) else {}
        dose = _number(quantity.get("value"))
        unit = quantity.get("unit") or quantity.get("code")
        if dose is None or not isinstance(unit, str) or not unit:
            raise c.required("MedicationRequest.dosageInstruction.doseAndRate.doseQuantity")
        route = "po"
        for coding in c.codings(dosage.get("route")):
            route = _ROUTE_IN.get(str(coding.get("code")), route)
        requester = resource.get("requester")
        prescriber = requester.get("display") if isinstance(requester, dict) else None
        authored = resource.get("authoredOn")
        return {
            "name": name.strip()[:200],
            "code": str(first.get("code") or "")[:40],
            "dose": dose,
            "unit": unit[:20],
            "route": route,
            "frequency": frequency,
            "start_date": authored[:10]
            if isinstance(authored, str) and len(authored) >= 10
            else None,
            "end_date": None,
            "prescriber": prescriber[:100] if isinstance(prescriber, str) else "",
            "status": status,
        }

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        data["end_date"] = obj.end_date

"""MedicationStatement ↔ patients.Medication: the patient's medication list.

Every live row of the medication list reads as a MedicationStatement — the prescriptions written
for the patient (which are also served as MedicationRequest, with the same id) and the entries
the patient or another provider reported. The difference is the row's ``origin``: a
MedicationStatement created here is stored through the same service as a prescription
(record kind ``medications``, versioned and audited) with origin ``reported``, and reads back
with ``category`` ``patientspecified``; it is not an order written in CareLoop. Statements are
read, searched and created here; changes go through the staff pages or MedicationRequest.

The medicine and the first ``dosage`` follow the same rules as MedicationRequest (a dose with
its unit and a timing that matches one of CareLoop's dosing frequencies are required).
``effectiveDateTime`` is the start date, ``effectivePeriod`` the start and end dates, both as
dates in the time zone of the patient's organisation. Status: active, completed and stopped.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _

from careloop.fhir.registry import READ_ONLY, SERVER_ELEMENTS, Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import medication_dispense as md
from careloop.fhir.resources import medication_request as mr
from careloop.patients import models as pm

CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
# Where a statement keeps what it was sent in the row's fhir_extra (MedicationRequest keeps its
# own at the top level, so neither type reads back the other's elements).
KEY = "statement"
_STATUS = ("active", "completed", "stopped")
_REQUEST = mr.MedicationRequestMapper()  # the medicine and dosage are shown the same way
_FIELDS = {
    "name": "medicationCodeableConcept",
    "code": "medicationCodeableConcept",
    "dose": "dosage",
    "unit": "dosage",
    "route": "dosage",
    "frequency": "dosage",
    "start_date": "effectiveDateTime",
    "end_date": "effectivePeriod",
    "status": "status",
}


def _status(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    return Q(status=value) if value in _STATUS else Q(pk__in=[])


def _code(system: str | None, value: str) -> Q:
    if system in (None, ""):
        return Q(code=value) | Q(name__iexact=value)
    return Q(code=value)


def _dosage_fields(dosage: dict[str, Any]) -> dict[str, Any]:
    where = "MedicationStatement.dosage"
    frequency = mr.frequency_of(dosage)
    if frequency is None:
        raise c.not_supported(
            f"{where}.timing", _("This timing matches none of CareLoop's dosing frequencies.")
        )
    amounts = [x for x in dosage.get("doseAndRate") or [] if isinstance(x, dict)]
    quantity = amounts[0].get("doseQuantity") if amounts else None
    quantity = quantity if isinstance(quantity, dict) else {}
    dose = md.number(quantity.get("value"))
    unit = quantity.get("unit") or quantity.get("code")
    if dose is None or not isinstance(unit, str) or not unit:
        raise c.required(f"{where}.doseAndRate.doseQuantity")
    route = "po"
    for coding in c.codings(dosage.get("route")):
        route = mr._ROUTE_IN.get(str(coding.get("code")), route)
    return {"dose": dose, "unit": unit[:20], "route": route, "frequency": frequency}


@register
class MedicationStatementMapper(c.PatientRecordMapper):
    resource_type = "MedicationStatement"
    model = pm.Medication
    record_kind = "medications"
    interactions = READ_ONLY | {"create"}
    field_elements = _FIELDS
    search_params = c.record_params(
        status=SearchParam("token", _status),
        code=SearchParam("token", _code),
        effective=SearchParam("date", lambda r: r.q("start_date", dates=True)),
    )
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "effective": "start_date"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "status": ("status",),
        "medicationCodeableConcept": ("name", "code"),
        "dosage": ("dose", "unit", "route", "frequency"),
        "effectiveDateTime": ("start_date", "end_date"),
        "effectivePeriod": ("start_date", "end_date"),
        "category": ("origin",),
    }
    generated = frozenset({"subject"})

    def field_value(self, obj: Any, name: str) -> Any:
        return _REQUEST.field_value(obj, name)

    # --- what was sent is kept under its own key --------------------------------------------

    def read(self, obj: Any) -> dict[str, Any]:
        view = copy.copy(obj)
        extra = obj.fhir_extra if isinstance(obj.fhir_extra, dict) else {}
        view.fhir_extra = extra.get(KEY)
        return super().read(view)

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        kept = {k: v for k, v in resource.items() if k not in SERVER_ELEMENTS}
        for name in self.generated:
            kept.pop(name, None)
        prints = {name: self._print(obj, name) for name in self.elements}
        obj.fhir_extra = {KEY: {"resource": kept, "prints": prints}}
        pm.Medication.objects.filter(pk=obj.pk).update(fhir_extra=obj.fhir_extra)

    # --- conversion ---------------------------------------------------------------------------

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        request = _REQUEST.to_fhir(obj)
        out: dict[str, Any] = {
            "status": obj.status,
            "medicationCodeableConcept": request["medicationCodeableConcept"],
            "subject": request["subject"],
            "dosage": request["dosageInstruction"],
        }
        if obj.start_date and obj.end_date:
            out["effectivePeriod"] = {
                "start": obj.start_date.isoformat(),
                "end": obj.end_date.isoformat(),
            }
        elif obj.start_date:
            out["effectiveDateTime"] = obj.start_date.isoformat()
        if obj.origin == pm.Medication.Origin.REPORTED:
            out["category"] = {"coding": [{"system": CATEGORY, "code": "patientspecified"}]}
        return out

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        if "medicationReference" in resource:
            raise c.not_supported(
                "MedicationStatement.medicationReference",
                _("Give the medicine as medicationCodeableConcept."),
            )
        status = resource.get("status")
        if status not in _STATUS:
            raise c.not_supported(
                "MedicationStatement.status",
                _("The status must be active, completed or stopped."),
            )
        name, code, _system = md.medicine_of(
            resource.get("medicationCodeableConcept"),
            "MedicationStatement.medicationCodeableConcept",
        )
        dosages = [d for d in resource.get("dosage") or [] if isinstance(d, dict)]
        if not dosages:
            raise c.required("MedicationStatement.dosage")
        zone = md.patient_zone(patient_id)
        start = md.local_date(
            resource.get("effectiveDateTime"), zone, "MedicationStatement.effectiveDateTime"
        )
        end = None
        period = resource.get("effectivePeriod")
        if isinstance(period, dict):
            where = "MedicationStatement.effectivePeriod"
            start = md.local_date(period.get("start"), zone, f"{where}.start")
            end = md.local_date(period.get("end"), zone, f"{where}.end")
        return {
            "name": name,
            "code": code,
            **_dosage_fields(dosages[0]),
            "start_date": start,
            "end_date": end,
            "prescriber": "",
            "status": status,
            "origin": pm.Medication.Origin.REPORTED,
        }

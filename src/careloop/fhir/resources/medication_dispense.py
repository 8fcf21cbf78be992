"""MedicationDispense ↔ patients.Dispense (a fill: medicine, quantity, days supply, when).

``medicationCodeableConcept``: its text (or the chosen coding's display) is the medicine name;
the RxNorm coding when there is one, else the first coding, gives the code and its system.
``medicationReference`` is not accepted. ``authorizingPrescription`` links the dispensing to one
of the same patient's prescriptions (``MedicationRequest/<id>``). ``quantity`` is kept as a
value and unit; ``daysSupply`` must be a whole number of days (UCUM ``d``) and is what adherence
(proportion of days covered) counts. ``whenHandedOver`` is stored as the date in the time zone of
the patient's organisation; a completed dispensing needs it. Every R4 status is kept as sent.
The ``display`` and ``type`` sent beside ``subject`` read back as sent (see ``sent``).

Writes go through patients.services (record kind ``dispenses``) like the staff form: versioned,
audited, soft-deleted. A dispensing created here has source ``fhir``; an update leaves the
source and the drug class (which FHIR does not carry) as they were.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.patients import models as pm

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_DAY_UNITS = frozenset({"d", "day", "days"})
_FIELDS = {
    "name": "medicationCodeableConcept",
    "code": "medicationCodeableConcept",
    "code_system": "medicationCodeableConcept",
    "prescription": "authorizingPrescription",
    "quantity": "quantity",
    "quantity_unit": "quantity",
    "days_supply": "daysSupply",
    "when_handed_over": "whenHandedOver",
    "status": "status",
}


def _none() -> Q:
    return Q(pk__in=[])


def _status(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return _none()
    return Q(status=value) if value in pm.Dispense.Status.values else _none()


def _code(system: str | None, value: str) -> Q:
    if system is None:
        return Q(code=value) | Q(name__iexact=value)
    return Q(code=value, code_system=system)


def _prescription(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    return Q(prescription_id=c.pk_of(reference_id(raw, "MedicationRequest")))


def number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def plain_number(value: Decimal) -> int | float:
    """A decimal as JSON: a whole number without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def patient_zone(patient_id: int) -> ZoneInfo:
    """The time zone of the patient's organisation (whose local dates the record keeps)."""
    name = (
        pm.Patient.objects.filter(pk=patient_id)
        .values_list("organisation__time_zone", flat=True)
        .first()
    )
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def local_date(value: Any, zone: ZoneInfo, element: str) -> str | None:
    """A FHIR date or dateTime as the local date (YYYY-MM-DD) in ``zone``; None if absent.
    A partial date (a year or a month) cannot name a day and is refused."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 10:
        raise c.not_supported(element, _("A full date (YYYY-MM-DD) is required."))
    if len(value) == 10:
        return value
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise c.not_supported(element, _("This is not a date and time.")) from None
    if moment.tzinfo is None:
        return value[:10]
    return moment.astimezone(zone).date().isoformat()


def medicine_of(concept: Any, element: str) -> tuple[str, str, str]:
    """(name, code, code system) of a medicationCodeableConcept."""
    if not isinstance(concept, dict):
        raise c.required(element)
    found = c.codings(concept)
    chosen = next((x for x in found if x.get("system") == RXNORM), found[0] if found else {})
    name = concept.get("text") if isinstance(concept.get("text"), str) else None
    name = name or chosen.get("display") or chosen.get("code")
    if not isinstance(name, str) or not name.strip():
        raise c.required(f"{element}.text")
    system = chosen.get("system") if isinstance(chosen.get("system"), str) else ""
    return name.strip()[:200], str(chosen.get("code") or "")[:40], str(system)[:200]


def medicine_concept(name: str, code: str, system: str) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": name}
    if code:
        coding = {"system": system, "code": code, "display": name} if system else {}
        concept["coding"] = [coding or {"code": code, "display": name}]
    return concept


def _days(value: Any) -> int:
    where = "MedicationDispense.daysSupply"
    if not isinstance(value, dict) or value.get("value") is None:
        raise c.required(where)
    unit = str(value.get("code") or value.get("unit") or "d").lower()
    if unit not in _DAY_UNITS:
        raise c.not_supported(where, _("The days supply must be given in days (UCUM “d”)."))
    amount = number(value.get("value"))
    if amount is None or amount != amount.to_integral_value():
        raise c.not_supported(where, _("The days supply must be a whole number of days."))
    return int(amount)


@register
class MedicationDispenseMapper(c.PatientRecordMapper):
    resource_type = "MedicationDispense"
    model = pm.Dispense
    record_kind = "dispenses"
    field_elements = _FIELDS
    moved_message = gettext_lazy("A dispensing cannot be moved to another patient.")
    search_params = c.record_params(
        prescription=SearchParam("reference", _prescription),
        status=SearchParam("token", _status),
        code=SearchParam("token", _code),
        whenhandedover=SearchParam("date", lambda r: r.q("when_handed_over", dates=True)),
    )
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "whenhandedover": "when_handed_over"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "status": ("status",),
        "medicationCodeableConcept": ("name", "code", "code_system"),
        "authorizingPrescription": ("prescription",),
        "quantity": ("quantity", "quantity_unit"),
        "daysSupply": ("days_supply",),
        "whenHandedOver": ("when_handed_over",),
    }
    generated = frozenset({"subject"})

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "subject")  # the display sent beside the patient

    def field_value(self, obj: Any, name: str) -> Any:
        if name == "prescription":
            return obj.prescription_id
        value = getattr(obj, name, None)
        if name == "quantity" and value is not None:
            return f"{Decimal(str(value)).normalize():f}"  # the same before and after storing
        return value

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": obj.status,
            "medicationCodeableConcept": medicine_concept(obj.name, obj.code, obj.code_system),
            "subject": sent.reference(obj, "subject", f"Patient/{obj.patient_id}"),
            "daysSupply": {
                "value": obj.days_supply,
                "unit": "d",
                "system": c.UCUM,
                "code": "d",
            },
        }
        if obj.prescription_id:
            out["authorizingPrescription"] = [
                {"reference": f"MedicationRequest/{obj.prescription_id}"}
            ]
        if obj.quantity is not None:
            quantity: dict[str, Any] = {"value": plain_number(Decimal(str(obj.quantity)))}
            if obj.quantity_unit:
                quantity["unit"] = obj.quantity_unit
            out["quantity"] = quantity
        if obj.when_handed_over:
            out["whenHandedOver"] = obj.when_handed_over.isoformat()
        return out

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        if "medicationReference" in resource:
            raise c.not_supported(
                "MedicationDispense.medicationReference",
                _("Give the medicine as medicationCodeableConcept."),
            )
        status = resource.get("status")
        if status not in pm.Dispense.Status.values:
            raise c.not_supported("MedicationDispense.status", _("Unknown status."))
        name, code, system = medicine_of(
            resource.get("medicationCodeableConcept"),
            "MedicationDispense.medicationCodeableConcept",
        )
        prescription = None
        orders = [r for r in resource.get("authorizingPrescription") or [] if isinstance(r, dict)]
        if len(orders) > 1:
            raise c.not_supported(
                "MedicationDispense.authorizingPrescription",
                _("A dispensing fills at most one prescription here."),
            )
        if orders:
            where = "MedicationDispense.authorizingPrescription"
            prescription = c.pk_of(ctx.reference_id(orders[0], "MedicationRequest", where))
        found = resource.get("quantity")
        quantity: dict[str, Any] = found if isinstance(found, dict) else {}
        amount = number(quantity.get("value")) if quantity else None
        if quantity and amount is None:
            raise c.required("MedicationDispense.quantity.value")
        unit = quantity.get("unit") or quantity.get("code") or ""
        handed = local_date(
            resource.get("whenHandedOver"),
            patient_zone(patient_id),
            "MedicationDispense.whenHandedOver",
        )
        return {
            "name": name,
            "code": code,
            "code_system": system,
            "drug_class": "",
            "prescription": prescription,
            "quantity": str(amount) if amount is not None else None,
            "quantity_unit": str(unit)[:20],
            "days_supply": _days(resource.get("daysSupply")),
            "when_handed_over": handed,
            "status": status,
            "source": pm.Dispense.Source.FHIR,
        }

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        data["source"] = obj.source
        data["drug_class"] = obj.drug_class

"""Observation ↔ observations.Observation (home and clinic readings in canonical units).

A new Observation goes through the observations ingest service, so units are converted,
impossible values refused and the alert rules evaluated; sending the same reading again (same
patient, kind, time, source and device) answers the reading already stored. Readings are not
edited or deleted in CareLoop, so neither is offered here.

CareLoop records the readings of ``observations.domain.KINDS`` (blood pressure, glucose, HbA1c,
heart rate, weight, SpO2, temperature, steps, sleep), under any LOINC code ``domain.CODES``
accepts, of a patient (``subject`` a Patient). Anything else is refused naming the element:
another code (laboratory panels, genetics, Apgar or Glasgow scores, BMI, height…) at
``code``; a subject that is not a Patient at ``subject``; a reading entered in error or
cancelled at ``status``; a blood pressure missing one of its values at that component.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import READ_ONLY, Context, Mapper, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.kit.errors import CareLoopError
from careloop.observations import domain
from careloop.observations import models as om
from careloop.observations import selectors as obs_selectors
from careloop.observations import services as obs_services
from careloop.patients import selectors

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_LAB = {"glucose", "hba1c"}
# Where a reading's problem is in the resource.
_PROBLEM_AT = {
    "value": "Observation.valueQuantity.value",
    "systolic": "Observation.component[0].valueQuantity.value",
    "diastolic": "Observation.component[1].valueQuantity.value",
    "unit": "Observation.valueQuantity.code",
    "effective": "Observation.effectiveDateTime",
    "code": "Observation.code",
    "context": "Observation.code",
    "patient": "Observation.subject",
    "device": "Observation.device",
}


# Statuses of an Observation that is no (longer a) measurement: storing it would raise alerts.
_NOT_A_READING = ("entered-in-error", "cancelled")


def _code(system: str | None, value: str) -> Q:
    if system not in (None, "", c.LOINC):
        return Q(pk__in=[])
    if value in domain.KINDS:
        return Q(kind=value)
    found = domain.CODES.get(value)
    return Q(kind=found[0]) if found else Q(pk__in=[])


def _status(system: str | None, value: str) -> Q:
    sent = Q(fhir_extra__resource__status=value)
    if value == "final":
        return sent | Q(fhir_extra__isnull=True) | ~Q(fhir_extra__resource__has_key="status")
    return sent


def _category(system: str | None, value: str) -> Q:
    if system not in (None, "", CATEGORY):
        return Q(pk__in=[])
    if value == "laboratory":
        return Q(kind__in=sorted(_LAB))
    if value == "vital-signs":
        return ~Q(kind__in=sorted(_LAB))
    return Q(pk__in=[])


def _quantity(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@register
class ObservationMapper(Mapper):
    resource_type = "Observation"
    model = om.Observation
    interactions = READ_ONLY | {"create"}
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    write_actions = (Action.PATIENT_VIEW, Action.CLINICAL_WRITE)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("created_at")),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "code": SearchParam("token", _code),
        "date": SearchParam("date", lambda r: r.q("effective_at")),
        "status": SearchParam("token", _status),
        "category": SearchParam("token", _category),
    }
    sorts = {"_id": "pk", "_lastUpdated": "created_at", "date": "effective_at"}
    default_sort = ("-effective_at", "-pk")
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "code": ("code", "context"),
        "valueQuantity": ("value", "unit"),
        "component": ("value", "value2"),
        "effectiveDateTime": ("effective_at",),
        "status": (),
        "category": ("kind",),
    }
    generated = frozenset({"subject"})
    keeps_extra = True

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "subject")

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return om.Observation.objects.filter(c.of_visible_patients(actor))

    def last_updated(self, obj: Any) -> Any:
        return obj.created_at

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        kind = domain.KINDS.get(obj.kind)
        category = "laboratory" if obj.kind in _LAB else "vital-signs"
        label = kind.label if kind else obj.kind
        local = obj.effective_at.astimezone(ZoneInfo(obj.time_zone))
        out: dict[str, Any] = {
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
            "code": {
                "coding": [{"system": c.LOINC, "code": obj.code, "display": label}],
                "text": label,
            },
            "subject": sent.reference(obj, "subject", f"Patient/{obj.patient_id}"),
            "effectiveDateTime": local.isoformat(),
        }
        if obj.kind == "bp":
            out["component"] = [
                _component(domain.SYSTOLIC_CODE, "Systolic blood pressure", obj.value),
                _component(domain.DIASTOLIC_CODE, "Diastolic blood pressure", obj.value2),
            ]
        else:
            out["valueQuantity"] = {
                "value": round(obj.value, kind.decimals if kind else 2),
                "unit": obj.unit,
                "system": c.UCUM,
                "code": obj.unit,
            }
        return out

    def _item(self, resource: dict[str, Any]) -> dict[str, Any]:
        status = resource.get("status")
        if status in _NOT_A_READING:
            raise c.not_supported(
                "Observation.status",
                _("A reading with status “%(status)s” is not a measurement CareLoop records.")
                % {"status": status},
            )
        code = None
        for coding in c.codings(resource.get("code")):
            if coding.get("system") in (c.LOINC, None) and coding.get("code") in domain.CODES:
                code = str(coding["code"])
                break
        if code is None:
            raise c.not_supported(
                "Observation.code",
                _("The LOINC code is not one CareLoop records (%(codes)s).")
                % {"codes": ", ".join(k.loinc for k in domain.KINDS.values())},
            )
        effective = (
            resource.get("effectiveDateTime")
            or resource.get("effectiveInstant")
            or _quantity(resource.get("effectivePeriod")).get("start")
        )
        if not effective:
            raise c.required("Observation.effectiveDateTime")
        item: dict[str, Any] = {"code": code, "effective": effective, "source": "staff"}
        kind = domain.CODES[code][0]
        if kind == "bp":
            for component in resource.get("component") or []:
                if not isinstance(component, dict):
                    continue
                codes = {x.get("code") for x in c.codings(component.get("code"))}
                quantity = _quantity(component.get("valueQuantity"))
                if domain.SYSTOLIC_CODE in codes:
                    item["systolic"] = quantity.get("value")
                    item["unit"] = quantity.get("code") or quantity.get("unit")
                elif domain.DIASTOLIC_CODE in codes:
                    item["diastolic"] = quantity.get("value")
        else:
            quantity = _quantity(resource.get("valueQuantity"))
            if "value" not in quantity:
                raise c.required("Observation.valueQuantity")
            item["value"] = quantity.get("value")
            unit = quantity.get("code") or quantity.get("unit")
            if unit:
                item["unit"] = unit
        if not item.get("unit"):
            item.pop("unit", None)
        return item

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        ident = ctx.reference_id(resource.get("subject"), "Patient", "Observation.subject")
        patient_id = int(ident) if ident.isdigit() and len(ident) < 19 else 0
        item = self._item(resource)
        try:
            selectors.get_patient(
                ctx.actor, patient_id, action=Action.CLINICAL_WRITE, audit_read=False
            )
            report = obs_services.ingest(
                ctx.actor, [item], patient_id=patient_id, source="staff", origin="fhir"
            )
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, {"patient": "subject"}) from exc
        if report.problems:
            problem = report.problems[0]
            where = _PROBLEM_AT.get(problem.field, "Observation")
            raise FhirError.of(422, str(problem.reason), code="value", expression=where)
        if report.ids:
            row = om.Observation.objects.get(pk=report.ids[0])
            self.keep(row, resource)
            return row, True
        existing = obs_selectors.stored_reading(ctx.actor, patient_id, item=item)
        if existing is None:  # pragma: no cover - ingest found a duplicate it cannot name
            raise FhirError.of(409, _("This reading is already recorded."), code="duplicate")
        return existing, False


def _component(code: str, display: str, value: float | None) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": c.LOINC, "code": code, "display": display}]},
        "valueQuantity": {
            "value": round(value or 0),
            "unit": "mmHg",
            "system": c.UCUM,
            "code": "mm[Hg]",
        },
    }

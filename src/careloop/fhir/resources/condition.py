"""Condition ↔ patients.Condition (ICD-10 diagnosis, SNOMED CT, onset, status, note).

Writes go through patients.services like the staff form, so enrolment rules fire the same way.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.registry import READ_WRITE, Context, History, Mapper, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.kit.errors import CareLoopError
from careloop.patients import models as pm
from careloop.patients import selectors, services

ICD10_SYSTEMS = (c.ICD10, "http://hl7.org/fhir/sid/icd-10-cn", "http://hl7.org/fhir/sid/icd-10-cm")
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_STATUS_IN = {
    "active": "active",
    "recurrence": "active",
    "relapse": "active",
    "remission": "remission",
    "resolved": "resolved",
    "inactive": "inactive",
}
_FIELDS = {
    "icd10_code": "code",
    "snomed_code": "code",
    "display": "code",
    "onset_date": "onsetDateTime",
    "status": "clinicalStatus",
    "note": "note",
}


def _code(system: str | None, value: str) -> Q:
    if system in ICD10_SYSTEMS:
        return Q(icd10_code__iexact=value)
    if system == c.SNOMED:
        return Q(snomed_code=value)
    if system in (None, ""):
        return Q(icd10_code__iexact=value) | Q(snomed_code=value)
    return Q(pk__in=[])


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", CLINICAL):
        return Q(pk__in=[])
    return Q(status=value) if value in pm.Condition.Status.values else Q(pk__in=[])


@register
class ConditionMapper(Mapper):
    resource_type = "Condition"
    model = pm.Condition
    interactions = READ_WRITE
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    write_actions = (Action.PATIENT_VIEW, Action.CLINICAL_WRITE)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "code": SearchParam("token", _code),
        "clinical-status": SearchParam("token", _status),
        "onset-date": SearchParam("date", lambda r: r.q("onset_date", dates=True)),
    }
    sorts = {
        "_id": "pk",
        "_lastUpdated": "updated_at",
        "onset-date": "onset_date",
        "code": "icd10_code",
    }
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "code": ("icd10_code", "snomed_code", "display"),
        "clinicalStatus": ("status",),
        "onsetDateTime": ("onset_date",),
        "note": ("note",),
    }
    generated = frozenset({"subject"})
    keeps_extra = True

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return pm.Condition.objects.filter(
            deleted_at__isnull=True, patient_id__in=selectors.visible_patients(actor).values("pk")
        )

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        coding: list[dict[str, Any]] = [
            {"system": c.ICD10, "code": obj.icd10_code, "display": obj.display or obj.icd10_code}
        ]
        if obj.snomed_code:
            coding.append({"system": c.SNOMED, "code": obj.snomed_code})
        out: dict[str, Any] = {
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": obj.status}]},
            "code": {"coding": coding, "text": obj.display or obj.icd10_code},
            "subject": {"reference": f"Patient/{obj.patient_id}"},
        }
        if obj.onset_date:
            out["onsetDateTime"] = obj.onset_date.isoformat()
        if obj.note:
            out["note"] = [{"text": obj.note}]
        return out

    def _data(self, resource: dict[str, Any]) -> dict[str, Any]:
        found = resource.get("code")
        code: dict[str, Any] = found if isinstance(found, dict) else {}
        icd = next((x for x in c.codings(code) if x.get("system") in ICD10_SYSTEMS), None)
        if icd is None or not isinstance(icd.get("code"), str):
            raise c.not_supported(
                "Condition.code",
                _("An ICD-10 coding (system %(system)s) is required.") % {"system": c.ICD10},
            )
        snomed = next((x for x in c.codings(code) if x.get("system") == c.SNOMED), {})
        display = code.get("text") if isinstance(code.get("text"), str) else icd.get("display")
        status = "active"
        for coding in c.codings(resource.get("clinicalStatus")):
            status = _STATUS_IN.get(str(coding.get("code")), status)
        onset = resource.get("onsetDateTime")
        notes = [n.get("text") for n in resource.get("note") or [] if isinstance(n, dict)]
        return {
            "icd10_code": icd["code"],
            "snomed_code": str(snomed.get("code") or ""),
            "display": str(display or "")[:200],
            "onset_date": onset[:10] if isinstance(onset, str) and len(onset) >= 10 else None,
            "status": status,
            "note": "\n".join(n for n in notes if isinstance(n, str))[:2000],
        }

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        patient_id = ctx.reference_id(resource.get("subject"), "Patient", "Condition.subject")
        data = self._data(resource)
        try:
            row = services.add_record(ctx.actor, _pk(patient_id), "conditions", data)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc
        self.keep(row, resource)
        return row, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        patient_id = ctx.reference_id(resource.get("subject"), "Patient", "Condition.subject")
        if _pk(patient_id) != obj.patient_id:
            raise c.not_supported(
                "Condition.subject", _("A condition cannot be moved to another patient.")
            )
        try:
            row = services.update_record(
                ctx.actor, obj.patient_id, "conditions", obj.pk, self._data(resource), expected
            )
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc
        self.keep(row, resource)
        return row

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        try:
            services.delete_record(ctx.actor, obj.patient_id, "conditions", obj.pk, expected)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc

    def history(self, obj: Any) -> list[History]:
        return c.record_history(self, "conditions", obj, c.lay_over)


def _pk(ident: str) -> int:
    return int(ident) if ident.isdigit() and len(ident) < 19 else 0

"""Condition ↔ patients.Condition (ICD-10 diagnosis, SNOMED CT, onset, status, note).

Writes go through patients.services like the staff form, so enrolment rules fire the same way.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.patients import models as pm

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


SNOMED_ICD10 = Path(__file__).resolve().parent.parent / "data" / "snomed_icd10.csv"


@functools.cache
def snomed_icd10() -> dict[str, str]:
    """SNOMED CT concept id → ICD-10 code, from the shipped map (lines with # are notes)."""
    with SNOMED_ICD10.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {row["snomed"].strip(): row["icd10"].strip() for row in rows}


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
class ConditionMapper(c.PatientRecordMapper):
    resource_type = "Condition"
    model = pm.Condition
    record_kind = "conditions"
    field_elements = _FIELDS
    moved_message = gettext_lazy("A condition cannot be moved to another patient.")
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

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "subject")

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        coding: list[dict[str, Any]] = [
            {"system": c.ICD10, "code": obj.icd10_code, "display": obj.display or obj.icd10_code}
        ]
        if obj.snomed_code:
            coding.append({"system": c.SNOMED, "code": obj.snomed_code})
        out: dict[str, Any] = {
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": obj.status}]},
            "code": {"coding": coding, "text": obj.display or obj.icd10_code},
            "subject": sent.reference(obj, "subject", f"Patient/{obj.patient_id}"),
        }
        if obj.onset_date:
            out["onsetDateTime"] = obj.onset_date.isoformat()
        if obj.note:
            out["note"] = [{"text": obj.note}]
        return out

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        found = resource.get("code")
        code: dict[str, Any] = found if isinstance(found, dict) else {}
        icd = next((x for x in c.codings(code) if x.get("system") in ICD10_SYSTEMS), None)
        snomed = next((x for x in c.codings(code) if x.get("system") == c.SNOMED), {})
        if icd is None and snomed.get("code"):
            # No ICD-10 coding: the shipped SNOMED CT → ICD-10 map (data/snomed_icd10.csv).
            mapped = snomed_icd10().get(str(snomed["code"]))
            if mapped is None:
                raise c.not_supported(
                    "Condition.code",
                    _("no ICD-10 mapping for SNOMED %(code)s") % {"code": str(snomed["code"])[:20]},
                )
            icd = {"code": mapped, "display": snomed.get("display")}
        if icd is None or not isinstance(icd.get("code"), str):
            raise c.not_supported(
                "Condition.code",
                _("An ICD-10 coding (system %(system)s) is required.") % {"system": c.ICD10},
            )
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

"""AllergyIntolerance ↔ patients.Allergy (substance, category, reaction, severity, noted on).

CareLoop records the substance as a name, not a code: ``code`` is read back as text, and the
``code`` search parameter matches the substance name (case-insensitive) or, for a resource sent
through FHIR, the text or a coding's display it was sent with. CareLoop keeps no clinical
status for allergies: every recorded allergy is active, deleted ones are gone. Writes go
through patients.services like the staff form.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.patients import models as pm

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
# SNOMED CT situations saying there is no known allergy (of a kind): not allergies.
NO_KNOWN_ALLERGY = frozenset(
    {
        "716186003",  # no known allergy
        "409137002",  # no known drug allergy
        "716184000",  # no known latex allergy
        "429625007",  # no known food allergy
        "428197003",  # no known insect allergy
        "428607008",  # no known environmental allergy
    }
)
_CATEGORY_IN = {"medication": "medication", "food": "food", "environment": "environment"}
_SEVERITY_RANK = {"mild": 0, "moderate": 1, "severe": 2}
_FIELDS = {
    "substance": "code",
    "category": "category",
    "reaction": "reaction",
    "severity": "reaction",
    "noted_on": "recordedDate",
}


def _code(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    return Q(substance__iexact=value)


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", CLINICAL):
        return Q(pk__in=[])
    return Q(pk__isnull=False) if value == "active" else Q(pk__in=[])


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in c.codings(concept):
        for key in ("display", "code"):
            if isinstance(coding.get(key), str) and coding[key].strip():
                return str(coding[key]).strip()
    return ""


@register
class AllergyIntoleranceMapper(c.PatientRecordMapper):
    resource_type = "AllergyIntolerance"
    model = pm.Allergy
    record_kind = "allergies"
    subject_element = "patient"
    field_elements = _FIELDS
    moved_message = gettext_lazy("An allergy cannot be moved to another patient.")
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "code": SearchParam("token", _code),
        "clinical-status": SearchParam("token", _status),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "code": "substance"}
    include_targets = {"patient": "Patient"}
    elements = {
        "code": ("substance",),
        "category": ("category",),
        "reaction": ("reaction", "severity"),
        "recordedDate": ("noted_on",),
    }
    generated = frozenset({"patient"})

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "patient")

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "category": [obj.category] if obj.category in _CATEGORY_IN else [],
            "code": {"text": obj.substance},
            "patient": sent.reference(obj, "patient", f"Patient/{obj.patient_id}"),
        }
        if not out["category"]:
            del out["category"]
        reaction: dict[str, Any] = {"severity": obj.severity}
        reaction["manifestation"] = [{"text": obj.reaction or obj.substance}]
        out["reaction"] = [reaction]
        if obj.noted_on:
            out["recordedDate"] = obj.noted_on.isoformat()
        return out

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        if any(
            x.get("system") == c.SNOMED and x.get("code") in NO_KNOWN_ALLERGY
            for x in c.codings(resource.get("code"))
        ):
            raise c.not_supported(
                "AllergyIntolerance.code",
                _(
                    "The allergy list holds what the patient reacts to; a statement that no "
                    "allergy is known is not recorded as an allergy."
                ),
            )
        substance = _text(resource.get("code"))
        if not substance:
            raise c.required("AllergyIntolerance.code")
        categories = resource.get("category")
        category = "other"
        if isinstance(categories, list) and categories:
            category = _CATEGORY_IN.get(str(categories[0]), "other")
        reactions = [r for r in resource.get("reaction") or [] if isinstance(r, dict)]
        manifestations = [
            _text(m) for r in reactions for m in r.get("manifestation") or [] if _text(m)
        ]
        severities = [str(r["severity"]) for r in reactions if r.get("severity") in _SEVERITY_RANK]
        severity = max(severities, key=_SEVERITY_RANK.__getitem__) if severities else "moderate"
        recorded = resource.get("recordedDate")
        return {
            "substance": substance[:200],
            "category": category,
            "reaction": "; ".join(dict.fromkeys(manifestations))[:200],
            "severity": severity,
            "noted_on": recorded[:10]
            if isinstance(recorded, str) and len(recorded) >= 10
            else None,
        }

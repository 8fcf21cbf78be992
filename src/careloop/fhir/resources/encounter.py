"""Encounter ↔ patients.Encounter (a visit: kind, department, attending, diagnoses, dates).

``class`` (v3 ActCode) gives the kind: AMB → outpatient, IMP/ACUTE/NONAC → inpatient,
EMER → emergency, HH (home health: a visit at the patient's home) → follow-up; a ``type`` text
or coding display containing "follow" makes a follow-up. ``period.start`` is the visit
(admission) date, ``period.end`` the discharge; a visit that is not an inpatient stay may give
only ``period.end`` (its date is then the visit date). An encounter with neither date is
refused: CareLoop records every visit on its date.
The department is the ``serviceProvider`` when it names one of the organisation's departments
("Organization/dept-<n>"), otherwise the patient's first department the writer works in.
CareLoop keeps no status: an inpatient stay without a discharge date is ``in-progress``,
every other visit ``finished``. Writes go through patients.services like the staff form.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.models import Department
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import sent
from careloop.patients import models as pm

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLASS_IN = {
    "AMB": "outpatient",
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "EMER": "emergency",
    "HH": "follow_up",
}
_CLASS_OUT = {
    "outpatient": ("AMB", "ambulatory"),
    "follow_up": ("AMB", "ambulatory"),
    "inpatient": ("IMP", "inpatient encounter"),
    "emergency": ("EMER", "emergency"),
}
_FIELDS = {
    "kind": "class",
    "department": "serviceProvider",
    "attending": "participant",
    "diagnoses": "reasonCode",
    "admitted_on": "period",
    "discharged_on": "period",
    "summary": "period",
}
_OPEN = Q(kind="inpatient", discharged_on__isnull=True)


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/encounter-status"):
        return Q(pk__in=[])
    if value == "in-progress":
        return _OPEN
    return ~_OPEN if value == "finished" else Q(pk__in=[])


def _class(system: str | None, value: str) -> Q:
    if system not in (None, "", ACT):
        return Q(pk__in=[])
    if value.upper() == "HH":  # read back as sent while the kind is unchanged
        return Q(kind="follow_up", fhir_extra__resource__class__code="HH")
    kinds = [k for k, (code, _d) in _CLASS_OUT.items() if code == value.upper()]
    return Q(kind__in=kinds) if kinds else Q(pk__in=[])


def _type(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    return Q(kind=value) if value in pm.Encounter.Kind.values else Q(pk__in=[])


def _service_provider(raw: str) -> Q:
    """``Organization/dept-<n>`` (or ``dept-<n>``): the visits of that department."""
    ident = raw.rsplit("/", 1)[-1]
    kind, _sep, number = ident.partition("-")
    if kind != "dept" or not number.isdigit() or len(number) > 18:
        return Q(pk__in=[])
    return Q(department_id=int(number))


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in c.codings(concept):
        if isinstance(coding.get("display"), str) and coding["display"].strip():
            return str(coding["display"]).strip()
    return ""


def _date(value: Any) -> str | None:
    return value[:10] if isinstance(value, str) and len(value) >= 10 else None


@register
class EncounterMapper(c.PatientRecordMapper):
    resource_type = "Encounter"
    model = pm.Encounter
    record_kind = "visits"
    field_elements = _FIELDS
    moved_message = gettext_lazy("A visit cannot be moved to another patient.")
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "date": SearchParam("date", lambda r: r.q("admitted_on", dates=True)),
        "status": SearchParam("token", _status),
        "class": SearchParam("token", _class),
        "type": SearchParam("token", _type),
        "service-provider": SearchParam("reference", _service_provider),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "date": "admitted_on"}
    include_targets = {
        "patient": "Patient",
        "subject": "Patient",
        "service-provider": "Organization",
    }
    include_paths = {"service-provider": "serviceProvider"}
    elements = {
        "class": ("kind",),
        "type": ("kind",),
        "period": ("admitted_on", "discharged_on"),
        "reasonCode": ("diagnoses",),
        "participant": ("attending",),
        "serviceProvider": ("department_id",),
        "status": ("kind", "discharged_on"),
    }
    generated = frozenset({"subject"})

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        super().keep(obj, resource)
        sent.remember(obj, resource, "subject")

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        code, display = _CLASS_OUT[obj.kind]
        period: dict[str, Any] = {"start": obj.admitted_on.isoformat()}
        if obj.discharged_on:
            period["end"] = obj.discharged_on.isoformat()
        open_stay = obj.kind == "inpatient" and not obj.discharged_on
        out: dict[str, Any] = {
            "status": "in-progress" if open_stay else "finished",
            "class": {"system": ACT, "code": code, "display": display},
            "type": [{"text": obj.kind}],
            "subject": sent.reference(obj, "subject", f"Patient/{obj.patient_id}"),
            "period": period,
            "serviceProvider": {"reference": f"Organization/dept-{obj.department_id}"},
        }
        if obj.attending:
            out["participant"] = [{"individual": {"display": obj.attending}}]
        if obj.diagnoses:
            out["reasonCode"] = [{"text": obj.diagnoses}]
        return out

    def _department(self, ctx: Context, resource: dict[str, Any], patient_id: int) -> int:
        provider = resource.get("serviceProvider")
        ref = provider.get("reference") if isinstance(provider, dict) else None
        departments = Department.objects.filter(organisation_id=ctx.actor.organisation_id or 0)
        if isinstance(ref, str) and ref.startswith("Organization/dept-"):
            found = departments.filter(pk=c.pk_of(ref.rsplit("-", 1)[-1])).first()
            if found is None:
                raise c.not_supported(
                    "Encounter.serviceProvider",
                    _("This department is not part of the organisation."),
                )
            return int(found.pk)
        own = departments.filter(
            pk__in=pm.PatientDepartment.objects.filter(patient_id=patient_id).values(
                "department_id"
            )
        ).order_by("pk")
        mine = own.filter(pk__in=list(ctx.actor.department_ids or []))
        found = mine.first() or own.first()
        if found is None:
            raise c.required("Encounter.serviceProvider")
        return int(found.pk)

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        found = resource.get("class")
        klass = found if isinstance(found, dict) else {}
        kind = _CLASS_IN.get(str(klass.get("code") or "").upper())
        if kind is None:
            raise c.not_supported(
                "Encounter.class", _("The class must be AMB, IMP, ACUTE, NONAC, EMER or HH.")
            )
        types = resource.get("type")
        if isinstance(types, list) and any("follow" in _text(t).lower() for t in types):
            kind = "follow_up"
        found = resource.get("period")
        period: dict[str, Any] = found if isinstance(found, dict) else {}
        start = _date(period.get("start"))
        if start is None and kind != "inpatient":
            start = _date(period.get("end"))  # a visit of one day: it ended on its date
        if start is None:
            raise FhirError.of(
                422,
                _(
                    "CareLoop records a visit on its date: period.start (or, for a visit that "
                    "is not an inpatient stay, period.end) is required."
                ),
                code="required",
                expression="Encounter.period.start",
            )
        attending = ""
        for p in resource.get("participant") or []:
            who = p.get("individual") if isinstance(p, dict) else None
            if isinstance(who, dict) and isinstance(who.get("display"), str):
                attending = who["display"]
                break
        reasons = [_text(r) for r in resource.get("reasonCode") or [] if _text(r)]
        return {
            "kind": kind,
            "department": self._department(ctx, resource, patient_id),
            "attending": attending[:100],
            "diagnoses": "; ".join(reasons)[:500],
            "admitted_on": start,
            "discharged_on": _date(period.get("end")),
            "summary": "",
        }

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        data["summary"] = obj.summary

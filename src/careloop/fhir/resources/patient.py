"""Patient ↔ patients.Patient (identity, contacts, the organisation that manages the record).

CareLoop records people it follows up: a name and a date of birth are required, and a
non-human patient (the ``patient-animal`` extension) or an inactive record (``active`` false)
is refused. ``managingOrganization`` is always the CareLoop organisation holding the record
(a reference to the sender's organisation would not resolve here); ``active`` reads back as
sent (or absent) until the record is merged into another one.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.registry import READ_ONLY, Context, History, Mapper, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.kit.crypto import blind_index
from careloop.kit.errors import CareLoopError
from careloop.kit.identifiers import normalise_phone, normalise_resident_id
from careloop.patients import models as pm
from careloop.patients import selectors, services

_CJK = re.compile(r"[\u3400-\u9fff]")
ANIMAL = "http://hl7.org/fhir/StructureDefinition/patient-animal"
_LANGUAGES = {"zh-hans": ("zh-CN", "Chinese (China)"), "en": ("en", "English")}
# Service field → FHIR element, for error messages.
_FIELDS = {
    "name": "name",
    "sex": "gender",
    "date_of_birth": "birthDate",
    "national_id": "identifier",
    "record_number": "identifier",
    "phones": "telecom",
    "address": "address",
    "deceased_on": "deceasedDateTime",
    "preferred_language": "communication",
    "department": "managingOrganization",
}


def _identifier(system: str | None, value: str) -> Q:
    national = Q(national_id_index=blind_index("national_id", normalise_resident_id(value)))
    if system == c.ID_SYSTEM_NATIONAL:
        return national
    if system == c.ID_SYSTEM_RECORD:
        return Q(record_number=value)
    if system is None:
        return Q(record_number=value) | national
    return Q(pk__in=[])


def _gender(system: str | None, value: str) -> Q:
    mapped = {"male": "male", "female": "female", "unknown": "unknown", "other": "unknown"}
    return Q(sex=mapped[value]) if value in mapped else Q(pk__in=[])


def _name(value: str) -> Q:
    return Q(name__icontains=value.strip())


def _human_name(names: Any) -> str:
    if not isinstance(names, list) or not names:
        return ""
    chosen = next(
        (n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0]
    )
    if not isinstance(chosen, dict):
        return ""
    if isinstance(chosen.get("text"), str) and chosen["text"].strip():
        return str(chosen["text"]).strip()
    family = chosen.get("family") if isinstance(chosen.get("family"), str) else ""
    given = [g for g in chosen.get("given") or [] if isinstance(g, str)]
    if _CJK.search(family or "") or any(_CJK.search(g) for g in given):
        return (family or "") + "".join(given)
    return " ".join([*given, family or ""]).strip()


def _address_text(addresses: Any) -> str:
    if not isinstance(addresses, list) or not addresses or not isinstance(addresses[0], dict):
        return ""
    a = addresses[0]
    if isinstance(a.get("text"), str) and a["text"].strip():
        return str(a["text"]).strip()
    parts = [*(a.get("line") or []), a.get("city"), a.get("district"), a.get("state")]
    parts.append(a.get("postalCode"))
    return ", ".join(str(p) for p in parts if isinstance(p, str) and p)


@register
class PatientMapper(Mapper):
    resource_type = "Patient"
    model = pm.Patient
    interactions = READ_ONLY | {"create", "update"}
    read_actions = (Action.PATIENT_VIEW,)
    search_actions = (Action.PATIENT_SEARCH,)
    # The services require PATIENT_CREATE / PATIENT_UPDATE themselves (and audit a refusal).
    write_actions = (Action.PATIENT_VIEW,)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "identifier": SearchParam("token", _identifier, "system|value; national ID or record no."),
        "name": SearchParam("string", _name),
        "gender": SearchParam("token", _gender),
        "birthdate": SearchParam("date", lambda r: r.q("date_of_birth", dates=True)),
    }
    sorts = {
        "_id": "pk",
        "_lastUpdated": "updated_at",
        "name": "name",
        "birthdate": "date_of_birth",
    }
    elements = {
        "identifier": ("record_number", "national_id"),
        "name": ("name",),
        "gender": ("sex",),
        "birthDate": ("date_of_birth",),
        "telecom": ("phones",),
        "address": ("address",),
        "deceasedDateTime": ("deceased_on",),
        "deceasedBoolean": ("deceased_on",),
        "communication": ("preferred_language",),
        "active": ("merged_into_id",),
    }
    generated = frozenset({"managingOrganization"})
    keeps_extra = True

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return selectors.visible_patients(actor)

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs.none() if patient_id is None else qs.filter(pk=patient_id)

    def patient_id_of(self, obj: Any) -> int | None:
        return int(obj.pk)

    def field_value(self, obj: Any, name: str) -> Any:
        if name == "phones":
            given = getattr(obj, "_fhir_phones", None)
            return given if given is not None else [p.number for p in obj.phones.all()]
        return super().field_value(obj, name)

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"active": obj.merged_into_id is None}
        identifiers = []
        if obj.record_number:
            identifiers.append({"system": c.ID_SYSTEM_RECORD, "value": obj.record_number})
        if obj.national_id:
            identifiers.append({"system": c.ID_SYSTEM_NATIONAL, "value": obj.national_id})
        if identifiers:
            out["identifier"] = identifiers
        out["name"] = [{"use": "official", "text": obj.name}]
        phones = self.field_value(obj, "phones")
        if phones:
            out["telecom"] = [
                {"system": "phone", "value": n, "rank": i + 1} for i, n in enumerate(phones)
            ]
        out["gender"] = obj.sex
        out["birthDate"] = obj.date_of_birth.isoformat()
        if obj.deceased_on:
            out["deceasedDateTime"] = obj.deceased_on.isoformat()
        if obj.address:
            out["address"] = [{"text": obj.address}]
        code, display = _LANGUAGES.get(obj.preferred_language, (obj.preferred_language, ""))
        out["communication"] = [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": code, "display": display}]
                },
                "preferred": True,
            }
        ]
        out["managingOrganization"] = {"reference": f"Organization/org-{obj.organisation_id}"}
        return out

    def _refuse(self, resource: dict[str, Any], obj: Any = None) -> None:
        """A 422 for a Patient CareLoop cannot record as a person it follows up."""
        for item in resource.get("extension") or []:
            if isinstance(item, dict) and item.get("url") == ANIMAL:
                raise c.not_supported(
                    "Patient.extension",
                    _("CareLoop records people; a non-human patient (patient-animal) is refused."),
                )
        if resource.get("active") is False and (obj is None or obj.merged_into_id is None):
            raise c.not_supported(
                "Patient.active",
                _("CareLoop keeps no inactive patient records; only a merged record is inactive."),
            )

    def _data(self, resource: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": _human_name(resource.get("name")),
            "date_of_birth": resource.get("birthDate") or "",
            "address": _address_text(resource.get("address")),
            "national_id": "",
            "record_number": "",
        }
        gender = resource.get("gender")
        data["sex"] = gender if gender in ("male", "female") else "unknown"
        for ident in resource.get("identifier") or []:
            if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
                continue
            kinds = {cd.get("code") for cd in c.codings(ident.get("type"))}
            if ident.get("system") == c.ID_SYSTEM_NATIONAL and not data["national_id"]:
                data["national_id"] = ident["value"]
            elif (ident.get("system") == c.ID_SYSTEM_RECORD or "MR" in kinds) and not data[
                "record_number"
            ]:
                data["record_number"] = ident["value"][:40]
        phones = []
        for point in resource.get("telecom") or []:
            if isinstance(point, dict) and point.get("system") in ("phone", "sms"):
                number = normalise_phone(str(point.get("value") or ""))
                # Only numbers CareLoop can dial are stored; the others stay in telecom as sent.
                if number and normalise_phone(number) == number and number not in phones:
                    phones.append(number)
        data["phones"] = phones[:3]
        deceased = resource.get("deceasedDateTime")
        data["deceased_on"] = deceased[:10] if isinstance(deceased, str) else None
        language = ""
        for comm in resource.get("communication") or []:
            for coding in c.codings(comm.get("language") if isinstance(comm, dict) else None):
                code = str(coding.get("code") or "").lower()
                language = language or ("en" if code.startswith("en") else "")
                language = language or ("zh-hans" if code.startswith("zh") else "")
        data["preferred_language"] = language or "zh-hans"
        return data

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        self._refuse(resource)
        data = self._data(resource)
        try:
            patient = services.create_patient(ctx.actor, data)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc
        self.keep(patient, resource)
        return patient, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        self._refuse(resource, obj)
        data = self._data(resource)
        try:
            patient = services.update_patient(ctx.actor, obj.pk, data, expected)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc
        self.keep(patient, resource)
        return patient

    def history(self, obj: Any) -> list[History]:
        return c.record_history(self, "patient", obj, c.lay_over)

"""PractitionerRole ↔ accounts.Staff: one role per staff member of the actor's organisation
(read and search only), with the same id as the member's Practitioner.

``code`` is the CareLoop role (system ``urn:careloop:role``), with the HL7 practitioner-role
code added for doctors and nurses. ``organization`` is the organisation ("Organization/org-<n>");
the departments the member works in are listed as ``extension`` entries (url
``urn:careloop:fhir:department``) referring to the department Organizations ("Organization/
dept-<n>"). The ``organization`` search parameter accepts either: the organisation finds every
member, a department only its members.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Membership, Staff
from careloop.accounts.roles import ROLE_LABELS, Role
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, register
from careloop.fhir.resources import common as c

ROLE_SYSTEM = "urn:careloop:role"
HL7_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
DEPARTMENT_EXTENSION = "urn:careloop:fhir:department"
# CareLoop roles that have an HL7 practitioner-role code.
_HL7 = {Role.DOCTOR.value: ("doctor", "Doctor"), Role.NURSE.value: ("nurse", "Nurse")}


def _organization(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    ident = reference_id(raw, "Organization")
    kind, _sep, number = ident.partition("-")
    if not number.isdigit() or len(number) > 18:
        return Q(pk__in=[])
    if kind == "org":
        return Q(organisation_id=int(number))
    if kind == "dept":
        return Q(Exists(Membership.objects.filter(staff=OuterRef("pk"), department_id=int(number))))
    return Q(pk__in=[])


def _practitioner(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    return Q(pk=c.pk_of(reference_id(raw, "Practitioner")))


def _role(system: str | None, value: str) -> Q:
    if system in (None, "", ROLE_SYSTEM) and value in Role._value2member_map_:
        return Q(role=value)
    if system in (None, "", HL7_ROLE):
        roles = [r for r, (code, _d) in _HL7.items() if code == value]
        return Q(role__in=roles) if roles else Q(pk__in=[])
    return Q(pk__in=[])


def _active(system: str | None, value: str) -> Q:
    return Q(is_active=value == "true") if value in ("true", "false") else Q(pk__in=[])


@register
class PractitionerRoleMapper(Mapper):
    resource_type = "PractitionerRole"
    model = Staff
    interactions = READ_ONLY
    read_actions = ()
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "practitioner": SearchParam("reference", _practitioner),
        "organization": SearchParam(
            "reference",
            _organization,
            "Organization/org-<n> (every member) or Organization/dept-<n> (its members)",
        ),
        "role": SearchParam("token", _role),
        "active": SearchParam("token", _active),
    }
    sorts = {"_id": "pk"}
    default_sort = ("pk",)

    def visible(self, actor: Actor) -> QuerySet[Any]:
        if actor.organisation_id is None:
            return Staff.objects.none()
        return Staff.objects.filter(organisation_id=actor.organisation_id).prefetch_related(
            "departments"
        )

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def last_updated(self, obj: Any) -> Any:
        return obj.date_joined

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        codings = [{"system": ROLE_SYSTEM, "code": obj.role, "display": _label(obj.role)}]
        if obj.role in _HL7:
            code, display = _HL7[obj.role]
            codings.append({"system": HL7_ROLE, "code": code, "display": display})
        departments = sorted(obj.departments.all(), key=lambda d: d.pk)
        out: dict[str, Any] = {}
        if departments:
            out["extension"] = [
                {
                    "url": DEPARTMENT_EXTENSION,
                    "valueReference": {
                        "reference": f"Organization/dept-{d.pk}",
                        "display": d.name,
                    },
                }
                for d in departments
            ]
        out |= {
            "active": bool(obj.is_active),
            "practitioner": {
                "reference": f"Practitioner/{obj.pk}",
                "display": obj.display_name or obj.get_username(),
            },
            "organization": {"reference": f"Organization/org-{obj.organisation_id}"},
            "code": [{"coding": codings}],
        }
        return out


def _label(role: str) -> str:
    try:
        return str(ROLE_LABELS[Role(role)])
    except ValueError:
        return role

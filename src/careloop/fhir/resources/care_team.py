"""CareTeam ↔ patients.PatientDepartment: a department looking after a patient and the care
team it assigned (read and search only).

This is what the patient's "My care team" page and the staff patient header show: per
department, the team's name, its responsible doctor and its active members. ``participant``
lists the responsible doctor (role ``responsible-doctor``) and each active member with their
team role (``doctor``, ``nurse``, ``other``; system ``urn:careloop:team-role``);
``managingOrganization`` is the department ("Organization/dept-<n>"), ``period.start`` the date
the department took the patient on. A department that has not assigned a team still looks after
the patient: its CareTeam has the department's name and no participants.

CareLoop keeps no change time or version for these assignments: ``meta.versionId`` is derived
from the team's content (it changes whenever a participant, the name or the department does)
and ``meta.lastUpdated`` is the start of ``period`` (or the patient's registration).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Prefetch, Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import CareTeamMember
from careloop.fhir.registry import READ_ONLY, Mapper, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.patients import models as pm
from careloop.patients import selectors

TEAM_ROLE = "urn:careloop:team-role"
LOINC_LONGITUDINAL = "LA28865-6"


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/care-team-status"):
        return Q(pk__in=[])
    return Q(pk__isnull=False) if value == "active" else Q(pk__in=[])


def _active_members() -> Prefetch[Any]:
    return Prefetch(
        "care_team__memberships",
        queryset=CareTeamMember.objects.filter(staff__is_active=True)
        .select_related("staff")
        .order_by("pk"),
        to_attr="active_members",
    )


@register
class CareTeamMapper(Mapper):
    resource_type = "CareTeam"
    model = pm.PatientDepartment
    interactions = READ_ONLY
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "status": SearchParam("token", _status),
    }
    sorts = {"_id": "pk"}
    default_sort = ("pk",)
    include_targets = {"patient": "Patient", "subject": "Patient"}

    def visible(self, actor: Actor) -> QuerySet[Any]:
        """The teams of every patient the actor may see, as on the staff patient header."""
        return (
            pm.PatientDepartment.objects.filter(
                patient_id__in=selectors.visible_patients(actor).values("pk")
            )
            .select_related("department", "patient", "care_team__responsible_doctor")
            .prefetch_related(_active_members())
        )

    def _participants(self, obj: Any) -> list[dict[str, Any]]:
        team = obj.care_team
        if team is None:
            return []
        out: list[dict[str, Any]] = []
        doctor = team.responsible_doctor
        if doctor is not None and doctor.is_active:
            out.append(_participant(doctor, "responsible-doctor", "Responsible doctor"))
        members = getattr(team, "active_members", None)
        if members is None:
            members = list(team.memberships.filter(staff__is_active=True).select_related("staff"))
        for m in members:
            out.append(_participant(m.staff, m.team_role, m.get_team_role_display()))
        return out

    def version_of(self, obj: Any) -> int:
        facts = [
            obj.department_id,
            obj.care_team_id,
            obj.care_team.name if obj.care_team else "",
            obj.since.isoformat() if obj.since else "",
            [(p["member"]["reference"], p["role"][0]["coding"][0]["code"])
             for p in self._participants(obj)],
        ]  # fmt: skip
        digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()
        return int(digest[:8], 16) or 1

    def last_updated(self, obj: Any) -> dt.datetime:
        if obj.since is not None:
            zone = ZoneInfo(obj.patient.time_zone or "Asia/Shanghai")
            return dt.datetime.combine(obj.since, dt.time(0), tzinfo=zone)
        return obj.patient.created_at  # type: ignore[no-any-return]

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        team = obj.care_team
        out: dict[str, Any] = {
            "status": "active",
            "category": [
                {
                    "coding": [
                        {
                            "system": c.LOINC,
                            "code": LOINC_LONGITUDINAL,
                            "display": "Longitudinal care-coordination focused care team",
                        }
                    ]
                }
            ],
            "name": team.name if team is not None else obj.department.name,
            "subject": {"reference": f"Patient/{obj.patient_id}"},
        }
        if obj.since is not None:
            out["period"] = {"start": obj.since.isoformat()}
        participants = self._participants(obj)
        if participants:
            out["participant"] = participants
        out["managingOrganization"] = [
            {"reference": f"Organization/dept-{obj.department_id}", "display": obj.department.name}
        ]
        return out


def _participant(staff: Any, code: str, display: Any) -> dict[str, Any]:
    return {
        "role": [{"coding": [{"system": TEAM_ROLE, "code": code, "display": str(display)}]}],
        "member": {
            "reference": f"Practitioner/{staff.pk}",
            "display": staff.display_name or staff.get_username(),
        },
    }

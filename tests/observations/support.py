"""A cardiology care team (responsible doctor and nurse) for patients in observation tests."""

from __future__ import annotations

from typing import Any

from careloop.accounts.models import CareTeam, CareTeamMember
from careloop.patients import models as pm


def care_team(world: Any, department: Any = None) -> CareTeam:
    department = department or world.cardio
    code = department.code
    team = CareTeam.objects.create(
        department=department, name=f"{code} team", responsible_doctor=world.staff[f"doctor.{code}"]
    )
    CareTeamMember.objects.create(
        team=team, staff=world.staff[f"nurse.{code}"], team_role=CareTeamMember.TeamRole.NURSE
    )
    return team


def join(patient: Any, team: CareTeam) -> None:
    pm.PatientDepartment.objects.filter(patient=patient, department=team.department).update(
        care_team=team
    )

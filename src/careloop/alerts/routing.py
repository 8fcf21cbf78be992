"""Who an alert is for: the patient's department and the person in the routed role."""

from __future__ import annotations

from collections.abc import Iterable

from careloop.accounts.models import CareTeamMember, Staff
from careloop.accounts.roles import Role
from careloop.alerts import models as am
from careloop.kit.clock import utc_now
from careloop.patients import models as pm


class Router:
    """Resolves (department, owner) per patient and route; `prepare` loads a batch's patients,
    teams, rota and heads in a few queries."""

    def __init__(self, organisation_id: int) -> None:
        self.organisation_id = organisation_id
        self._links: dict[int, tuple[int | None, int | None]] = {}  # patient → (dept, team)
        self._doctor: dict[int, int | None] = {}  # team → responsible doctor
        self._nurse: dict[int, int | None] = {}  # team → first active nurse
        self._on_call: dict[int, int | None] = {}
        self._head: dict[int, int | None] = {}

    def prepare(self, patient_ids: Iterable[int]) -> None:
        wanted = [pid for pid in set(patient_ids) if pid not in self._links]
        if not wanted:
            return
        rows = (
            pm.PatientDepartment.objects.filter(patient_id__in=wanted)
            .order_by("patient_id", "id")
            .values_list("patient_id", "department_id", "care_team_id")
        )
        for pid, dept, team in rows:
            self._links.setdefault(pid, (dept, team))
        for pid in wanted:
            self._links.setdefault(pid, (None, None))
        teams = {t for _d, t in self._links.values() if t is not None} - set(self._doctor)
        if teams:
            from careloop.accounts.models import CareTeam

            for team, doctor in CareTeam.objects.filter(pk__in=teams).values_list(
                "pk", "responsible_doctor_id"
            ):
                self._doctor[team] = doctor
            for team, staff in (
                CareTeamMember.objects.filter(
                    team_id__in=teams,
                    team_role=CareTeamMember.TeamRole.NURSE,
                    staff__is_active=True,
                )
                .order_by("team_id", "id")
                .values_list("team_id", "staff_id")
            ):
                self._nurse.setdefault(team, staff)
            for team in teams:
                self._nurse.setdefault(team, None)
                self._doctor.setdefault(team, None)

    def resolve(self, patient_id: int, route: str) -> tuple[int | None, int | None]:
        self.prepare([patient_id])
        department_id, team = self._links[patient_id]
        owner: int | None = None
        if route == am.Alert.Route.DOCTOR and team is not None:
            owner = self._doctor.get(team)
        elif route == am.Alert.Route.NURSE and team is not None:
            owner = self._nurse.get(team)
        elif route == am.Alert.Route.ON_CALL and department_id is not None:
            owner = self.on_call(department_id) or self.head(department_id)
        elif route == am.Alert.Route.DEPARTMENT_HEAD and department_id is not None:
            owner = self.head(department_id)
        if owner is None and route == am.Alert.Route.DOCTOR and department_id is not None:
            # No responsible doctor on the team: the department head answers for it.
            owner = self.head(department_id)
        return department_id, owner

    def on_call(self, department_id: int) -> int | None:
        if department_id not in self._on_call:
            self._on_call[department_id] = on_call(department_id)
        return self._on_call[department_id]

    def head(self, department_id: int) -> int | None:
        if department_id not in self._head:
            self._head[department_id] = head_of(department_id)
        return self._head[department_id]


def on_call(department_id: int) -> int | None:
    """The staff member on call for the department now, if the rota names one."""
    now = utc_now()
    return (
        am.OnCall.objects.filter(
            department_id=department_id, starts_at__lte=now, ends_at__gt=now, staff__is_active=True
        )
        .order_by("starts_at")
        .values_list("staff_id", flat=True)
        .first()
    )


def head_of(department_id: int) -> int | None:
    return (
        Staff.objects.filter(
            role=Role.DEPT_HEAD, memberships__department_id=department_id, is_active=True
        )
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )

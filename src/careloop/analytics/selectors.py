"""Reads behind the analytics pages: who may see which cohort, the patients behind a figure.

Scope by role (ANALYTICS_VIEW):

- organisation admin: the organisation level, any department, any doctor of the organisation;
- department head: their departments, and the doctors of their departments;
- doctor: their own care teams' patients (doctor level) and their departments;
- nurse (care coordinator): their departments.

A department or doctor outside that scope answers 404, like a patient outside it. Below the
organisation level a cohort never leaves the actor's departments, so every figure counts only
patients the actor could open. Per-staff breakdowns (completion rate per staff member…) are
shown to department heads and organisation admins only. Every dashboard view, drill-down and
export is audited; the patients of a drill-down page or an export are audited one by one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation, Staff
from careloop.accounts.roles import Action, Role
from careloop.analytics import registry
from careloop.audit import services as audit
from careloop.kit.clock import age_on
from careloop.kit.errors import NotFound
from careloop.kit.pagination import Page, to_int
from careloop.observations.models import Latest
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

ORGANISATION, DEPARTMENT, DOCTOR = "organisation", "department", "doctor"
LEVEL_LABELS: dict[str, Any] = {
    ORGANISATION: gettext_lazy("Organisation"),
    DEPARTMENT: gettext_lazy("Department"),
    DOCTOR: gettext_lazy("Doctor"),
}
# The levels each role may look at, the first being where the dashboard opens.
ROLE_LEVELS: dict[str, tuple[str, ...]] = {
    Role.ORG_ADMIN: (ORGANISATION, DEPARTMENT, DOCTOR),
    Role.DEPT_HEAD: (DEPARTMENT, DOCTOR),
    Role.DOCTOR: (DOCTOR, DEPARTMENT),
    Role.NURSE: (DEPARTMENT,),
}
# Breakdowns that name staff members: for the people who manage them.
STAFF_BREAKDOWNS = frozenset({"staff"})
STAFF_BREAKDOWN_ROLES = frozenset({Role.ORG_ADMIN, Role.DEPT_HEAD})

CONDITION_LABELS: dict[str, Any] = {
    "hypertension": gettext_lazy("Hypertension"),
    "diabetes": gettext_lazy("Diabetes"),
}
SEX_LABELS: dict[str, Any] = dict(pm.Sex.choices)
FILTER_NAMES = ("condition", "age_band", "sex", "plan", "segment")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_SEGMENT = re.compile(r"^[-\w]{1,50}$")
EARLIEST_MONTH = date(2000, 1, 1)


def require(actor: Actor, *actions: Action) -> None:
    """Refuse (403, audited) a role without the analytics permission (and the others named)."""
    for action in (Action.ANALYTICS_VIEW, *actions):
        patient_selectors.require(actor, action)


def organisation(actor: Actor) -> Organisation:
    return Organisation.objects.get(pk=actor.organisation_id or 0)


def levels(actor: Actor) -> tuple[str, ...]:
    found = ROLE_LEVELS.get(actor.role, ())
    if not actor.is_org_wide and not actor.department_ids:
        found = tuple(level for level in found if level != DEPARTMENT)
    return found


def departments(actor: Actor) -> list[Department]:
    """The departments the actor may pick."""
    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(pk__in=actor.department_ids)
    return list(qs.order_by("code"))


def doctors(actor: Actor) -> list[Staff]:
    """The doctors whose patients the actor may look at together (doctor level)."""
    if actor.role == Role.DOCTOR:
        return [actor.user]
    qs = Staff.objects.filter(
        organisation_id=actor.organisation_id or 0,
        is_active=True,
        role__in=[Role.DOCTOR, Role.DEPT_HEAD],
    )
    if not actor.is_org_wide:
        qs = qs.filter(memberships__department_id__in=actor.department_ids)
    return list(qs.distinct().order_by("display_name", "username"))


def plan_choices(actor: Actor) -> list[tuple[str, str]]:
    from careloop.careplans.models import PlanTemplate

    rows = (
        PlanTemplate.objects.filter(
            Q(organisation_id=actor.organisation_id) | Q(organisation__isnull=True)
        )
        .order_by("code")
        .values_list("code", "name", "name_en")
    )
    english = actor.user.language.startswith("en")
    seen: dict[str, str] = {}
    for code, name, name_en in rows:
        seen.setdefault(code, (name_en if english and name_en else name) or code)
    return sorted(seen.items())


def segments_available() -> bool:
    return bool(registry.SEGMENT_FILTERS)


def segment_choices(actor: Actor) -> list[tuple[str, str]]:
    """The organisation's active segments (its own and the shipped ones), code → label."""
    if not segments_available():
        return []
    from django.apps import apps

    segment = apps.get_model("segments", "Segment")
    rows = (
        segment.objects.filter(
            Q(organisation_id=actor.organisation_id) | Q(organisation__isnull=True), active=True
        )
        .order_by("code")
        .values_list("code", "name", "name_en")
    )
    english = actor.user.language.startswith("en")
    seen: dict[str, str] = {}
    for code, name, name_en in rows:
        seen.setdefault(code, (name_en if english and name_en else name) or code)
    return sorted(seen.items())


@dataclass
class Selection:
    """What the dashboard shows: level, department, doctor, filters and month, validated."""

    level: str
    month: date
    today: date  # the organisation's today
    department: Department | None = None
    doctor: Staff | None = None
    filters: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cohort: registry.Cohort | None = None

    def valid_cohort(self) -> registry.Cohort:
        if self.cohort is None:
            raise ValueError("the selection has errors: " + "; ".join(self.errors))
        return self.cohort

    def query(self, **override: Any) -> dict[str, str]:
        """The selection as query parameters (for links that keep it)."""
        params: dict[str, str] = {"level": self.level, "month": self.month.strftime("%Y-%m")}
        if self.department is not None:
            params["department"] = str(self.department.pk)
        if self.doctor is not None:
            params["doctor"] = str(self.doctor.pk)
        params.update({k: v for k, v in self.filters.items() if v})
        params.update({k: str(v) for k, v in override.items()})
        return params

    def audit_detail(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "month": self.month.strftime("%Y-%m"),
            "department": self.department.pk if self.department else None,
            "doctor": self.doctor.pk if self.doctor else None,
            "filters": {k: v for k, v in self.filters.items() if v},
        }

    @property
    def months(self) -> list[date]:
        """The 12 months ending with the selected one (trends)."""
        return registry.last_months(self.month, 12)


def parse_month(value: str, today: date) -> tuple[date | None, str]:
    match = _MONTH.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None, _("Give the month as YYYY-MM, e.g. %(example)s.") % {
            "example": today.strftime("%Y-%m")
        }
    month = date(int(match.group(1)), int(match.group(2)), 1)
    if month > registry.month_of(today):
        return None, _("The month %(month)s has not begun yet.") % {"month": value.strip()}
    if month < EARLIEST_MONTH:
        return None, _("Choose a month from %(first)s on.") % {
            "first": EARLIEST_MONTH.strftime("%Y-%m")
        }
    return month, ""


def _pick(actor: Actor, raw: str, choices: list[Any], what: Any) -> tuple[Any | None, str]:
    """A department or doctor by id from the actor's choices: None with a message when the
    value is no number, NotFound (404) when it is outside the actor's scope."""
    number = to_int(raw, -1, low=-1, high=2**62)
    if number < 1:
        return None, _("%(what)s: choose one from the list.") % {"what": what}
    for choice in choices:
        if choice.pk == number:
            return choice, ""
    audit.record_denied(
        actor, "analytics.view", detail={"reason": "scope", "field": str(what), "id": number}
    )
    raise NotFound()


def select(actor: Actor, params: Mapping[str, Any]) -> Selection:
    """Validate the query of an analytics page into a Selection with its Cohort.

    Unreadable values become messages (the page says what to fix); a level, department or
    doctor outside the actor's scope raises NotFound."""
    org = organisation(actor)
    today = registry.Cohort(org.pk, org.time_zone).local_today()
    errors: list[str] = []
    allowed = levels(actor)
    if not allowed:
        audit.record_denied(actor, "analytics.view", detail={"reason": "scope"})
        raise NotFound()
    level = str(params.get("level") or allowed[0])
    if level not in LEVEL_LABELS:
        errors.append(_("Unknown level %(value)s.") % {"value": level[:40]})
        level = allowed[0]
    elif level not in allowed:
        audit.record_denied(actor, "analytics.view", detail={"reason": "scope", "level": level})
        raise NotFound()

    month = registry.month_of(today)
    if params.get("month"):
        parsed, problem = parse_month(str(params["month"]), today)
        if parsed is None:
            errors.append(problem)
        else:
            month = parsed

    department = None
    dept_choices = departments(actor)
    raw_dept = str(params.get("department") or "")
    if raw_dept:
        department, problem = _pick(actor, raw_dept, dept_choices, _("Department"))
        if problem:
            errors.append(problem)
    elif level == DEPARTMENT and dept_choices:
        department = dept_choices[0]

    doctor = None
    doctor_choices = doctors(actor)
    raw_doctor = str(params.get("doctor") or "")
    if level == DOCTOR:
        if raw_doctor:
            doctor, problem = _pick(actor, raw_doctor, doctor_choices, _("Doctor"))
            if problem:
                errors.append(problem)
        elif actor.role == Role.DOCTOR:
            doctor = actor.user
        elif doctor_choices:
            doctor = doctor_choices[0]
        else:
            errors.append(_("There is no doctor to show."))

    filters: dict[str, str] = {}
    for name in FILTER_NAMES:
        filters[name] = str(params.get(name) or "").strip()
    if filters["condition"] and filters["condition"] not in registry.CONDITION_PREFIXES:
        errors.append(_("Unknown condition %(value)s.") % {"value": filters["condition"][:40]})
    if filters["age_band"] and filters["age_band"] not in registry.AGE_BANDS:
        errors.append(
            _("Unknown age band %(value)s; choose one of %(bands)s.")
            % {"value": filters["age_band"][:40], "bands": ", ".join(registry.AGE_BANDS)}
        )
    if filters["sex"] and filters["sex"] not in SEX_LABELS:
        errors.append(_("Unknown sex %(value)s.") % {"value": filters["sex"][:40]})
    if filters["plan"] and filters["plan"] not in dict(plan_choices(actor)):
        errors.append(_("Unknown care plan %(value)s.") % {"value": filters["plan"][:50]})
    if filters["segment"]:
        if not segments_available():
            errors.append(_("Patient segments are not available yet."))
        elif not _SEGMENT.match(filters["segment"]) or filters["segment"] not in dict(
            segment_choices(actor)
        ):
            errors.append(_("Unknown segment %(value)s.") % {"value": filters["segment"][:50]})

    selection = Selection(
        level=level,
        month=month,
        today=today,
        department=department,
        doctor=doctor,
        filters=filters,
        errors=errors,
    )
    if not errors:
        selection.cohort = _cohort(actor, org, selection)
    return selection


def _cohort(actor: Actor, org: Organisation, s: Selection) -> registry.Cohort:
    if s.department is not None:
        department_ids: tuple[int, ...] | None = (s.department.pk,)
    elif actor.is_org_wide:
        department_ids = None
    else:
        department_ids = tuple(sorted(actor.department_ids))
    return registry.Cohort(
        organisation_id=org.pk,
        time_zone=org.time_zone,
        department_ids=department_ids,
        doctor_id=s.doctor.pk if s.doctor is not None else None,
        condition=s.filters.get("condition", ""),
        age_band=s.filters.get("age_band", ""),
        sex=s.filters.get("sex", ""),
        plan=s.filters.get("plan", ""),
        segment=s.filters.get("segment", ""),
    )


def metric(key: str) -> registry.Metric:
    found = registry.all_metrics().get(key)
    if found is None:
        raise NotFound()
    return found


def drill_part(m: registry.Metric, part_key: str) -> registry.Part:
    """The part of a metric one may drill into; NotFound otherwise."""
    for part in m.parts:
        if part.key == part_key and part.drill and m.patients is not None:
            return part
    raise NotFound()


def visible_breakdowns(actor: Actor, m: registry.Metric) -> list[str]:
    return [
        name
        for name in m.breakdowns
        if name not in STAFF_BREAKDOWNS or actor.role in STAFF_BREAKDOWN_ROLES
    ]


# --- drill-down ---------------------------------------------------------------------------


@dataclass
class PatientRow:
    patient: pm.Patient
    age: int
    departments: list[str]
    last_bp: str
    last_bp_on: date | None


def _patient_ids(
    actor: Actor, m: registry.Metric, s: Selection, part: registry.Part, q: str
) -> list[int]:
    """The ids behind the part, visible to the actor, matching `q`, ordered by name then id."""
    if m.patients is None:
        return []
    behind = set(m.patients(s.valid_cohort(), s.month, part.key))
    if not behind:
        return []
    # One query over the actor's patients (ids and names only), then a set intersection: no
    # IN list of unbounded length, the same on SQLite and PostgreSQL.
    rows = patient_selectors.visible_patients(actor).values_list("pk", "name", "record_number")
    needle = q.strip().casefold()
    found = [
        (name, pk)
        for pk, name, record in rows.iterator(chunk_size=5000)
        if pk in behind
        and (not needle or needle in name.casefold() or needle == (record or "").casefold())
    ]
    found.sort()
    return [pk for _name, pk in found]


CHUNK = 500  # ids per IN list (SQLite's limit on query parameters)


def _rows(actor: Actor, ids: list[int], today: date) -> list[PatientRow]:
    patients: dict[int, pm.Patient] = {}
    names: dict[int, list[str]] = {}
    bps: dict[int, Latest] = {}
    language = actor.user.language
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        patients.update((p.pk, p) for p in pm.Patient.objects.filter(pk__in=chunk))
        links = pm.PatientDepartment.objects.filter(patient_id__in=chunk).select_related(
            "department"
        )
        for link in links.order_by("department__code"):
            names.setdefault(link.patient_id, []).append(link.department.label(language))
        bps.update(
            (row.patient_id, row)
            for row in Latest.objects.filter(patient_id__in=chunk, kind="bp", last_at__isnull=False)
        )
    tz = registry.Cohort(actor.organisation_id or 0, organisation(actor).time_zone).tz
    out = []
    for pk in ids:
        p = patients[pk]
        bp = bps.get(pk)
        text = ""
        on = None
        if bp is not None and bp.value is not None and bp.value2 is not None and bp.last_at:
            text = f"{bp.value:.0f}/{bp.value2:.0f}"
            on = bp.last_at.astimezone(tz).date()
        out.append(PatientRow(p, age_on(p.date_of_birth, today), names.get(pk, []), text, on))
    return out


def drill_down(
    actor: Actor,
    m: registry.Metric,
    part: registry.Part,
    s: Selection,
    *,
    q: str = "",
    page: Any = 1,
    size: Any = 25,
) -> Page:
    """One page of the patients behind a part, each one audited as shown."""
    ids = _patient_ids(actor, m, s, part, q)
    size_n = to_int(size, 25, low=1, high=200)
    pages = max(1, -(-len(ids) // size_n))
    number = to_int(page, 1, low=1, high=pages)
    shown = ids[(number - 1) * size_n : number * size_n]
    detail = {
        "metric": m.key,
        "part": part.key,
        **s.audit_detail(),
        "q": bool(q.strip()),
        "results": len(ids),
        "page": number,
    }
    audit.record(actor, "analytics.drilldown", detail={**detail, "shown": len(shown)})
    for pk in shown:
        audit.record(
            actor,
            "analytics.drilldown.patient",
            patient_id=pk,
            detail={"metric": m.key, "part": part.key, "month": detail["month"]},
        )
    today = s.today
    return Page(items=_rows(actor, shown, today), number=number, size=size_n, total=len(ids))


def drill_down_export(
    actor: Actor, m: registry.Metric, part: registry.Part, s: Selection, q: str, fmt: str
) -> list[PatientRow]:
    """Every patient behind a part for a download; the export and each row are audited."""
    ids = _patient_ids(actor, m, s, part, q)
    detail = {"metric": m.key, "part": part.key, **s.audit_detail(), "format": fmt}
    audit.record(actor, "analytics.export", detail={**detail, "rows": len(ids)})
    for pk in ids:
        audit.record(
            actor,
            "analytics.export.patient",
            patient_id=pk,
            detail={"metric": m.key, "part": part.key, "month": detail["month"], "format": fmt},
        )
    today = s.today
    return _rows(actor, ids, today)

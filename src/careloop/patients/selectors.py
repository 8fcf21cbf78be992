"""Every read of the patient record, scoped to the acting user and audited."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Exists, OuterRef, Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import Forbidden, NotFound
from careloop.kit.identifiers import icd10_category, normalise_phone, normalise_resident_id
from careloop.kit.pagination import Page, paginate
from careloop.patients import models as m
from careloop.patients.records import KINDS, RecordKind


class PatientMerged(NotFound):
    code = "merged"


def require(actor: Actor, action: Action, *, patient_id: int | None = None) -> None:
    """Refuse (403, audited) an action the actor's role does not allow."""
    if not actor.can(action):
        audit.record_denied(actor, str(action), patient_id=patient_id, detail={"reason": "role"})
        raise Forbidden()


def visible_patients(actor: Actor) -> QuerySet[m.Patient]:
    """Active patients of the actor's organisation that the actor's departments look after."""
    org = actor.organisation_id
    if org is None:
        return m.Patient.objects.none()
    qs = m.Patient.objects.filter(organisation_id=org, merged_into__isnull=True)
    bound = getattr(actor, "bound_patient_id", None)  # an API token with patient/ scopes
    if bound is not None:
        qs = qs.filter(pk=bound)
    if not actor.is_org_wide:
        qs = qs.filter(
            Exists(
                m.PatientDepartment.objects.filter(
                    patient=OuterRef("pk"), department_id__in=actor.department_ids
                )
            )
        )
    return qs


def get_patient(
    actor: Actor, patient_id: int, *, action: Action = Action.PATIENT_VIEW, audit_read: bool = True
) -> m.Patient:
    """The patient if the actor may see them; NotFound (404) otherwise, audited either way."""
    require(actor, action, patient_id=patient_id)
    patient = visible_patients(actor).filter(pk=patient_id).first()
    if patient is None:
        audit.record_denied(
            actor, "patient.read", patient_id=patient_id, detail={"reason": "scope"}
        )
        merged = (
            m.Patient.objects.filter(pk=patient_id, organisation_id=actor.organisation_id or 0)
            .exclude(merged_into=None)
            .values_list("merged_into_id", flat=True)
            .first()
        )
        if merged and visible_patients(actor).filter(pk=merged).exists():
            raise PatientMerged(details={"merged_into": merged})
        raise NotFound()
    if audit_read:
        audit.record(actor, "patient.read", patient_id=patient.pk, obj=patient)
    return patient


SORTS = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "age": ("-date_of_birth", "id"),
    "-age": ("date_of_birth", "id"),
    "created": ("created_at", "id"),
    "-created": ("-created_at", "-id"),
    "updated": ("updated_at", "id"),
    "-updated": ("-updated_at", "-id"),
}
DEFAULT_SORT = "-updated"


@dataclass
class Criteria:
    q: str = ""
    phone_tail: str = ""
    phone: str = ""
    national_id: str = ""
    condition: str = ""
    department: int | None = None
    sex: str = ""
    age_min: int | None = None
    age_max: int | None = None
    sort: str = DEFAULT_SORT
    page: Any = 1
    size: Any = 25
    used: list[str] = field(default_factory=list)


def _years_ago(years: int, today: date) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _interpret_q(c: Criteria) -> None:
    """One search box: a 4-digit tail, a phone, an ID number, a code, or a name."""
    q = c.q.strip()
    if not q:
        return
    digits = re.sub(r"\D", "", q)
    if re.fullmatch(r"\d{4}", q):
        c.phone_tail = q
    elif re.fullmatch(r"\d{17}[\dXx]", q):
        c.national_id = q
    elif normalise_phone(q) and len(digits) >= 7:
        c.phone = q
    elif icd10_category(q.upper()):
        c.condition = q
    else:
        return
    c.q = ""


def search_patients(actor: Actor, c: Criteria) -> Page:
    require(actor, Action.PATIENT_SEARCH)
    _interpret_q(c)
    qs = visible_patients(actor)
    today = utc_now().date()
    if c.q:
        c.used.append("q")
        qs = qs.filter(Q(name__icontains=c.q.strip()) | Q(record_number=c.q.strip()))
    if c.phone_tail:
        c.used.append("phone_tail")
        tail = re.sub(r"\D", "", c.phone_tail)[-4:]
        # Driven from the phone index: few phones share a tail, however many patients there are.
        qs = qs.filter(
            pk__in=m.PatientPhone.objects.filter(
                organisation_id=actor.organisation_id or 0,
                tail_index=blind_index("phone_tail", tail),
            ).values("patient_id")
        )
    if c.phone:
        c.used.append("phone")
        number = normalise_phone(c.phone) or c.phone
        qs = qs.filter(
            pk__in=m.PatientPhone.objects.filter(
                organisation_id=actor.organisation_id or 0,
                number_index=blind_index("phone", number),
            ).values("patient_id")
        )
    if c.national_id:
        c.used.append("national_id")
        qs = qs.filter(
            national_id_index=blind_index("national_id", normalise_resident_id(c.national_id))
        )
    if c.condition:
        c.used.append("condition")
        term = c.condition.strip()
        code_q = Q(icd10_code__istartswith=term) if icd10_category(term.upper()) else Q()
        qs = qs.filter(
            Exists(
                m.Condition.objects.filter(patient=OuterRef("pk"), deleted_at__isnull=True).filter(
                    code_q | Q(display__icontains=term)
                )
            )
        )
    if c.department:
        c.used.append("department")
        qs = qs.filter(
            Exists(
                m.PatientDepartment.objects.filter(
                    patient=OuterRef("pk"), department_id=c.department
                )
            )
        )
    if c.sex:
        c.used.append("sex")
        qs = qs.filter(sex=c.sex)
    if c.age_min is not None:
        c.used.append("age_min")
        qs = qs.filter(date_of_birth__lte=_years_ago(c.age_min, today))
    if c.age_max is not None:
        c.used.append("age_max")
        qs = qs.filter(date_of_birth__gt=_years_ago(c.age_max + 1, today))
    order = SORTS.get(c.sort, SORTS[DEFAULT_SORT])
    page = paginate(qs.order_by(*order), c.page, c.size)
    audit.record(
        actor, "patient.search", detail={"criteria": sorted(c.used), "results": page.total}
    )
    return page


def kind_of(key: str) -> RecordKind:
    try:
        return KINDS[key]
    except KeyError:
        raise NotFound() from None


def list_records(
    actor: Actor, patient_id: int, key: str, *, include_deleted: bool = False
) -> tuple[m.Patient, list[Any]]:
    kind = kind_of(key)
    require(actor, kind.view_action, patient_id=patient_id)
    patient = get_patient(actor, patient_id, audit_read=False)
    qs = kind.model._default_manager.filter(patient=patient)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    if kind.model is m.Encounter:
        qs = qs.select_related("department")  # type: ignore[misc]  # only Encounter has it
    rows = list(qs.order_by(*kind.ordering)[:500])
    audit.record(
        actor,
        f"{kind.key}.read",
        patient_id=patient.pk,
        object_type=kind.model._meta.label_lower,
        detail={"count": len(rows)},
    )
    return patient, rows


def get_record(actor: Actor, patient_id: int, key: str, record_id: int) -> tuple[m.Patient, Any]:
    kind = kind_of(key)
    require(actor, kind.view_action, patient_id=patient_id)
    patient = get_patient(actor, patient_id, audit_read=False)
    row = live_row(actor, kind, patient, record_id, "read")
    audit.record(actor, f"{kind.key}.read", patient_id=patient.pk, obj=row)
    return patient, row


def live_row(
    actor: Actor,
    kind: RecordKind,
    patient: m.Patient,
    record_id: int,
    verb: str,
    *,
    lock: bool = False,
) -> Any:
    """A live row of this (already authorised) patient; NotFound, audited, if none."""
    qs = kind.model._default_manager.filter(patient=patient, pk=record_id, deleted_at__isnull=True)
    row = (qs.select_for_update() if lock else qs).first()
    if row is None:
        audit.record_denied(
            actor,
            f"{kind.key}.{verb}",
            patient_id=patient.pk,
            object_id=record_id,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return row


def allergies_banner(patient: m.Patient) -> list[m.Allergy]:
    """Active allergies for the banner of a patient the caller has already authorised."""
    return list(
        m.Allergy.objects.filter(patient=patient, deleted_at__isnull=True).order_by(
            "-severity", "substance"
        )
    )


def header(patient: m.Patient) -> dict[str, Any]:
    """Header facts for an authorised patient: conditions, departments, care team."""
    links = list(
        m.PatientDepartment.objects.filter(patient=patient).select_related(
            "department", "care_team", "care_team__responsible_doctor"
        )
    )
    conditions = list(
        m.Condition.objects.filter(
            patient=patient, deleted_at__isnull=True, status=m.Condition.Status.ACTIVE
        ).order_by("icd10_code")
    )
    phones = list(m.PatientPhone.objects.filter(patient=patient).order_by("position"))
    return {
        "links": links,
        "conditions": conditions,
        "phones": [p.number for p in phones],
        "allergies": allergies_banner(patient),
    }


def timeline(
    actor: Actor, patient_id: int, limit: int = 200
) -> tuple[m.Patient, list[dict[str, Any]]]:
    """Everything that happened to the record, newest first."""
    require(actor, Action.CLINICAL_VIEW, patient_id=patient_id)
    patient = get_patient(actor, patient_id, audit_read=False)
    events: list[dict[str, Any]] = []
    versions = (
        m.RecordVersion.objects.filter(patient=patient)
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )
    for v in versions:
        label = (
            KINDS[v.kind].model._meta.verbose_name
            if v.kind in KINDS
            else m.Patient._meta.verbose_name
        )
        events.append(
            {
                "at": v.at,
                "kind": v.kind,
                "change": v.change,
                "label": label,
                "object_id": v.object_id,
                "version": v.version,
                "actor": str(v.actor) if v.actor else "",
                "summary": _summary(v.kind, v.snapshot),
            }
        )
    for enc in m.Encounter.objects.filter(patient=patient, deleted_at__isnull=True).select_related(
        "department"
    ):
        events.append(
            {
                "at": None,
                "date": enc.admitted_on,
                "kind": "visit",
                "change": "visit",
                "label": enc.get_kind_display(),
                "object_id": enc.pk,
                "actor": enc.attending,
                "summary": f"{enc.department} · {enc.diagnoses}",
            }
        )
    events.sort(key=lambda e: (e.get("date") or e["at"].date(), e["at"] is not None), reverse=True)
    audit.record(actor, "timeline.read", patient_id=patient.pk)
    return patient, events[:limit]


def _summary(kind: str, snap: dict[str, Any]) -> str:
    model = KINDS[kind].model if kind in KINDS else m.Patient
    for key in ("display", "substance", "name", "description", "title", "purpose", "kind"):
        if snap.get(key):
            # A choice is shown by its label ("Care reminders"), not its stored value.
            try:
                choices = dict(getattr(model._meta.get_field(key), "flatchoices", None) or [])
            except FieldDoesNotExist:
                choices = {}
            return str(choices.get(snap[key], snap[key]))
    return ""

"""Every write to the record: validated, scoped, versioned and audited in one transaction."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.forms import BaseForm, BaseModelForm, DateField
from django.forms.models import construct_instance
from django.utils.translation import gettext_lazy as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import DuplicatePatient, StaleVersion, ValidationFailed
from careloop.patients import forms as f
from careloop.patients import models as m
from careloop.patients import selectors, signals
from careloop.patients.records import KINDS, plain, serialise, snapshot
from careloop.patients.selectors import require

PATIENT_FIELDS: list[str] = list(f.PatientForm.Meta.fields)


def form_errors(form: BaseForm) -> dict[str, list[str]]:
    return {name: [str(e) for e in errs] for name, errs in form.errors.items()}


def _registered_on(data: dict[str, Any]) -> date | None:
    """The optional "registered_on" of new-patient input (a date or "YYYY-MM-DD"; not in the
    future). None when absent: the patient is then registered today, in the organisation's
    time zone (Patient.save)."""
    raw = data.get("registered_on")
    if raw in (None, ""):
        return None
    try:
        value = DateField().clean(raw)
        f._not_future(value)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"registered_on": [str(m) for m in exc.messages]}) from exc
    return value  # type: ignore[no-any-return]


def _validate(form: BaseModelForm) -> BaseModelForm:
    if not form.is_valid():
        raise ValidationFailed(details=form_errors(form))
    return form


def _with_current(instance: Any, fields: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: what the client sent laid over the record's current values."""
    merged: dict[str, Any] = {}
    for name in fields:
        if name == "phones":
            merged[name] = [p.number for p in instance.phones.all()] if instance.pk else []
            continue
        if name == "file":
            continue
        field = instance._meta.get_field(name)
        value = getattr(instance, field.attname) if field.is_relation else getattr(instance, name)
        merged[name] = value if isinstance(value, list | dict) else plain(value)
    for key, value in data.items():
        if key in fields:
            merged[key] = value
    return merged


def _version_row(
    actor: Actor, patient: m.Patient, kind: str, obj: Any, change: str, fields: list[str]
) -> None:
    m.RecordVersion.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind=kind,
        object_id=obj.pk,
        version=obj.version,
        change=change,
        snapshot=snapshot(obj, fields),
        at=utc_now(),
        actor=actor.user,
    )


def _stale(kind: str, obj: Any, expected: int, fields: list[str]) -> StaleVersion:
    """Say what changed between the version the client had and the current one."""
    base = (
        m.RecordVersion.objects.filter(kind=kind, object_id=obj.pk, version=expected)
        .values_list("snapshot", flat=True)
        .first()
    ) or {}
    now = snapshot(obj, fields)
    changed = {
        name: {"was": base.get(name), "now": serialise(obj, [name])[name]}
        for name in fields
        if name in now and base.get(name) != now.get(name)
    }
    return StaleVersion(
        details={
            "your_version": expected,
            "current_version": obj.version,
            "changed": changed,
            "changed_by": str(obj.updated_by or ""),
            "changed_at": plain(obj.updated_at),
        }
    )


def _require_version(expected: Any) -> int:
    try:
        return int(expected)
    except (TypeError, ValueError):
        raise ValidationFailed(
            details={"version": [str(_("The version of the record you edited is required."))]}
        ) from None


# --- patients -------------------------------------------------------------------------------


def _department_for(actor: Actor, department_id: Any) -> Department:
    """The department a new patient joins: one of the actor's own (any, for org admins)."""
    qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
    if not actor.is_org_wide:
        qs = qs.filter(pk__in=actor.department_ids)
    if department_id not in (None, ""):
        dept = qs.filter(pk=department_id).first()
    else:
        dept = qs.order_by("pk").first()
    if dept is None:
        raise ValidationFailed(
            details={"department": [str(_("Choose one of your own departments."))]}
        )
    return dept


def _save_phones(patient: m.Patient, numbers: list[str], *, new: bool = False) -> None:
    if not new:
        if [p.number for p in patient.phones.all()] == numbers:
            return
        patient.phones.all().delete()
    for i, number in enumerate(numbers):
        m.PatientPhone.objects.create(
            patient=patient, organisation_id=patient.organisation_id, number=number, position=i
        )


def find_duplicates(organisation_id: int, data: dict[str, Any]) -> tuple[str, m.Patient] | None:
    """An existing patient with the same ID number, or the same name, birth date and phone."""
    active = m.Patient.objects.filter(organisation_id=organisation_id, merged_into__isnull=True)
    if data.get("national_id"):
        same = active.filter(national_id_index=blind_index("national_id", data["national_id"]))
        if first := same.first():
            return "national_id", first
    phones = [blind_index("phone", p) for p in data.get("phones", [])]
    if phones:
        same = active.filter(
            name=data["name"], date_of_birth=data["date_of_birth"], phones__number_index__in=phones
        )
        if first := same.first():
            return "name_dob_phone", first
    return None


def create_patient(
    actor: Actor,
    data: dict[str, Any],
    *,
    department_id: Any = None,
    link_existing: bool = False,
    allow_duplicate: bool = False,
) -> m.Patient:
    require(actor, Action.PATIENT_CREATE)
    org = actor.user.organisation
    initial = {
        "time_zone": org.time_zone if org else "Asia/Shanghai",
        "sex": m.Sex.UNKNOWN,
        "preferred_language": "zh-hans",
        **data,
    }
    form = _validate(f.PatientForm(initial))
    registered_on = _registered_on(data)
    department = _department_for(actor, department_id)
    clean = form.cleaned_data
    with transaction.atomic():
        dup = find_duplicates(actor.organisation_id or 0, clean)
        if dup:
            match, existing = dup
            visible = selectors.visible_patients(actor).filter(pk=existing.pk).exists()
            if match == "national_id" and link_existing:
                return _link(actor, existing, department)
            if match == "national_id" or not allow_duplicate:
                audit.record(
                    actor,
                    "patient.create",
                    outcome="failure",
                    patient_id=existing.pk,
                    detail={"reason": "duplicate", "match": match},
                )
                raise DuplicatePatient(
                    _("A patient with this ID number is already registered in this organisation.")
                    if match == "national_id"
                    else _(
                        "A patient with the same name, date of birth and phone is already "
                        "registered. Confirm to register a separate person."
                    ),
                    details={
                        "match": match,
                        "existing_id": existing.pk if visible else None,
                        "can_link": match == "national_id",
                        "can_confirm": match != "national_id",
                    },
                )
        return _register(
            actor, form, department, {"department": department.pk}, registered_on=registered_on
        )


def _register(
    actor: Actor,
    form: Any,
    department: Department,
    detail: dict[str, Any],
    *,
    registered_on: date | None = None,
) -> m.Patient:
    """Save a validated new patient in the actor's organisation and department, versioned and
    audited (inside the caller's transaction)."""
    patient = form.save(commit=False)
    patient.organisation_id = actor.organisation_id
    patient.registered_on = registered_on
    patient.created_by = patient.updated_by = actor.user
    patient.save()
    _save_phones(patient, form.cleaned_data["phones"], new=True)
    m.PatientDepartment.objects.create(
        patient=patient, department=department, since=utc_now().date()
    )
    _version_row(actor, patient, "patient", patient, "create", PATIENT_FIELDS)
    audit.record(actor, "patient.create", patient_id=patient.pk, obj=patient, detail=detail)
    return patient


def _link(actor: Actor, patient: m.Patient, department: Department) -> m.Patient:
    """Bring an existing record into the actor's department: one record, not a copy."""
    _, created = m.PatientDepartment.objects.get_or_create(
        patient=patient, department=department, defaults={"since": utc_now().date()}
    )
    audit.record(
        actor,
        "patient.link",
        patient_id=patient.pk,
        obj=patient,
        detail={"department": department.pk, "new": created},
    )
    return patient


def update_patient(actor: Actor, patient_id: int, data: dict[str, Any], expected: Any) -> m.Patient:
    require(actor, Action.PATIENT_UPDATE, patient_id=patient_id)
    expected_version = _require_version(expected)
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    form = _validate(f.PatientForm(_with_current(patient, PATIENT_FIELDS, data), instance=patient))
    with transaction.atomic():
        locked = m.Patient.objects.select_for_update().get(pk=patient.pk)
        if locked.version != expected_version:
            raise _stale("patient", locked, expected_version, PATIENT_FIELDS)
        before = snapshot(locked, PATIENT_FIELDS)
        construct_instance(form, locked, fields=[n for n in PATIENT_FIELDS if n != "phones"])
        locked.version += 1
        locked.updated_by = actor.user
        locked.save()
        _save_phones(locked, form.cleaned_data["phones"])
        after = snapshot(locked, PATIENT_FIELDS)
        changed = sorted(
            k for k in after if k not in ("version", "id") and before.get(k) != after[k]
        )
        _version_row(actor, locked, "patient", locked, "update", PATIENT_FIELDS)
        audit.record(
            actor, "patient.update", patient_id=locked.pk, obj=locked, detail={"fields": changed}
        )
        signals.patient_changed.send(
            sender=m.Patient, actor=actor, patient=locked, fields=changed, change="update"
        )
    return locked


def merge_patients(
    actor: Actor, keep_id: int, drop_id: int, expected_drop_version: Any
) -> m.Patient:
    """Fold a duplicate record into the one kept; the duplicate stays, pointing at it."""
    require(actor, Action.PATIENT_MERGE, patient_id=keep_id)
    expected_version = _require_version(expected_drop_version)
    if int(keep_id) == int(drop_id):
        raise ValidationFailed(details={"other": [str(_("Choose a different patient."))]})
    keep = selectors.get_patient(actor, keep_id, audit_read=False)
    drop = selectors.get_patient(actor, drop_id, audit_read=False)
    with transaction.atomic():
        keep = m.Patient.objects.select_for_update().get(pk=keep.pk)
        drop = m.Patient.objects.select_for_update().get(pk=drop.pk)
        if drop.version != expected_version:
            raise _stale("patient", drop, expected_version, PATIENT_FIELDS)
        moved: dict[str, int] = {}
        for kind in KINDS.values():
            moved[kind.key] = kind.model._default_manager.filter(patient=drop).update(patient=keep)
        m.RecordVersion.objects.filter(patient=drop).update(patient=keep)
        keep_depts = set(keep.department_links.values_list("department_id", flat=True))
        for link in drop.department_links.all():
            if link.department_id not in keep_depts:
                m.PatientDepartment.objects.create(
                    patient=keep,
                    department_id=link.department_id,
                    care_team_id=link.care_team_id,
                    since=link.since,
                )
        numbers = [p.number for p in keep.phones.all()]
        extra = [p.number for p in drop.phones.all() if p.number not in numbers]
        _save_phones(keep, (numbers + extra)[: f.MAX_PHONES])
        for name in ("national_id", "address", "record_number"):
            if not getattr(keep, name) and getattr(drop, name):
                setattr(keep, name, getattr(drop, name))
        keep.version += 1
        keep.updated_by = actor.user
        keep.save()
        drop.merged_into = keep
        drop.version += 1
        drop.updated_by = actor.user
        drop.save()
        _version_row(actor, keep, "patient", keep, "merge", PATIENT_FIELDS)
        _version_row(actor, drop, "patient", drop, "merge", PATIENT_FIELDS)
        audit.record(
            actor,
            "patient.merge",
            patient_id=keep.pk,
            obj=keep,
            detail={"merged": drop.pk, "moved": moved},
        )
        audit.record(actor, "patient.merge", patient_id=drop.pk, obj=drop, detail={"into": keep.pk})
    return keep


# --- rows of the record ---------------------------------------------------------------------


def _with_defaults(kind_model: Any, fields: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """Fields a client left out take the model's default (e.g. a condition is active)."""
    filled = dict(data)
    for name in fields:
        field = kind_model._meta.get_field(name)
        if name not in filled and field.has_default() and not callable(field.default):
            filled[name] = field.default
    return filled


def _record_form(
    kind_key: str,
    actor: Actor,
    data: dict[str, Any],
    files: Any = None,
    instance: Any = None,
    patient_id: int | None = None,
) -> BaseModelForm:
    kind = selectors.kind_of(kind_key)
    if instance is None:
        data = _with_defaults(kind.model, kind.fields, data)
    kwargs: dict[str, Any] = {"instance": instance}
    if kind.model is m.Encounter:
        kwargs["organisation_id"] = actor.organisation_id
    if kind.model is m.Dispense:
        kwargs["patient_id"] = patient_id  # only this patient's prescriptions can be filled
    return kind.form(data, files, **kwargs)


def _store_upload(row: Any, form: BaseForm) -> None:
    upload = form.cleaned_data.get("file")
    if upload and hasattr(upload, "content_type"):
        row.file_name = upload.name[:200]
        row.content_type = upload.content_type
        row.size = upload.size


def add_record(
    actor: Actor, patient_id: int, kind_key: str, data: dict[str, Any], files: Any = None
) -> Any:
    kind = selectors.kind_of(kind_key)
    require(actor, kind.write_action, patient_id=patient_id)
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    form = _validate(_record_form(kind_key, actor, data, files, patient_id=patient.pk))
    with transaction.atomic():
        row = form.save(commit=False)
        row.organisation_id = patient.organisation_id
        row.patient = patient
        row.created_by = row.updated_by = actor.user
        if kind.model is m.Report:
            _store_upload(row, form)
        row.save()
        _version_row(actor, patient, kind.key, row, "create", kind.fields)
        audit.record(actor, f"{kind.key}.create", patient_id=patient.pk, obj=row)
        signals.record_changed.send(
            sender=kind.model, actor=actor, patient=patient, kind=kind.key, row=row, change="create"
        )
    return row


def update_record(
    actor: Actor,
    patient_id: int,
    kind_key: str,
    record_id: int,
    data: dict[str, Any],
    expected: Any,
    files: Any = None,
) -> Any:
    kind = selectors.kind_of(kind_key)
    require(actor, kind.write_action, patient_id=patient_id)
    expected_version = _require_version(expected)
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    row = selectors.live_row(actor, kind, patient, record_id, "update")
    form = _validate(
        _record_form(
            kind_key,
            actor,
            _with_current(row, kind.fields, data),
            files,
            instance=row,
            patient_id=patient.pk,
        )
    )
    with transaction.atomic():
        locked = kind.model._default_manager.select_for_update().get(pk=row.pk)
        if locked.version != expected_version:
            raise _stale(kind.key, locked, expected_version, kind.fields)
        before = snapshot(locked, kind.fields)
        construct_instance(form, locked, fields=kind.fields)
        if kind.model is m.Report:
            _store_upload(locked, form)
        locked.version += 1
        locked.updated_by = actor.user
        locked.save()
        after = snapshot(locked, kind.fields)
        _version_row(actor, patient, kind.key, locked, "update", kind.fields)
        audit.record(
            actor,
            f"{kind.key}.update",
            patient_id=patient.pk,
            obj=locked,
            detail={
                "fields": sorted(k for k in after if k != "version" and before.get(k) != after[k])
            },
        )
        signals.record_changed.send(
            sender=kind.model,
            actor=actor,
            patient=patient,
            kind=kind.key,
            row=locked,
            change="update",
        )
    return locked


def delete_record(
    actor: Actor, patient_id: int, kind_key: str, record_id: int, expected: Any
) -> Any:
    """Mark a row as entered in error: hidden, kept, versioned."""
    kind = selectors.kind_of(kind_key)
    require(actor, kind.write_action, patient_id=patient_id)
    expected_version = _require_version(expected)
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    with transaction.atomic():
        row = selectors.live_row(actor, kind, patient, record_id, "delete", lock=True)
        if row.version != expected_version:
            raise _stale(kind.key, row, expected_version, kind.fields)
        row.deleted_at = utc_now()
        row.version += 1
        row.updated_by = actor.user
        row.save()
        _version_row(actor, patient, kind.key, row, "delete", kind.fields)
        audit.record(actor, f"{kind.key}.delete", patient_id=patient.pk, obj=row)
        signals.record_changed.send(
            sender=kind.model, actor=actor, patient=patient, kind=kind.key, row=row, change="delete"
        )
    return row


# --- registration by a hospital feed (HL7 v2 ADT) ----------------------------------------------


class _FeedPatientForm(f.PatientForm):
    """Patient details sent by the hospital's HIS, which may hold no usable mobile number."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["phones"].required = False


def create_patient_from_feed(
    actor: Actor, data: dict[str, Any], *, department_id: Any = None
) -> m.Patient:
    """Register a patient the HIS announced; the caller has already looked for a match."""
    require(actor, Action.PATIENT_CREATE)
    org = actor.user.organisation
    initial = {
        "time_zone": org.time_zone if org else "Asia/Shanghai",
        "sex": m.Sex.UNKNOWN,
        "preferred_language": "zh-hans",
        **data,
    }
    form = _validate(_FeedPatientForm(initial))
    registered_on = _registered_on(data)
    department = _department_for(actor, department_id)
    with transaction.atomic():
        return _register(
            actor,
            form,
            department,
            {"department": department.pk, "via": actor.channel},
            registered_on=registered_on,
        )


def update_patient_from_feed(actor: Actor, patient_id: int, data: dict[str, Any]) -> m.Patient:
    """Apply the HIS's newer demographics (the feed is the source of truth for them)."""
    require(actor, Action.PATIENT_UPDATE, patient_id=patient_id)
    patient = selectors.get_patient(actor, patient_id, audit_read=False)
    current = _with_current(patient, PATIENT_FIELDS, data)
    if not data.get("phones"):
        current["phones"] = [p.number for p in patient.phones.all()]
    form = _validate(_FeedPatientForm(current, instance=patient))
    with transaction.atomic():
        locked = m.Patient.objects.select_for_update().get(pk=patient.pk)
        before = snapshot(locked, PATIENT_FIELDS)
        construct_instance(form, locked, fields=[n for n in PATIENT_FIELDS if n != "phones"])
        _save_phones(locked, form.cleaned_data["phones"])
        after = snapshot(locked, PATIENT_FIELDS)
        changed = sorted(
            k for k in after if k not in ("version", "id") and before.get(k) != after[k]
        )
        if not changed:
            return locked
        locked.version += 1
        locked.updated_by = actor.user
        locked.save()
        _version_row(actor, locked, "patient", locked, "update", PATIENT_FIELDS)
        audit.record(
            actor,
            "patient.update",
            patient_id=locked.pk,
            obj=locked,
            detail={"fields": changed, "via": actor.channel},
        )
        signals.patient_changed.send(
            sender=m.Patient, actor=actor, patient=locked, fields=changed, change="update"
        )
    return locked

"""Pieces the resource mappers share: history from RecordVersion, scoped querysets, codings."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, ClassVar

from django.db.models import Exists, Field, Model, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.outcome import FhirError, Issue
from careloop.fhir.registry import READ_WRITE, Context, History, Mapper
from careloop.kit.errors import CareLoopError, StaleVersion
from careloop.patients import models as pm
from careloop.patients import selectors, services

# Search parameters every type has.
ID_SYSTEM_NATIONAL = "urn:oid:2.16.156.10011.1.1"  # PRC resident identity card number
ID_SYSTEM_RECORD = "urn:careloop:record-number"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def id_param(mapper_pk: str = "pk") -> Any:
    def build(raw: str) -> Q:
        return Q(**{mapper_pk: int(raw)}) if raw.isdigit() and len(raw) < 19 else Q(pk__in=[])

    return build


def last_updated_param(field: str = "updated_at") -> Any:
    def build(value: Any) -> Q:
        return value.q(field)  # type: ignore[no-any-return]

    return build


def patient_param(target_field: str = "patient_id") -> Any:
    from careloop.fhir.search import reference_id

    def build(raw: str) -> Q:
        ident = reference_id(raw, "Patient")
        if not ident.isdigit() or len(ident) > 18:
            return Q(pk__in=[])
        return Q(**{target_field: int(ident)})

    return build


def service_error(exc: CareLoopError, resource_type: str, fields: dict[str, str]) -> FhirError:
    """A service's refusal as an OperationOutcome naming the FHIR element at fault."""
    status = exc.status if exc.status in (403, 404, 409, 412) else 422
    if isinstance(exc, StaleVersion):
        status = 412
    details = getattr(exc, "details", None) or {}
    issues: list[Issue] = []
    code = {403: "forbidden", 404: "not-found", 409: "conflict", 412: "conflict"}.get(
        status, "invalid"
    )
    if isinstance(details, dict):
        for name, messages in details.items():
            if not isinstance(messages, list):
                continue
            element = fields.get(name, "")
            where = (f"{resource_type}.{element}",) if element else (resource_type,)
            for message in messages:
                issues.append(Issue(f"{name}: {message}", code, "error", where))
    if not issues:
        issues.append(Issue(str(getattr(exc, "message", "") or exc), code, "error"))
    return FhirError(status, issues)


def record_history(mapper: Mapper, kind: str, obj: Model, apply: Any) -> list[History]:
    """Versions of a row from RecordVersion, newest first, each rebuilt by ``apply(copy,
    snapshot)`` laying the snapshot's fields over a copy of the current row."""
    rows = list(pm.RecordVersion.objects.filter(kind=kind, object_id=obj.pk).order_by("-version"))
    out: list[History] = []
    for row in rows:
        if row.version == mapper.version_of(obj):
            resource = mapper.read(obj)
        else:
            old = copy.copy(obj)
            apply(old, row.snapshot)
            old.version = row.version  # type: ignore[attr-defined]
            old.updated_at = row.at  # type: ignore[attr-defined]
            resource = mapper.read(old)
        resource["meta"]["lastUpdated"] = (
            row.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        )
        out.append(
            History(row.version, row.at, row.change, None if row.change == "delete" else resource)
        )
    return out


def lay_over(obj: Model, snapshot: dict[str, Any]) -> None:
    """Set the plain (non-encrypted) fields of a snapshot on a row copy."""
    for name, value in snapshot.items():
        if name in ("id", "version", "phones"):
            continue
        try:
            field = obj._meta.get_field(name)
        except Exception:  # noqa: S112 - a field no longer on the model
            continue
        if isinstance(value, str) and value.startswith("#"):
            continue  # encrypted fields are kept only as digests
        if not isinstance(field, Field):
            continue
        try:
            setattr(obj, field.attname, field.to_python(value))
        except Exception:  # noqa: S112 - an old value the field no longer accepts
            continue


def codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    found = concept.get("coding")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def not_supported(element: str, reason: str) -> FhirError:
    return FhirError.of(422, reason, code="not-supported", expression=element)


def required(element: str) -> FhirError:
    return FhirError.of(422, _("This element is required."), code="required", expression=element)


def record_params(**more: Any) -> dict[str, Any]:
    """The search parameters of every patient record type (``_id``, ``_lastUpdated``,
    ``patient``, ``subject``) and the type's own."""
    from careloop.fhir.registry import SearchParam

    return {
        "_id": SearchParam("token", lambda s, v: id_param()(v)),
        "_lastUpdated": SearchParam("date", last_updated_param()),
        "patient": SearchParam("reference", patient_param()),
        "subject": SearchParam("reference", patient_param()),
        **more,
    }


def of_visible_patients(actor: Actor, field: str = "patient_id") -> Q:
    """Rows of the patients the actor may see, as a correlated EXISTS: a search for one patient's
    rows probes that patient only, instead of listing every visible patient first."""
    return Q(Exists(selectors.visible_patients(actor).filter(pk=OuterRef(field)).values("pk")))


def pk_of(ident: str) -> int:
    """The primary key a reference's id names; 0 (no row) when it cannot name one."""
    return int(ident) if ident.isdigit() and len(ident) < 19 else 0


class PatientRecordMapper(Mapper):
    """A type stored as one of a patient's record sections (conditions, allergies, visits,
    medications). Reads are scoped to the patients the actor may see; writes go through
    patients.services like the staff form, so versions, audit and enrolment rules are the
    same. Subclasses set ``record_kind`` and ``subject_element`` and implement
    ``record_data``."""

    interactions = READ_WRITE
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    write_actions = (Action.PATIENT_VIEW, Action.CLINICAL_WRITE)
    keeps_extra = True
    record_kind: ClassVar[str]
    subject_element: ClassVar[str] = "subject"
    # Service field → the element named when the service refuses it.
    field_elements: ClassVar[dict[str, str]] = {}
    moved_message: ClassVar[Any] = gettext_lazy("A record cannot be moved to another patient.")

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return self.model._default_manager.filter(
            of_visible_patients(actor), deleted_at__isnull=True
        )

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        """The service's fields for a resource; FhirError naming the element when it cannot
        be stored."""
        raise NotImplementedError

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        """Fields FHIR does not carry that an update must leave as they are."""

    def subject_pk(self, ctx: Context, resource: dict[str, Any]) -> int:
        element = self.subject_element
        where = f"{self.resource_type}.{element}"
        return pk_of(ctx.reference_id(resource.get(element), "Patient", where))

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        patient_id = self.subject_pk(ctx, resource)
        data = self.record_data(ctx, resource, patient_id)
        try:
            row = services.add_record(ctx.actor, patient_id, self.record_kind, data)
        except CareLoopError as exc:
            raise service_error(exc, self.resource_type, self.field_elements) from exc
        self.keep(row, resource)
        return row, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        patient_id = self.subject_pk(ctx, resource)
        if patient_id != obj.patient_id:
            raise not_supported(
                f"{self.resource_type}.{self.subject_element}", str(self.moved_message)
            )
        data = self.record_data(ctx, resource, patient_id)
        self.kept_on_update(obj, data)
        try:
            row = services.update_record(
                ctx.actor, obj.patient_id, self.record_kind, obj.pk, data, expected
            )
        except CareLoopError as exc:
            raise service_error(exc, self.resource_type, self.field_elements) from exc
        self.keep(row, resource)
        return row

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        try:
            services.delete_record(ctx.actor, obj.patient_id, self.record_kind, obj.pk, expected)
        except CareLoopError as exc:
            raise service_error(exc, self.resource_type, self.field_elements) from exc

    def history(self, obj: Any) -> list[History]:
        return record_history(self, self.record_kind, obj, lay_over)

"""Pieces the resource mappers share: history from RecordVersion, scoped querysets, codings."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from django.db.models import Field, Model, Q
from django.utils.translation import gettext as _

from careloop.fhir.outcome import FhirError, Issue
from careloop.fhir.registry import History, Mapper
from careloop.kit.errors import CareLoopError, StaleVersion
from careloop.patients import models as pm

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

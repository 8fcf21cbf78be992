"""JSON API of the patient record: /api/patients and its sub-resources."""

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja import Body, File, Query, Router, Schema
from ninja.files import UploadedFile

from careloop.accounts.actor import Actor
from careloop.kit.errors import ValidationFailed
from careloop.patients import models as m
from careloop.patients import selectors, services
from careloop.patients.records import KINDS, RecordKind, serialise
from careloop.patients.services import PATIENT_FIELDS

router = Router(tags=["patients"])


class PatientIn(Schema):
    name: str
    sex: str = "unknown"
    date_of_birth: date
    national_id: str = ""
    record_number: str = ""
    phones: list[str]
    address: str = ""
    preferred_language: str = "zh-hans"
    time_zone: str | None = None
    preferred_channels: list[str] = []
    contact_window_start: time | None = None
    contact_window_end: time | None = None
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    deceased_on: date | None = None
    department: int | None = None
    link_existing: bool = False
    allow_duplicate: bool = False


class PatientPatch(Schema):
    version: int | None = None
    name: str | None = None
    sex: str | None = None
    date_of_birth: date | None = None
    national_id: str | None = None
    record_number: str | None = None
    phones: list[str] | None = None
    address: str | None = None
    preferred_language: str | None = None
    time_zone: str | None = None
    preferred_channels: list[str] | None = None
    contact_window_start: time | None = None
    contact_window_end: time | None = None
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    deceased_on: date | None = None


class PatientOut(Schema):
    id: int
    version: int
    name: str
    sex: str
    date_of_birth: date
    national_id: str
    record_number: str
    phones: list[str]
    address: str
    preferred_language: str
    time_zone: str
    preferred_channels: list[str]
    contact_window_start: time | None
    contact_window_end: time | None
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    deceased_on: date | None
    departments: list[int]
    created_at: datetime
    updated_at: datetime


class PatientSummary(Schema):
    id: int
    name: str
    sex: str
    date_of_birth: date
    record_number: str


class PatientPage(Schema):
    total: int
    page: int
    size: int
    items: list[PatientSummary]


class SearchQuery(Schema):
    q: str = ""
    phone_tail: str = ""
    phone: str = ""
    national_id: str = ""
    condition: str = ""
    department: int | None = None
    sex: str = ""
    age_min: int | None = None
    age_max: int | None = None
    sort: str = selectors.DEFAULT_SORT
    page: int = 1
    size: int = 25


class MergeIn(Schema):
    other_id: int
    other_version: int


def _patient_out(p: m.Patient) -> dict[str, Any]:
    data = serialise(p, PATIENT_FIELDS)
    data["departments"] = list(p.department_links.values_list("department_id", flat=True))
    return data


def _version(request: HttpRequest, body_version: Any) -> Any:
    """The expected version from the body, or from an If-Match header (W/"3" or "3")."""
    if body_version is not None:
        return body_version
    header = request.headers.get("If-Match", "")
    return header.replace("W/", "").strip('"') or None


def _given(payload: Schema) -> dict[str, Any]:
    return {k: v for k, v in payload.dict(exclude_unset=True).items() if k != "version"}


@router.get("", response=PatientPage, summary="Search the patients you can see")
def list_patients(request: HttpRequest, filters: Query[SearchQuery]) -> dict[str, Any]:
    c = selectors.Criteria(**filters.dict())
    page = selectors.search_patients(Actor.from_api(request), c)
    return {"total": page.total, "page": page.number, "size": page.size, "items": page.items}


@router.post("", response={201: PatientOut}, summary="Register a patient")
def create_patient(request: HttpRequest, payload: PatientIn) -> dict[str, Any]:
    data = payload.dict()
    options = {k: data.pop(k) for k in ("department", "link_existing", "allow_duplicate")}
    if data.get("time_zone") is None:
        data.pop("time_zone")
    patient = services.create_patient(
        Actor.from_api(request),
        data,
        department_id=options["department"],
        link_existing=options["link_existing"],
        allow_duplicate=options["allow_duplicate"],
    )
    return _patient_out(patient)


@router.get("/{patient_id}", response=PatientOut, summary="One patient's identity and contacts")
def get_patient(request: HttpRequest, patient_id: int) -> dict[str, Any]:
    return _patient_out(selectors.get_patient(Actor.from_api(request), patient_id))


@router.patch(
    "/{patient_id}",
    response=PatientOut,
    summary="Change a patient; send the version you read (or If-Match)",
)
def patch_patient(request: HttpRequest, patient_id: int, payload: PatientPatch) -> dict[str, Any]:
    patient = services.update_patient(
        Actor.from_api(request), patient_id, _given(payload), _version(request, payload.version)
    )
    return _patient_out(patient)


@router.post(
    "/{patient_id}/merge",
    response=PatientOut,
    summary="Merge another record (a duplicate) into this one",
)
def merge_patient(request: HttpRequest, patient_id: int, payload: MergeIn) -> dict[str, Any]:
    kept = services.merge_patients(
        Actor.from_api(request), patient_id, payload.other_id, payload.other_version
    )
    return _patient_out(kept)


@router.get("/{patient_id}/timeline", summary="Everything that happened to the record")
def get_timeline(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
    _, events = selectors.timeline(Actor.from_api(request), patient_id)
    out = []
    for e in events:
        item = {k: v for k, v in e.items() if k not in ("label",)}
        item["label"] = str(e["label"])
        item["at"] = e["at"].isoformat() if e.get("at") else None
        if e.get("date"):
            item["date"] = e["date"].isoformat()
        out.append(item)
    return out


# --- sub-resources, one set of routes per kind of record ------------------------------------

_PY_TYPES: dict[str, Any] = {
    "CharField": str,
    "TextField": str,
    "EncryptedTextField": str,
    "DateField": date,
    "DecimalField": Decimal,
    "PositiveSmallIntegerField": int,
    "PositiveIntegerField": int,
    "BooleanField": bool,
    "ForeignKey": int,
    "JSONField": list[dict[str, Any]],
}


def _schemas(kind: RecordKind) -> tuple[type[Schema], type[Schema], type[Schema]]:
    fields = [n for n in kind.fields if n != "file"]
    ins: dict[str, Any] = {}
    patch: dict[str, Any] = {"version": (int | None, None)}
    outs: dict[str, Any] = {
        "id": (int, ...),
        "version": (int, ...),
        "created_at": (datetime, ...),
        "updated_at": (datetime, ...),
    }
    model = kind.model
    for name in fields:
        f = model._meta.get_field(name)
        typ = _PY_TYPES[
            type(f).__name__ if type(f).__name__ in _PY_TYPES else f.get_internal_type()
        ]
        required = not (
            getattr(f, "blank", True)
            or getattr(f, "null", True)
            or getattr(f, "has_default", lambda: True)()
        )
        ins[name] = (typ, ...) if required else (typ | None, None)
        patch[name] = (typ | None, None)
        outs[name] = (typ | None, None)
    if kind.model is m.Report:
        outs.update(
            {
                "file_name": (str, ""),
                "content_type": (str, ""),
                "size": (int, 0),
                "file": (str | None, None),
            }
        )
    title = kind.model.__name__
    return (_make(f"{title}In", ins), _make(f"{title}Patch", patch), _make(f"{title}Out", outs))


def _make(name: str, fields: dict[str, tuple[Any, Any]]) -> type[Schema]:
    annotations = {k: v[0] for k, v in fields.items()}
    defaults = {k: v[1] for k, v in fields.items() if v[1] is not ...}
    return type(name, (Schema,), {"__annotations__": annotations, **defaults})


def _wire(data: dict[str, Any]) -> dict[str, Any]:
    """Schema values back to form input (decimals and dates as text, lists as JSON-ready)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, Decimal | date):
            value = str(value) if isinstance(value, Decimal) else value.isoformat()
        out[key] = value
    return out


def _register(kind: RecordKind) -> None:
    In, Patch, Out = _schemas(kind)
    base = f"/{{patient_id}}/{kind.key}"
    label = str(kind.model._meta.verbose_name_plural)

    def out(row: Any) -> dict[str, Any]:
        data = serialise(row, kind.fields)
        if kind.model is m.Report:
            data.update(
                file_name=row.file_name,
                content_type=row.content_type,
                size=row.size,
                file=f"/api/patients/{row.patient_id}/reports/{row.pk}/file" if row.file else None,
            )
        return data

    @router.get(
        base,
        response=list[Out],  # type: ignore[valid-type]
        summary=f"List {label}",
        operation_id=f"list_{kind.key}",
    )
    def list_rows(request: HttpRequest, patient_id: int) -> list[dict[str, Any]]:
        _, rows = selectors.list_records(Actor.from_api(request), patient_id, kind.key)
        return [out(r) for r in rows]

    @router.post(
        base, response={201: Out}, summary=f"Add to {label}", operation_id=f"create_{kind.key}"
    )
    def create_row(
        request: HttpRequest,
        patient_id: int,
        payload: In = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        data = _wire(payload.dict(exclude_unset=True))  # type: ignore[attr-defined]
        row = services.add_record(Actor.from_api(request), patient_id, kind.key, data)
        return out(row)  # the one response model is 201

    @router.get(
        f"{base}/{{record_id}}",
        response=Out,
        summary=f"One of {label}",
        operation_id=f"get_{kind.key}",
    )
    def get_row(request: HttpRequest, patient_id: int, record_id: int) -> dict[str, Any]:
        _, row = selectors.get_record(Actor.from_api(request), patient_id, kind.key, record_id)
        return out(row)

    @router.patch(
        f"{base}/{{record_id}}",
        response=Out,
        summary=f"Change one of {label}; send its version (or If-Match)",
        operation_id=f"patch_{kind.key}",
    )
    def patch_row(
        request: HttpRequest,
        patient_id: int,
        record_id: int,
        payload: Patch = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        given = payload.dict(exclude_unset=True)  # type: ignore[attr-defined]
        version = given.pop("version", None)
        row = services.update_record(
            Actor.from_api(request),
            patient_id,
            kind.key,
            record_id,
            _wire(given),
            _version(request, version),
        )
        return out(row)

    @router.delete(
        f"{base}/{{record_id}}",
        response={204: None},
        summary=f"Mark one of {label} as entered in error (kept in history)",
        operation_id=f"delete_{kind.key}",
    )
    def delete_row(
        request: HttpRequest, patient_id: int, record_id: int, version: int | None = None
    ) -> None:
        services.delete_record(
            Actor.from_api(request), patient_id, kind.key, record_id, _version(request, version)
        )


for _kind in KINDS.values():
    _register(_kind)


@router.post("/{patient_id}/reports/{record_id}/file", summary="Attach a PDF/PNG/JPEG to a report")
def upload_report_file(
    request: HttpRequest,
    patient_id: int,
    record_id: int,
    file: UploadedFile = File(...),
    version: int | None = None,
) -> dict[str, Any]:
    actor = Actor.from_api(request)
    _, row = selectors.get_record(actor, patient_id, "reports", record_id)
    data = {"version": version}
    if version is None:
        raise ValidationFailed(
            details={"version": [gettext("The version of the record is required.")]}
        )
    row = services.update_record(
        actor, patient_id, "reports", record_id, {}, data["version"], files={"file": file}
    )
    return {"id": row.pk, "version": row.version, "file_name": row.file_name, "size": row.size}


@router.get("/{patient_id}/reports/{record_id}/file", summary="Download a report's file")
def download_report_file(request: HttpRequest, patient_id: int, record_id: int) -> Any:
    from django.http import FileResponse

    from careloop.audit import services as audit
    from careloop.kit.errors import NotFound

    actor = Actor.from_api(request)
    patient, row = selectors.get_record(actor, patient_id, "reports", record_id)
    if not row.file:
        raise NotFound()
    audit.record(actor, "reports.download", patient_id=patient.pk, obj=row)
    return FileResponse(
        row.file.open("rb"),
        content_type=row.content_type,
        as_attachment=True,
        filename=row.file_name or "report",
    )

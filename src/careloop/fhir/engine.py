"""The FHIR interactions, independent of HTTP: one call per interaction, used by the views and
by each entry of a batch or transaction Bundle.

Every interaction is decided in the same order: the type exists (404) and offers the
interaction (405); the token's SMART scopes allow it (403 forbidden); the user's role allows it
(403, audited); the row is within the user's patient scope (404 otherwise, audited — a row
outside scope is indistinguishable from one that does not exist). Reads and searches are
audited here; writes are audited by the services they go through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.audit import services as audit
from careloop.fhir import search as fs
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import (
    INTERACTION_LETTER,
    Context,
    Mapper,
    check_incoming,
    instant,
    mapper_for,
    mappers,
)
from careloop.fhir.scopes import Scopes
from careloop.kit.clock import utc_now

MAX_AUDITED_PATIENTS = 1000


@dataclass
class Caller:
    """Who is asking: the actor, the token (None for a session) and its scopes."""

    actor: Actor
    scopes: Scopes
    token: Any = None

    @property
    def token_patient_id(self) -> int | None:
        return getattr(self.token, "patient_id", None)


@dataclass
class Result:
    status: int
    resource: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _forbidden(diagnostics: str) -> FhirError:
    return FhirError.of(403, diagnostics, code="forbidden")


def authorise(caller: Caller, mapper: Mapper, interaction: str) -> None:
    rt = mapper.resource_type
    if interaction not in mapper.interactions:
        raise FhirError.of(
            405,
            _("%(interaction)s is not supported for %(type)s.")
            % {"interaction": interaction, "type": rt},
            code="not-supported",
        )
    letter = INTERACTION_LETTER[interaction]
    if not caller.scopes.allows(rt, letter):
        audit.record_denied(
            caller.actor, f"fhir.{interaction}", detail={"type": rt, "reason": "scope"}
        )
        raise _forbidden(
            _("The token's scopes do not allow %(interaction)s on %(type)s.")
            % {"interaction": interaction, "type": rt}
        )
    actions = list(mapper.read_actions)
    if interaction == "search-type":
        actions += list(mapper.search_actions)
    if interaction in ("create", "update", "delete"):
        actions = list(mapper.write_actions)
    if not all(caller.actor.can(a) for a in actions):
        audit.record_denied(
            caller.actor, f"fhir.{interaction}", detail={"type": rt, "reason": "role"}
        )
        raise _forbidden(_("Your role does not allow this."))


def scoped(caller: Caller, mapper: Mapper, interaction: str) -> QuerySet[Any]:
    qs = mapper.visible(caller.actor)
    letter = INTERACTION_LETTER[interaction]
    if mapper.patient_compartment and caller.scopes.patient_only(mapper.resource_type, letter):
        qs = mapper.restrict_to_patient(qs, caller.token_patient_id)
    return qs


def load(caller: Caller, mapper: Mapper, ident: str, interaction: str) -> Any:
    """The row an id names, if the caller may see it; 404 (audited) otherwise."""
    found = None
    finder = getattr(mapper, "find", None)
    if finder is not None:
        found = finder(caller.actor, ident)
    else:
        pk = mapper.parse_id(ident)
        if pk is not None:
            found = scoped(caller, mapper, interaction).filter(pk=pk).first()
    if found is None:
        pk = mapper.parse_id(ident)
        owner = None
        if pk is not None and mapper.patient_compartment:
            row = mapper.model._default_manager.filter(pk=pk).first()
            owner = mapper.patient_id_of(row) if row is not None else None
        audit.record_denied(
            caller.actor,
            f"fhir.{interaction}",
            patient_id=owner,
            object_type=mapper.model._meta.label_lower,
            object_id=ident[:64],
            detail={"type": mapper.resource_type, "reason": "scope"},
        )
        raise FhirError.of(
            404,
            _("%(type)s/%(id)s is not known.") % {"type": mapper.resource_type, "id": ident[:64]},
            code="not-found",
        )
    return found


def _audit_read(caller: Caller, mapper: Mapper, obj: Any, interaction: str) -> None:
    audit.record(
        caller.actor,
        f"fhir.{interaction}",
        patient_id=mapper.patient_id_of(obj),
        object_type=mapper.model._meta.label_lower,
        object_id=mapper.id_of(obj),
        detail={"type": mapper.resource_type},
    )


def version_headers(mapper: Mapper, obj: Any) -> dict[str, str]:
    from django.utils.http import http_date

    return {
        "ETag": f'W/"{mapper.version_of(obj)}"',
        "Last-Modified": http_date(mapper.last_updated(obj).timestamp()),
    }


def read(caller: Caller, resource_type: str, ident: str) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "read")
    obj = load(caller, mapper, ident, "read")
    _audit_read(caller, mapper, obj, "read")
    return Result(200, mapper.read(obj), version_headers(mapper, obj))


def vread(caller: Caller, resource_type: str, ident: str, version: str) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "vread")
    obj = load(caller, mapper, ident, "vread")
    _audit_read(caller, mapper, obj, "vread")
    for entry in mapper.history(obj):
        if str(entry.version) == version:
            if entry.resource is None:
                raise FhirError.of(410, _("This version was a deletion."), code="deleted")
            headers = {"ETag": f'W/"{entry.version}"'}
            return Result(200, entry.resource, headers)
    raise FhirError.of(
        404,
        _("Version %(version)s of %(type)s/%(id)s is not known.")
        % {"version": version[:20], "type": resource_type, "id": ident[:64]},
        code="not-found",
    )


def history(caller: Caller, resource_type: str, ident: str, base: str) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "history-instance")
    obj = load(caller, mapper, ident, "history-instance")
    _audit_read(caller, mapper, obj, "history-instance")
    entries = []
    for item in mapper.history(obj):
        url = f"{base}{resource_type}/{mapper.id_of(obj)}"
        entry: dict[str, Any] = {"fullUrl": url}
        if item.resource is not None:
            entry["resource"] = item.resource
        method = {"create": "POST", "delete": "DELETE"}.get(item.change, "PUT")
        entry["request"] = {
            "method": method,
            "url": resource_type if method == "POST" else f"{resource_type}/{mapper.id_of(obj)}",
        }
        entry["response"] = {
            "status": {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK"),
            "etag": f'W/"{item.version}"',
            "lastModified": instant(item.at),
        }
        entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{base}{resource_type}/{ident}/_history"}],
        "entry": entries,
    }
    return Result(200, bundle)


def _zone(actor: Actor) -> ZoneInfo:
    org = actor.user.organisation
    try:
        return ZoneInfo(org.time_zone if org else "Asia/Shanghai")
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def search(
    caller: Caller,
    resource_type: str,
    params: list[tuple[str, str]],
    base: str,
    *,
    lenient: bool = False,
) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "search-type")
    query = fs.parse(mapper, params, lenient=lenient)
    if hasattr(mapper, "all_for"):
        rows = _in_memory(caller, mapper, query)
        total = len(rows)
        page = rows[query.offset : query.offset + query.count]
    else:
        qs = fs.apply(mapper, scoped(caller, mapper, "search-type"), query, _zone(caller.actor))
        page = list(qs[query.offset : query.offset + query.count]) if query.count else []
        # A first page that is not full holds every match: no separate count is needed.
        short = query.offset == 0 and 0 < len(page) < query.count
        total = len(page) if short else qs.count()
    entries = [
        {
            "fullUrl": f"{base}{resource_type}/{mapper.id_of(o)}",
            "resource": mapper.read(o),
            "search": {"mode": "match"},
        }
        for o in page
    ]
    patients = {p for p in (mapper.patient_id_of(o) for o in page) if p is not None}
    if query.includes:
        included, owners = _includes(caller, mapper, query, patients, page, base)
        entries += included
        patients |= owners
    kept = [(n, v) for n, v in params if n not in ("_offset",) and f"{n}" not in query.ignored]

    def link(offset: int) -> str:
        return f"{base}{resource_type}?" + urlencode(
            [*[(n, v) for n, v in kept if n != "_count"], ("_count", str(query.count)),
             ("_offset", str(offset))]
        )  # fmt: skip

    links = [{"relation": "self", "url": link(query.offset)}]
    if query.count and query.offset + query.count < total:
        links.append({"relation": "next", "url": link(query.offset + query.count)})
    if query.offset > 0:
        links.append({"relation": "previous", "url": link(max(0, query.offset - query.count))})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    }
    ids = sorted(patients)
    audit.record(
        caller.actor,
        "fhir.search",
        patient_id=ids[0] if len(ids) == 1 else None,
        object_type=mapper.model._meta.label_lower,
        detail={
            "type": resource_type,
            "criteria": sorted({n for n, _v in query.filters}),
            "results": total,
            "patients": ids[:MAX_AUDITED_PATIENTS],
        },
    )
    if query.ignored:
        bundle["entry"].append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": _("Ignored: %(names)s")
                            % {"names": ", ".join(query.ignored)},
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    return Result(200, bundle)


def _in_memory(caller: Caller, mapper: Mapper, query: fs.Query) -> list[Any]:
    rows = mapper.all_for(caller.actor)  # type: ignore[attr-defined]
    for name, values in query.filters:
        wanted = [
            fs.parse_token(v) if mapper.search_params[name].type == "token" else v for v in values
        ]
        rows = [r for r in rows if any(mapper.matches(r, name, w) for w in wanted)]  # type: ignore[attr-defined]
    for key in reversed(query.sort):
        rows.sort(key=lambda r: str(getattr(r, "name", "")), reverse=key.startswith("-"))
    return rows


def _reference_values(value: Any, path: list[str]) -> list[str]:
    """The ``reference`` strings at a dotted element path of a resource (lists walked)."""
    if isinstance(value, list):
        return [r for item in value for r in _reference_values(item, path)]
    if not isinstance(value, dict):
        return []
    if not path:
        ref = value.get("reference")
        return [ref] if isinstance(ref, str) else []
    return _reference_values(value.get(path[0]), path[1:])


def _includes(
    caller: Caller,
    mapper: Mapper,
    query: fs.Query,
    patient_ids: set[int],
    page: list[Any],
    base: str,
) -> tuple[list[dict[str, Any]], set[int]]:
    """The resources the results point to through the requested ``_include`` parameters —
    only those the caller may read themselves — and the patients they belong to."""
    wanted: dict[str, set[str]] = {}
    for spec in query.includes:
        pointed = mapper.include_targets[spec]
        if pointed == "Patient":
            wanted.setdefault("Patient", set()).update(str(p) for p in patient_ids)
            continue
        path = mapper.include_paths.get(spec, spec).split(".")
        for row in page:
            # The row's own references, also where the sender's copy left the element out.
            for ref in _reference_values(mapper.to_fhir(row), path):
                kind, _sep, ident = ref.rpartition("/")
                if kind.rsplit("/", 1)[-1] == pointed and ident:
                    wanted.setdefault(pointed, set()).add(ident)
    out: list[dict[str, Any]] = []
    patients: set[int] = set()
    for target_type, idents in sorted(wanted.items()):
        if not idents:
            continue
        target = mapper_for(target_type)
        try:
            authorise(caller, target, "read")
        except FhirError:
            continue
        if hasattr(target, "all_for"):
            rows = [o for o in target.all_for(caller.actor) if target.id_of(o) in idents]
        else:
            pks = sorted({p for p in (target.parse_id(i) for i in idents) if p is not None})
            rows = list(scoped(caller, target, "read").filter(pk__in=pks).order_by("pk"))
        for row in rows:
            owner = row.pk if target_type == "Patient" else target.patient_id_of(row)
            if owner is not None:
                patients.add(int(owner))
            out.append(
                {
                    "fullUrl": f"{base}{target_type}/{target.id_of(row)}",
                    "resource": target.read(row),
                    "search": {"mode": "include"},
                }
            )
    return out, patients


def _expected_version(if_match: str | None) -> int | None:
    if not if_match:
        return None
    text = if_match.strip()
    text = text[2:] if text.startswith("W/") else text
    text = text.strip('"')
    if not text.isdigit():
        raise FhirError.of(
            400, _('If-Match must be W/"<version>".'), code="value", expression="If-Match"
        )
    return int(text)


def _existing(caller: Caller, mapper: Mapper, if_none_exist: str) -> Any:
    """The one row a conditional create's criteria find in the caller's scope, or None;
    412 when they find several (the client must be more specific)."""
    params = parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True)
    if not params:
        raise FhirError.of(
            400, _("If-None-Exist needs search criteria."), code="required",
            expression="If-None-Exist",
        )  # fmt: skip
    authorise(caller, mapper, "search-type")
    query = fs.parse(mapper, params, lenient=False)
    query.count = 2
    qs = fs.apply(mapper, scoped(caller, mapper, "search-type"), query, _zone(caller.actor))
    found = list(qs[:2])
    if len(found) > 1:
        raise FhirError.of(
            412,
            _("The If-None-Exist criteria match more than one %(type)s.")
            % {"type": mapper.resource_type},
            code="duplicate",
            expression="If-None-Exist",
        )
    return found[0] if found else None


def create(
    caller: Caller,
    resource_type: str,
    resource: Any,
    base: str,
    references: dict[str, str],
    if_none_exist: str | None = None,
) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "create")
    check_incoming(resource, resource_type)
    _check_patient_context(caller, mapper, resource, references, "create")
    if if_none_exist and not hasattr(mapper, "all_for"):
        found = _existing(caller, mapper, if_none_exist)
        if found is not None:
            _audit_read(caller, mapper, found, "read")
            return Result(200, mapper.read(found), version_headers(mapper, found))
    obj, created = mapper.create(Context(caller.actor, references, caller.scopes), resource)
    headers = version_headers(mapper, obj)
    headers["Location"] = (
        f"{base}{resource_type}/{mapper.id_of(obj)}/_history/{mapper.version_of(obj)}"
    )
    return Result(201 if created else 200, mapper.read(obj), headers)


def update(
    caller: Caller,
    resource_type: str,
    ident: str,
    resource: Any,
    if_match: str | None,
    references: dict[str, str],
) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "update")
    check_incoming(resource, resource_type)
    if resource.get("id") is not None and resource.get("id") != ident:
        raise FhirError.of(
            400,
            _("The resource id does not match the URL."),
            code="invalid",
            expression=f"{resource_type}.id",
        )
    obj = load(caller, mapper, ident, "update")
    expected = _expected_version(if_match)
    current = mapper.version_of(obj)
    if expected is None:
        expected = current
    elif expected != current:
        raise FhirError.of(
            412,
            _("Version %(sent)s is stale; the current version is %(now)s.")
            % {"sent": expected, "now": current},
            code="conflict",
            expression="If-Match",
        )
    _check_patient_context(caller, mapper, resource, references, "update")
    obj = mapper.update(Context(caller.actor, references, caller.scopes), obj, resource, expected)
    return Result(200, mapper.read(obj), version_headers(mapper, obj))


def delete(caller: Caller, resource_type: str, ident: str, if_match: str | None) -> Result:
    mapper = mapper_for(resource_type)
    authorise(caller, mapper, "delete")
    obj = load(caller, mapper, ident, "delete")
    expected = _expected_version(if_match)
    current = mapper.version_of(obj)
    if expected is not None and expected != current:
        raise FhirError.of(
            412,
            _("Version %(sent)s is stale; the current version is %(now)s.")
            % {"sent": expected, "now": current},
            code="conflict",
            expression="If-Match",
        )
    mapper.delete(Context(caller.actor, None, caller.scopes), obj, current)
    return Result(204)


def _check_patient_context(
    caller: Caller,
    mapper: Mapper,
    resource: dict[str, Any],
    references: dict[str, str],
    interaction: str,
) -> None:
    """A token in patient context writes only its own patient's rows."""
    if not mapper.patient_compartment:
        return
    if not caller.scopes.patient_only(mapper.resource_type, INTERACTION_LETTER[interaction]):
        return
    if mapper.resource_type == "Patient":
        if interaction == "create":
            raise _forbidden(_("A patient-context token cannot register patients."))
        return  # the update already reached only the token's own patient
    found = resource.get("subject")
    subject: dict[str, Any] = found if isinstance(found, dict) else {}
    text = references.get(str(subject.get("reference")), str(subject.get("reference")))
    if text != f"Patient/{caller.token_patient_id}":
        raise _forbidden(_("A patient-context token writes only its own patient's record."))


def capability(base: str) -> dict[str, Any]:
    """The CapabilityStatement, generated from the registry."""
    resources = []
    for rt, mapper in mappers().items():
        entry: dict[str, Any] = {
            "type": rt,
            "interaction": [{"code": i} for i in sorted(mapper.interactions)],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": False,
            "conditionalCreate": False,
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchParam": [
                {"name": name, "type": param.type}
                | ({"documentation": param.documentation} if param.documentation else {})
                for name, param in mapper.search_params.items()
            ],
        }
        if mapper.include_targets:
            entry["searchInclude"] = [f"{rt}:{t}" for t in mapper.include_targets]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(utc_now()),
        "publisher": "CareLoop",
        "kind": "instance",
        "software": {"name": "CareLoop"},
        "implementation": {"description": "CareLoop FHIR R4 interface", "url": base.rstrip("/")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Bearer tokens (careloop apitoken) with SMART v2 scopes, "
                        "or a staff session."
                    ),
                },
                "resource": resources,
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
                "searchParam": [
                    {"name": "_count", "type": "number"},
                    {"name": "_sort", "type": "string"},
                    {"name": "_include", "type": "string"},
                ],
            }
        ],
    }

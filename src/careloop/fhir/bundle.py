"""Batch and transaction Bundles posted to the base URL.

A transaction runs in one database transaction: every entry succeeds or nothing is stored, and
the first failure is answered as an OperationOutcome naming the entry. A batch runs each entry
on its own and answers each entry's outcome. Entries are processed in the specification's
order (DELETE, POST, PUT, GET); a ``urn:uuid:`` fullUrl of a created resource is rewritten to
its new ``Type/id`` wherever other entries refer to it. Creates run after the creates they
refer to, whatever their place in the Bundle (a Bundle listing an Encounter before the Patient
it belongs to works); references in a cycle are answered as an error naming the entry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from django.db import transaction
from django.utils.translation import gettext as _

from careloop.fhir import engine
from careloop.fhir.outcome import FhirError, Issue, operation_outcome

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
MAX_ENTRIES = 1000


def _references_in(value: Any) -> set[str]:
    """Every ``reference`` string anywhere in a resource."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _creates_in_dependency_order(entries: list[Any], order: list[int]) -> list[int]:
    """``order`` with its POST entries rearranged so that an entry comes after the entries
    whose fullUrl it refers to; otherwise the Bundle's order is kept."""

    def is_post(i: int) -> bool:
        entry = entries[i]
        request = entry.get("request") if isinstance(entry, dict) else None
        return isinstance(request, dict) and str(request.get("method") or "").upper() == "POST"

    posts = [i for i in order if is_post(i)]
    by_url = {entries[i]["fullUrl"]: i for i in posts if isinstance(entries[i].get("fullUrl"), str)}
    needs = {
        i: {by_url[r] for r in _references_in(entries[i].get("resource")) if r in by_url} - {i}
        for i in posts
    }
    placed: list[int] = []
    done: set[int] = set()
    waiting = list(posts)
    while waiting:
        ready = [i for i in waiting if needs[i] <= done]
        if not ready:  # a cycle: keep the Bundle's order; the unresolved reference is refused
            ready = waiting[:1]
        placed.append(ready[0])
        done.add(ready[0])
        waiting.remove(ready[0])
    slots = iter(placed)
    return [next(slots) if is_post(i) else i for i in order]


def _rewrite(value: Any, references: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, references) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in references:
            out["reference"] = references[ref]
        return out
    if isinstance(value, list):
        return [_rewrite(v, references) for v in value]
    return value


def _status_line(status: int) -> str:
    return {
        200: "200 OK",
        201: "201 Created",
        204: "204 No Content",
        400: "400 Bad Request",
        403: "403 Forbidden",
        404: "404 Not Found",
        405: "405 Method Not Allowed",
        409: "409 Conflict",
        410: "410 Gone",
        412: "412 Precondition Failed",
        415: "415 Unsupported Media Type",
        422: "422 Unprocessable Entity",
    }.get(status, str(status))


def _entry_error(index: int, exc: FhirError) -> FhirError:
    where = f"Bundle.entry[{index}]"
    issues = [
        Issue(
            f"{where}: {i.diagnostics}",
            i.code,
            i.severity,
            (where, *i.expression),
        )
        for i in exc.issues
    ]
    return FhirError(exc.status, issues)


def _one(
    caller: engine.Caller, entry: Any, index: int, base: str, references: dict[str, str]
) -> engine.Result:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise FhirError.of(400, _("An entry must be an object."), expression=where)
    request = entry.get("request")
    if not isinstance(request, dict):
        raise FhirError.of(
            400, _("The entry has no request."), code="required", expression=f"{where}.request"
        )
    method = str(request.get("method") or "").upper()
    url = str(request.get("url") or "")
    if url.startswith(base):
        url = url[len(base) :]
    path, _sep, query = url.partition("?")
    parts = [p for p in path.strip("/").split("/") if p]
    resource = _rewrite(entry.get("resource"), references)
    unresolved = sorted(r for r in _references_in(resource) if r.startswith("urn:uuid:"))
    if unresolved and method in ("POST", "PUT"):
        raise FhirError.of(
            422,
            _(
                "The reference “%(ref)s” names no entry of this Bundle that can be created "
                "before this one."
            )
            % {"ref": unresolved[0][:80]},
            code="not-found",
            expression=f"{where}.resource",
        )
    if_match = request.get("ifMatch")
    if method == "POST" and len(parts) == 1:
        condition = request.get("ifNoneExist")
        result = engine.create(
            caller,
            parts[0],
            resource,
            base,
            references,
            if_none_exist=condition if isinstance(condition, str) else None,
        )
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url and result.resource is not None:
            references[full_url] = f"{parts[0]}/{result.resource['id']}"
        return result
    if method == "PUT" and len(parts) == 2:
        return engine.update(caller, parts[0], parts[1], resource, if_match, references)
    if method == "DELETE" and len(parts) == 2:
        return engine.delete(caller, parts[0], parts[1], if_match)
    if method == "GET" and len(parts) == 1:
        return engine.search(caller, parts[0], parse_qsl(query, keep_blank_values=True), base)
    if method == "GET" and len(parts) == 2:
        return engine.read(caller, parts[0], parts[1])
    if method == "GET" and len(parts) == 4 and parts[2] == "_history":
        return engine.vread(caller, parts[0], parts[1], parts[3])
    if method == "GET" and len(parts) == 3 and parts[2] == "_history":
        return engine.history(caller, parts[0], parts[1], base)
    raise FhirError.of(
        400,
        _("“%(method)s %(url)s” is not an interaction this server offers in a Bundle.")
        % {"method": method[:10], "url": url[:80]},
        code="not-supported",
        expression=f"{where}.request",
    )


def _response(result: engine.Result, base: str) -> dict[str, Any]:
    response: dict[str, Any] = {"status": _status_line(result.status)}
    if "Location" in result.headers:
        response["location"] = result.headers["Location"][len(base) :]
    if "ETag" in result.headers:
        response["etag"] = result.headers["ETag"]
    if result.resource and isinstance(result.resource.get("meta"), dict):
        updated = result.resource["meta"].get("lastUpdated")
        if updated:
            response["lastModified"] = updated
    out: dict[str, Any] = {"response": response}
    if result.resource is not None:
        if result.resource.get("resourceType") not in ("Bundle", "OperationOutcome"):
            out["fullUrl"] = f"{base}{result.resource['resourceType']}/{result.resource['id']}"
        out["resource"] = result.resource
    return out


def process(caller: engine.Caller, bundle: Any, base: str) -> engine.Result:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.of(
            400, _("Expected a Bundle."), code="invalid", expression="Bundle.resourceType"
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError.of(
            400,
            _("Only batch and transaction Bundles can be posted here."),
            code="not-supported",
            expression="Bundle.type",
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError.of(400, _("entry must be a list."), expression="Bundle.entry")
    if len(entries) > MAX_ENTRIES:
        raise FhirError.of(
            413, _("At most %(n)d entries per Bundle.") % {"n": MAX_ENTRIES},
            code="too-costly", expression="Bundle.entry",
        )  # fmt: skip

    def rank(i: int) -> tuple[int, int]:
        entry = entries[i]
        request = entry.get("request") if isinstance(entry, dict) else None
        method = str(request.get("method") or "").upper() if isinstance(request, dict) else ""
        return (_ORDER.get(method, 4), i)

    order = _creates_in_dependency_order(entries, sorted(range(len(entries)), key=rank))
    references: dict[str, str] = {}
    answers: list[dict[str, Any] | None] = [None] * len(entries)
    if kind == "transaction":
        with transaction.atomic():
            for i in order:
                try:
                    result = _one(caller, entries[i], i, base, references)
                except FhirError as exc:
                    raise _entry_error(i, exc) from exc
                answers[i] = _response(result, base)
    else:
        for i in order:
            try:
                with transaction.atomic():
                    result = _one(caller, entries[i], i, base, references)
                answers[i] = _response(result, base)
            except FhirError as exc:
                answers[i] = {
                    "response": {
                        "status": _status_line(exc.status),
                        "outcome": operation_outcome(_entry_error(i, exc).issues),
                    }
                }
    return engine.Result(
        200,
        {
            "resourceType": "Bundle",
            "type": f"{kind}-response",
            "entry": answers,
        },
    )

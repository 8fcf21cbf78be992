"""HTTP for the FHIR interface at /fhir: authentication, content types, status codes, headers.

Callers authenticate as on the JSON API (``Authorization: Bearer <token>``) or with a staff
session. The views are CSRF-exempt: every write needs a JSON body (``application/fhir+json``
or ``application/json``; anything else is 415), which a cross-site form cannot send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor, client_address
from careloop.accounts.models import Staff
from careloop.fhir import bundle, engine
from careloop.fhir.outcome import FhirError, Issue, operation_outcome
from careloop.fhir.scopes import ScopeError, Scopes
from careloop.kit.errors import CareLoopError

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def scopes_for(request: HttpRequest) -> Scopes:
    """The SMART scopes of the request: everything the role allows for a session or a token
    issued without scopes; the token's own scopes otherwise."""
    token = getattr(request, "fhir_token", None)
    text = str(getattr(token, "scopes", "") or "").strip() if token is not None else ""
    if not text:
        return Scopes.full()
    try:
        return Scopes.parse(text)
    except ScopeError:
        return Scopes(())  # a stored token whose scopes no longer parse grants nothing


def _caller(request: HttpRequest) -> engine.Caller:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        raw = header[7:].strip()
        live = accounts.token_for(raw)
        if live is None:
            raise _unauthenticated()
        staff = live.staff
        request.fhir_token = live  # type: ignore[attr-defined]
        if "HTTP_ACCEPT_LANGUAGE" not in request.META:
            translation.activate(staff.language)
        actor = Actor(user=staff, source=client_address(request), channel="api")
    else:
        user = getattr(request, "user", None)
        if not (isinstance(user, Staff) and user.is_authenticated and user.is_active):
            raise _unauthenticated()
        request.fhir_token = None  # type: ignore[attr-defined]
        actor = Actor.from_request(request)
    token = request.fhir_token  # type: ignore[attr-defined]
    return engine.Caller(actor=actor, scopes=scopes_for(request), token=token)


def _unauthenticated() -> FhirError:
    return FhirError(
        401,
        [Issue(_("A valid bearer token or a staff sign-in is required."), "login")],
        {"WWW-Authenticate": 'Bearer realm="careloop"'},
    )


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:root")).rstrip("/") + "/"


def _respond(status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> HttpResponse:
    content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    response = HttpResponse(content, status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    return response


def _body(request: HttpRequest) -> Any:
    kind = request.content_type or ""
    if kind not in _JSON_TYPES:
        raise FhirError.of(
            415,
            _("Send application/fhir+json (or application/json), not “%(type)s”.")
            % {"type": kind[:60] or "-"},
            code="not-supported",
        )
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise FhirError.of(400, _("The body is not valid JSON."), code="structure") from None


def _lenient(request: HttpRequest) -> bool:
    return "handling=lenient" in request.headers.get("Prefer", "").replace(" ", "")


def fhir_view(
    methods: tuple[str, ...], *, public: bool = False
) -> Callable[[Callable[..., engine.Result]], Callable[..., HttpResponse]]:
    def wrap(fn: Callable[..., engine.Result]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise FhirError(
                        405,
                        [Issue(_("Method not allowed here."), "not-supported")],
                        {"Allow": ", ".join(methods)},
                    )
                caller = None if public else _caller(request)
                result = fn(request, caller, **kwargs)
            except FhirError as exc:
                return _respond(exc.status, operation_outcome(exc.issues), exc.headers)
            except CareLoopError as exc:
                code = {403: "forbidden", 404: "not-found", 409: "conflict"}.get(
                    exc.status, "invalid"
                )
                issue = Issue(str(exc.message), code)
                return _respond(exc.status, operation_outcome([issue]), {})
            if isinstance(result, HttpResponse):
                return result
            return _respond(result.status, result.resource, result.headers)

        view.__name__ = fn.__name__
        view.__doc__ = fn.__doc__
        return view

    return wrap


@fhir_view(("GET",), public=True)
def metadata(request: HttpRequest, caller: None) -> engine.Result:
    """The CapabilityStatement: what this server offers (public, as the specification says)."""
    return engine.Result(200, engine.capability(_base(request)))


@fhir_view(("GET", "POST"))
def root(request: HttpRequest, caller: engine.Caller) -> Any:
    """POST a batch or transaction Bundle; GET goes to the CapabilityStatement."""
    if request.method == "GET":
        return HttpResponseRedirect(reverse("fhir:metadata"))
    return bundle.process(caller, _body(request), _base(request))


@fhir_view(("GET", "POST"))
def type_level(request: HttpRequest, caller: engine.Caller, resource_type: str) -> engine.Result:
    """GET: search; POST: create."""
    if request.method == "POST":
        return engine.create(
            caller,
            resource_type,
            _body(request),
            _base(request),
            {},
            if_none_exist=request.headers.get("If-None-Exist"),
        )
    params = list(request.GET.lists())
    flat = [(name, value) for name, values in params for value in values]
    return engine.search(caller, resource_type, flat, _base(request), lenient=_lenient(request))


@fhir_view(("POST",))
def search_post(request: HttpRequest, caller: engine.Caller, resource_type: str) -> engine.Result:
    """POST [type]/_search with form-encoded parameters (and any in the URL)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        raise FhirError.of(415, _("Send the parameters form-encoded."), code="not-supported")
    flat = [(n, v) for n, vs in request.GET.lists() for v in vs]
    flat += [(n, v) for n, vs in request.POST.lists() for v in vs]
    return engine.search(caller, resource_type, flat, _base(request), lenient=_lenient(request))


@fhir_view(("GET", "PUT", "DELETE"))
def instance(
    request: HttpRequest, caller: engine.Caller, resource_type: str, resource_id: str
) -> engine.Result:
    """GET: read; PUT: update (If-Match W/"<version>"); DELETE: soft delete."""
    if request.method == "PUT":
        return engine.update(
            caller,
            resource_type,
            resource_id,
            _body(request),
            request.headers.get("If-Match"),
            {},
        )
    if request.method == "DELETE":
        return engine.delete(caller, resource_type, resource_id, request.headers.get("If-Match"))
    return engine.read(caller, resource_type, resource_id)


@fhir_view(("GET",))
def history(
    request: HttpRequest, caller: engine.Caller, resource_type: str, resource_id: str
) -> engine.Result:
    return engine.history(caller, resource_type, resource_id, _base(request))


@fhir_view(("GET",))
def vread(
    request: HttpRequest,
    caller: engine.Caller,
    resource_type: str,
    resource_id: str,
    version_id: str,
) -> engine.Result:
    return engine.vread(caller, resource_type, resource_id, version_id)

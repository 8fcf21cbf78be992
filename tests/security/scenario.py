"""Shared by the security and audit tests: every route of the project, and a real request to it.

Routes are discovered from the URL configuration (Django's resolver and the ninja API), so a
route added later is picked up by every test built on ``all_routes()`` without editing them.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.kit.clock import utc_now
from careloop.patients import models as m
from careloop.patients import services as patient_services
from careloop.patients.records import KINDS
from careloop.patients.views import TABS
from careloop.web import access
from tests.conftest import PASSWORD, World, patient_data
from tests.portal.client import PortalUser, portal_client

# One user per role, all in (or over) the cardiology department; None is an anonymous visitor.
ROLE_USERS: dict[str, str | None] = {
    "org_admin": "admin",
    "dept_head": "head.cardiology",
    "doctor": "doctor.cardiology",
    "nurse": "nurse.cardiology",
    "auditor": "auditor",
    "patient": "portal:patient",  # a portal session of the scene's patient
    "anonymous": None,
}
PORTAL_USER = "portal:patient"

PDF = b"%PDF-1.4\n% CareLoop test report\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"

# --- discovering routes -----------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_NINJA_PARAM = re.compile(r"\{(?:\w+:)?(\w+)\}")


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = ""):  # type: ignore[no-untyped-def]
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = ":".join(x for x in (namespace, p.namespace or "") if x)
            yield from _walk(p, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace else (p.name or f"<unnamed {prefix}>")
            yield name, prefix + str(p.pattern)


def resolver_patterns() -> list[tuple[str, str]]:
    """(URL name, pattern) of every route Django knows, admin and API included."""
    return list(_walk(get_resolver()))


def template_of(pattern: str) -> str:
    """A Django pattern ("api/x/<patient_id>") as a path template ("/api/x/{patient_id}")."""
    return "/" + _CONVERTER.sub(r"{\1}", pattern)


def api_operations() -> list[tuple[str, str]]:
    """(METHOD, path template) of every django-ninja operation, from the API's own routers."""
    from careloop.api import api

    root = reverse("api:api-root")
    ops = []
    for prefix, router in api._routers:
        for path, view in router.path_operations.items():
            full = re.sub(r"/+", "/", f"{root}{prefix}/{path}").rstrip("/")
            full = _NINJA_PARAM.sub(r"{\1}", full)
            for operation in view.operations:
                for method in operation.methods:
                    ops.append((method.upper(), full))
    return sorted(set(ops))


def is_admin(name: str) -> bool:
    return name.startswith("admin:")


@dataclass(frozen=True)
class Route:
    """One request shape: a page (by URL name, method and slug values) or an API operation."""

    transport: str  # "page" or "api"
    name: str  # URL name, or "METHOD /api/path"
    method: str
    path: str  # resolver pattern (pages) or path template (API)
    kind: str | None = None
    tab: str | None = None

    @property
    def rule(self) -> access.Requirement | None:
        if self.transport == "api":
            return access.api_rule(self.method, self.path)
        return access.page_rule(self.name, self.kind)

    @property
    def id(self) -> str:
        if self.transport == "api":
            return self.name
        extra = f"[{self.kind or self.tab}]" if (self.kind or self.tab) else ""
        return f"{self.method} {self.name}{extra}"

    @property
    def kind_of_record(self) -> str | None:
        """The kind of record the route is about (pages: <kind>; API: the path segment)."""
        if self.kind:
            return self.kind
        if self.name == "patients:report_file":
            return "reports"
        match = re.match(r"/api/patients/\{patient_id\}/(\w+)", self.path)
        if self.transport == "api" and match and match.group(1) in KINDS:
            return match.group(1)
        return None

    @property
    def has_patient(self) -> bool:
        return "patient_id" in self.path


def page_routes() -> list[Route]:
    """Every non-admin page, once per method it serves and per value of its slug parameters."""
    api_paths = {path for _, path in api_operations()}
    routes = []
    for name, pattern in resolver_patterns():
        if is_admin(name) or template_of(pattern) in api_paths:
            continue
        page = access.PAGES.get(name)
        methods = page.methods if page else ("GET",)
        slugs: list[dict[str, str]] = [{}]
        if "<slug:kind>" in pattern:
            slugs = [{"kind": k} for k in KINDS]
        elif "<slug:tab>" in pattern:
            slugs = [{"tab": t} for t in TABS]
        elif "<slug:organisation>/<slug:provider>" in pattern:
            slugs = [{}]  # provider callbacks: values from tests/channels/scene.py
        elif "<slug:" in pattern:
            raise AssertionError(f"{name}: unknown slug parameter in {pattern}; teach the tests")
        for method in methods:
            for slug in slugs:
                routes.append(Route("page", name, method, pattern, **slug))
    return routes


def api_routes() -> list[Route]:
    return [Route("api", f"{method} {path}", method, path) for method, path in api_operations()]


def all_routes() -> list[Route]:
    return page_routes() + api_routes()


# --- the record every request is made against -------------------------------------------------


def today() -> str:
    return utc_now().date().isoformat()


@dataclass
class Scene:
    """A cardiology patient with one row of every kind (the report with a file) and a second
    cardiology patient to merge into it."""

    world: World
    patient: m.Patient
    second: m.Patient
    rows: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # objects added by SCENE_EXTENSIONS

    def nurse(self) -> Any:
        """An Actor for the nurse of the scene patient's department."""
        code = self.patient.department_links.first().department.code  # type: ignore[union-attr]
        return self.world.actor(f"nurse.{code}")

    def user(self, username: str) -> Any:
        if username == PORTAL_USER:
            return PortalUser()
        return Staff.objects.get(username=username)


def record_sample(kind: str, world: World) -> dict[str, Any]:
    """Valid input for a new row of a kind (JSON types; see form_data for pages)."""
    day = today()
    samples: dict[str, dict[str, Any]] = {
        "conditions": {"icd10_code": "E11", "display": "2型糖尿病", "status": "active"},
        "allergies": {
            "substance": "青霉素",
            "category": "medication",
            "reaction": "皮疹",
            "severity": "severe",
            "noted_on": day,
        },
        "medications": {
            "name": "二甲双胍",
            "dose": "500",
            "unit": "mg",
            "route": "po",
            "frequency": "bid",
            "start_date": day,
            "status": "active",
        },
        "dispenses": {
            "name": "二甲双胍缓释片",
            "quantity": "60",
            "quantity_unit": "片",
            "days_supply": 30,
            "when_handed_over": day,
            "status": "completed",
        },
        "history": {"kind": "past", "description": "阑尾切除术后", "year": 2001},
        "lifestyle": {
            "recorded_on": day,
            "smoking": "never",
            "alcohol": "none",
            "exercise": "light",
        },
        "visits": {
            "kind": "outpatient",
            "department": world.cardio.pk,
            "admitted_on": day,
            "attending": "王医生",
        },
        "reports": {"kind": "lab", "title": "血常规", "reported_on": day},
        "caregivers": {
            "name": "李四",
            "relation": "女儿",
            "phone": "13800138000",
            "is_emergency_contact": True,
        },
        "consents": {
            "purpose": "care_reminders",
            "channel": "sms",
            "granted": True,
            "decided_on": day,
            "source": "paper",
        },
    }
    if kind not in samples:
        raise AssertionError(f"no sample input for the record kind {kind!r}; add one")
    return dict(samples[kind])


def form_data(data: dict[str, Any]) -> dict[str, Any]:
    """JSON-style input as an HTML form would post it (checkboxes "on" or absent)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is True:
            out[key] = "on"
        elif value is False or value is None:
            continue
        elif isinstance(value, list) and key == "phones":
            out[key] = ", ".join(value)
        else:
            out[key] = value
    return out


def report_upload(name: str = "report.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


# Apps whose routes need objects of their own (an appointment, a schedule) describe them in a
# module of their tests with extend(scene), url_values(route, scene) -> dict, and
# page_body(route, scene, username) / api_body(route, scene), which answer None for a route
# that is not theirs; optionally page_headers(route, scene) for request headers a page route
# requires (e.g. `Prefer: respond-async` of a FHIR $export kick-off).
SCENE_EXTENSIONS = [
    "tests.appointments.scene",
    "tests.reminders.scene",
    "tests.careplans.scene",
    "tests.channels.scene",
    "tests.observations.scene",
    "tests.observations.import_scene",
    "tests.alerts.scene",
    "tests.messaging.scene",
    "tests.education.scene",
    "tests.engagement.scene",
    "tests.questionnaires.scene",
    "tests.portal.scene",
    "tests.portal.today_scene",
    "tests.fhir.scene",
    "tests.onboarding.scene",
    "tests.fhir.import_scene",
    "tests.security.token_scene",
    "tests.hl7v2.scene",
    "tests.subscriptions.scene",
    "tests.analytics.scene",
    "tests.analytics.estimates_scene",
    "tests.analytics.report_scene",
    "tests.segments.scene",
    "tests.risk.scene",
    "tests.sendtime.scene",
    "tests.experiments.scene",
    "tests.insights.scene",
]


def extensions() -> list[Any]:
    return [importlib.import_module(name) for name in SCENE_EXTENSIONS]


def build_scene(world: World, department: str = "cardiology") -> Scene:
    nurse = world.actor(f"nurse.{department}")
    patient = patient_services.create_patient(nurse, patient_data(national_id="", address="北京"))
    second = patient_services.create_patient(nurse, patient_data())
    scene = Scene(world=world, patient=patient, second=second)
    for kind in KINDS:
        data = record_sample(kind, world)
        if kind == "visits":
            data["department"] = (world.cardio if department == "cardiology" else world.endo).pk
        files = {"file": report_upload()} if kind == "reports" else None
        scene.rows[kind] = patient_services.add_record(nurse, patient.pk, kind, data, files)
    scene.patient.refresh_from_db()
    for extension in extensions():
        extension.extend(scene)
    return scene


# --- making the request -----------------------------------------------------------------------


def page_url(route: Route, scene: Scene) -> str:
    kwargs: dict[str, Any] = {}
    if "<int:patient_id>" in route.path:
        kwargs["patient_id"] = scene.patient.pk
    if "<int:record_id>" in route.path:
        kwargs["record_id"] = scene.rows[route.kind_of_record or ""].pk
    if route.kind:
        kwargs["kind"] = route.kind
    if route.tab:
        kwargs["tab"] = route.tab
    for extension in extensions():
        kwargs.update(extension.url_values(route, scene))
    return reverse(route.name, kwargs=kwargs)


def api_url(route: Route, scene: Scene) -> str:
    values: dict[str, Any] = {"patient_id": scene.patient.pk}
    if "{record_id}" in route.path:
        values["record_id"] = scene.rows[route.kind_of_record or ""].pk
    for extension in extensions():
        values.update(extension.url_values(route, scene))
    return route.path.format(**values)


def patient_form(patient: m.Patient) -> dict[str, Any]:
    return {
        "name": patient.name + "（改）",
        "sex": patient.sex,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "phones": ", ".join(p.number for p in patient.phones.all()),
        "preferred_language": patient.preferred_language,
        "time_zone": patient.time_zone,
        "address": "上海",
        "version": patient.version,
    }


def page_body(route: Route, scene: Scene, username: str | None) -> dict[str, Any]:
    """Valid form input for a POST to a page (what the page's own form would send)."""
    world = scene.world
    kind = route.kind_of_record
    if route.name == "login":
        return {"username": username or "nurse.cardiology", "password": PASSWORD}
    if route.name == "language":
        return {"language": "en", "next": "/"}
    if route.name == "patients:create":
        return form_data(patient_data())
    if route.name == "patients:edit":
        return patient_form(scene.patient)
    if route.name == "patients:merge":
        return {"other": scene.second.pk, "confirm": "1", "version": scene.second.version}
    if route.name == "patients:record_create":
        return form_data(record_sample(kind or "", world))
    if route.name == "patients:record_edit":
        return {
            **form_data(record_sample(kind or "", world)),
            "version": scene.rows[kind or ""].version,
        }
    if route.name == "patients:record_delete":
        return {"version": scene.rows[kind or ""].version}
    for extension in extensions():
        body = extension.page_body(route, scene, username)
        if body is not None:
            return dict(body)
    return {}


def api_body(route: Route, scene: Scene) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(JSON body, query) for an API operation: valid input for it."""
    kind = route.kind_of_record
    p = scene.patient
    if route.name == "POST /api/patients":
        return patient_data(), {}
    if route.name == "PATCH /api/patients/{patient_id}":
        return {"version": p.version, "address": "上海"}, {}
    if route.name == "POST /api/patients/{patient_id}/merge":
        return {"other_id": scene.second.pk, "other_version": scene.second.version}, {}
    if kind and route.path == f"/api/patients/{{patient_id}}/{kind}" and route.method == "POST":
        return record_sample(kind, scene.world), {}
    if kind and route.path.endswith("/{record_id}"):
        row = scene.rows[kind]
        if route.method == "PATCH":
            sample = record_sample(kind, scene.world)
            return {"version": row.version, **sample}, {}
        if route.method == "DELETE":
            return None, {"version": row.version}
    for extension in extensions():
        found = extension.api_body(route, scene)
        if found is not None:
            return found
    return None, {}


def client_for(username: str | None, **kwargs: Any) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en", **kwargs)
    if username == PORTAL_USER:
        raise ValueError("a portal client needs its patient: use portal_client(patient)")
    if username:
        client.force_login(Staff.objects.get(username=username))
    return client


@contextmanager
def undone() -> Iterator[None]:
    """Run a block in a savepoint and roll its writes back, so that one scene serves every
    caller of a route as if each had found it fresh."""
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


def prime(route: Route, scene: Scene) -> None:
    """Make, once and for good, what the route's request refers to: scene extensions create
    some of it on first use and keep it, so it must not be made inside an undone block."""
    if route.transport == "page":
        page_url(route, scene)
        if route.method != "GET":
            page_body(route, scene, None)
    else:
        api_url(route, scene)
        api_body(route, scene)


def perform(
    route: Route,
    scene: Scene,
    username: str | None,
    *,
    client: Client | None = None,
    token: str | None = None,
) -> HttpResponse:
    """Make the route's request as a user (None: anonymous) with valid input."""
    if username == PORTAL_USER:
        client = client or portal_client(scene.patient)
        username = None  # no staff session and no API token
    if route.transport == "page":
        client = client or client_for(username)
        url = page_url(route, scene)
        extra = page_headers(route, scene)
        if route.method == "GET":
            return client.get(url, **extra)
        return client.post(url, page_body(route, scene, username), **extra)
    client = client or Client()
    headers: dict[str, str] = {"HTTP_ACCEPT_LANGUAGE": "en"}
    if username:
        raw = token or accounts.issue_token(Staff.objects.get(username=username))
        headers["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    url = api_url(route, scene)
    if route.path.endswith("/reports/{record_id}/file") and route.method == "POST":
        row = scene.rows["reports"]
        return client.post(
            f"{url}?version={row.version}", {"file": report_upload("new.pdf")}, **headers
        )
    body, query = api_body(route, scene)
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.generic(
        route.method, url, data=_json(body), content_type="application/json", **headers
    )


def page_headers(route: Route, scene: Scene) -> dict[str, str]:
    """Request headers the scene extensions ask for on a page route (as test-client META)."""
    headers: dict[str, str] = {}
    for extension in extensions():
        hook = getattr(extension, "page_headers", None)
        if hook is not None:
            headers.update(hook(route, scene) or {})
    return headers


def body_of(response: HttpResponse) -> bytes:
    """The body of any response, streamed or not. (The test client closes a streamed response
    once it is read; closing it again would end the test's database connection.)"""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return response.content


def _json(body: dict[str, Any] | None) -> str:
    return "" if body is None else json.dumps(body, ensure_ascii=False)

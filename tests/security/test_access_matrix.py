"""Every route × every role, generated from the URL configuration and checked against access.py.

A route without a rule in careloop.web.access fails here, and so does a rule whose route is gone.
Each case makes a real request with valid input against a patient in the actor's departments:
a role the rule allows must be served (2xx/3xx), any other role gets 403, anonymous visitors
are sent to the login page (pages) or get a 401 JSON error (API).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import reverse

from careloop.patients.records import KINDS
from careloop.web import access
from tests.security.scenario import (
    ROLE_USERS,
    Route,
    all_routes,
    api_operations,
    body_of,
    client_for,
    is_admin,
    perform,
    prime,
    resolver_patterns,
    template_of,
    undone,
)


def routes_without_rule() -> list[str]:
    """Every route of the current URL configuration that access.py does not cover."""
    api_paths = {path for _, path in api_operations()}
    missing = []
    for name, pattern in resolver_patterns():
        path = template_of(pattern)
        if is_admin(name):
            if access.page_rule(name) != access.ADMIN_SITE:
                missing.append(name)
        elif path in api_paths:
            continue  # checked per operation below
        elif name not in access.PAGES:
            missing.append(f"{name} ({path})")
        elif isinstance(access.PAGES[name].requires, dict):
            missing += [f"{name}[{k}]" for k in KINDS if access.page_rule(name, k) is None]
    missing += [f"{m} {p}" for m, p in api_operations() if access.api_rule(m, p) is None]
    return missing


class TestEveryRouteHasARule:
    def test_no_route_lacks_a_rule(self) -> None:
        assert routes_without_rule() == []

    @pytest.mark.urls("tests.security.extra_urls")
    def test_a_new_route_without_a_rule_is_reported(self) -> None:
        assert routes_without_rule() == ["export_everything (/patients/export/)"]

    def test_no_rule_names_a_route_that_does_not_exist(self) -> None:
        names = {name for name, _ in resolver_patterns()}
        operations = {f"{m} {p}" for m, p in api_operations()}
        assert sorted(set(access.PAGES) - names) == []
        assert sorted(set(access.API) - operations) == []
        assert set(access.RECORD_WRITE) == set(KINDS)

    def test_the_openapi_description_lists_the_same_operations(self, db: Any) -> None:
        schema = Client().get("/api/openapi.json").json()
        described = {
            (method.upper(), path) for path, ops in schema["paths"].items() for method in ops
        }
        assert described == set(api_operations())
        assert all(access.api_rule(m, p) is not None for m, p in described)

    def test_every_role_has_a_user_in_the_matrix(self) -> None:
        from careloop.accounts.roles import Role

        assert set(ROLE_USERS) == {r.value for r in Role} | {"anonymous", "patient"}


ROUTES = [pytest.param(route, id=route.id) for route in all_routes()]


def check_caller(route: Route, role: str, scene: Any) -> None:
    """One caller of one route answered as the route's rule says."""
    rule = route.rule
    assert rule is not None, f"{route.id} has no rule in careloop.web.access"
    username = ROLE_USERS[role]
    user = scene.user(username) if username else AnonymousUser()
    response = perform(route, scene, username)
    status = response.status_code
    shown = f"{route.id} as {role}: {status} {body_of(response)[:300]!r}"
    if rule == access.NOTHING:
        assert status == 404, shown
    elif rule == access.SIGNED:
        assert status == 403, shown  # no session stands in for the provider's signature
    elif access.permits(rule, user):
        assert 200 <= status < 400, shown
    elif rule == access.PATIENT:
        # Staff sessions and anonymous visitors are sent to the portal's own sign-in page.
        assert status == 302, shown
        assert response["Location"].startswith(reverse("portal:sign_in")), shown
    elif (username is None or role == "patient") and rule == access.FHIR:
        # FHIR clients are told to authenticate (401 OperationOutcome), not sent to a page.
        assert status == 401, shown
        assert response.json()["resourceType"] == "OperationOutcome"
    elif (username is None or role == "patient") and route.transport == "api":
        assert status == 401, shown
        assert response.json()["code"] == "unauthenticated"
    elif username is None or role == "patient":
        # A portal session is no staff sign-in: staff pages ask for the staff login.
        assert status == 302, shown
        assert response["Location"].startswith(reverse("login")), shown
    else:
        assert status == 403, shown


@pytest.mark.parametrize("route", ROUTES)
def test_route_answers_each_role_as_its_rule_says(route: Route, scene: Any) -> None:
    # Every role meets the same scene: what one caller writes is undone before the next.
    prime(route, scene)
    wrong = []
    for role in ROLE_USERS:
        with undone():
            try:
                check_caller(route, role, scene)
            except AssertionError as failure:
                wrong.append(str(failure))
    assert not wrong, "\n".join(wrong)


class TestDjangoAdmin:
    """admin:* is Django's own: staff accounts reach it, everyone else is sent to its login."""

    @pytest.mark.parametrize("role", [r for r in ROLE_USERS if r != "patient"])
    def test_admin_index(self, role: str, world: Any) -> None:
        username = ROLE_USERS[role]
        user = world.staff[username] if username else AnonymousUser()
        response = client_for(username).get(reverse("admin:index"))
        if access.permits(access.ADMIN_SITE, user):
            assert response.status_code == 200
        else:
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("admin:login"))

    def test_only_org_admins_are_staff(self, world: Any) -> None:
        staff = sorted(u for u, s in world.staff.items() if s.is_staff)
        assert staff == ["admin", "admin.other"]


class TestStaticFiles:
    def test_static_files_answer_anonymous_visitors(self, db: Any) -> None:
        assert access.STATIC == access.PUBLIC
        response = Client().get("/static/careloop/app.css")
        assert response.status_code == 200
        assert body_of(response)

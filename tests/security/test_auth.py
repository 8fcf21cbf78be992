"""Sign-in, sessions, tokens, CSRF, headers, redirects, body limits and CSV exports."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.accounts.roles import Role
from careloop.audit.models import AuditEvent
from careloop.patients import models as m
from tests.conftest import PASSWORD, patient_data
from tests.security.scenario import Scene, body_of, client_for, form_data

NURSE = "nurse.cardiology"


def login(client: Client, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return client.get("/patients/").status_code == 200


@pytest.fixture
def anon() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en")


class TestLogin:
    def test_right_password_signs_in(self, world: Any, anon: Client) -> None:
        response = login(anon, NURSE)
        assert response.status_code == 302
        assert response["Location"] == "/"
        assert signed_in(anon)
        event = AuditEvent.objects.filter(action="auth.login").latest("id")
        assert (event.actor, event.outcome, event.organisation_id) == (
            NURSE,
            "success",
            world.org.pk,
        )

    def test_wrong_password_is_refused(self, world: Any, anon: Client) -> None:
        response = login(anon, NURSE, "not-the-password")
        assert response.status_code == 401
        assert "Wrong username or password." in response.content.decode()
        assert not signed_in(anon)

    def test_unknown_user_and_wrong_password_look_the_same(self, world: Any) -> None:
        wrong = login(Client(HTTP_ACCEPT_LANGUAGE="en"), NURSE, "not-the-password")
        unknown = login(Client(HTTP_ACCEPT_LANGUAGE="en"), "nobody.here", "not-the-password")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.context["error"] == unknown.context["error"]

        def page(response: Any, username: str) -> str:
            html = response.content.decode().replace(username, "USER")
            # Each response carries its own (masked) CSRF token.
            return re.sub(r'"[A-Za-z0-9]{64}"', '"TOKEN"', html)

        assert page(wrong, NURSE) == page(unknown, "nobody.here")

    def test_disabled_account_cannot_sign_in_and_is_not_told_why(
        self, world: Any, anon: Client
    ) -> None:
        Staff.objects.filter(username=NURSE).update(is_active=False)
        response = login(anon, NURSE)
        assert response.status_code == 401
        assert response.context["error"] == "Wrong username or password."
        assert not signed_in(anon)


class TestLockout:
    def _fail(self, client: Client, username: str, times: int) -> None:
        for _ in range(times):
            assert login(client, username, "wrong-guess").status_code == 401

    def test_locked_after_the_maximum_failures_even_with_the_right_password(
        self, world: Any, anon: Client
    ) -> None:
        self._fail(anon, NURSE, settings.LOGIN_MAX_FAILURES)
        response = login(anon, NURSE)
        assert response.status_code == 429
        assert "locked" in response.context["error"]
        assert not signed_in(anon)
        event = AuditEvent.objects.filter(action="auth.login").latest("id")
        assert (event.actor, event.outcome, event.detail["reason"]) == (
            NURSE,
            "denied",
            "locked_out",
        )

    def test_one_failure_short_of_the_maximum_still_signs_in(
        self, world: Any, anon: Client
    ) -> None:
        self._fail(anon, NURSE, settings.LOGIN_MAX_FAILURES - 1)
        assert login(anon, NURSE).status_code == 302

    def test_the_lock_ignores_letter_case(self, world: Any, anon: Client) -> None:
        self._fail(anon, NURSE.upper(), settings.LOGIN_MAX_FAILURES)
        assert login(anon, NURSE).status_code == 429

    def test_unknown_users_are_locked_alike(self, world: Any, anon: Client) -> None:
        self._fail(anon, "nobody.here", settings.LOGIN_MAX_FAILURES)
        known = Client(HTTP_ACCEPT_LANGUAGE="en")
        self._fail(known, "doctor.cardiology", settings.LOGIN_MAX_FAILURES)
        locked_unknown = login(anon, "nobody.here")
        locked_known = login(known, "doctor.cardiology")
        assert locked_unknown.status_code == locked_known.status_code == 429
        assert locked_unknown.context["error"] == locked_known.context["error"]

    def test_the_lock_is_per_account(self, world: Any, anon: Client) -> None:
        self._fail(anon, NURSE, settings.LOGIN_MAX_FAILURES)
        assert login(Client(), "doctor.cardiology").status_code == 302


class TestDisablingEndsAccess:
    def test_disabled_account_loses_its_session_and_tokens_at_once(
        self, world: Any, anon: Client
    ) -> None:
        assert login(anon, NURSE).status_code == 302
        token = accounts.issue_token(Staff.objects.get(username=NURSE))
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        assert signed_in(anon)
        assert anon.get("/api/me", **bearer).status_code == 200

        staff = Staff.objects.get(username=NURSE)
        staff.is_active = False
        staff.save()

        page = anon.get("/patients/")
        assert page.status_code == 302 and page["Location"].startswith("/login/")
        api = anon.get("/api/me", **bearer)
        assert api.status_code == 401
        assert api.json()["code"] == "unauthenticated"


class TestTokens:
    def test_revoked_token_is_refused(self, world: Any, anon: Client) -> None:
        staff = Staff.objects.get(username=NURSE)
        token = accounts.issue_token(staff)
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        assert anon.get("/api/patients", **bearer).status_code == 200
        assert accounts.revoke_tokens(staff) == 1
        response = anon.get("/api/patients", **bearer)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"

    @pytest.mark.parametrize(
        "header",
        ["", "Bearer", "Bearer cl_not-a-token", "Bearer x" * 300, "Basic bnVyc2U6cGFzcw=="],
    )
    def test_missing_or_forged_tokens_are_refused(
        self, world: Any, anon: Client, header: str
    ) -> None:
        extra = {"HTTP_AUTHORIZATION": header} if header else {}
        response = anon.get("/api/patients", **extra)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"

    def test_a_signed_in_session_does_not_authenticate_the_api(
        self, world: Any, anon: Client
    ) -> None:
        # So a forged cross-site request riding on the session cookie gets nothing.
        assert login(anon, NURSE).status_code == 302
        response = anon.post("/api/patients", patient_data(), content_type="application/json")
        assert response.status_code == 401
        assert not m.Patient.objects.exists()


class TestCsrf:
    @pytest.fixture
    def strict(self, world: Any) -> Client:
        client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(Staff.objects.get(username=NURSE))
        return client

    def test_form_post_without_token_is_refused(self, strict: Client) -> None:
        response = strict.post("/patients/new/", form_data(patient_data()))
        assert response.status_code == 403
        assert not m.Patient.objects.exists()

    def test_form_post_with_the_page_token_is_accepted(self, strict: Client) -> None:
        page = strict.get("/patients/new/")
        token = page.context["csrf_token"]
        response = strict.post(
            "/patients/new/", {**form_data(patient_data()), "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        assert m.Patient.objects.count() == 1

    def test_delete_without_token_is_refused(self, strict: Client, scene: Scene) -> None:
        row = scene.rows["allergies"]
        response = strict.post(
            f"/patients/{scene.patient.pk}/allergies/{row.pk}/delete/", {"version": row.version}
        )
        assert response.status_code == 403
        row.refresh_from_db()
        assert row.deleted_at is None

    def test_logout_and_language_without_token_are_refused(self, strict: Client) -> None:
        assert strict.post("/logout/").status_code == 403
        assert strict.post("/language/", {"language": "en"}).status_code == 403
        assert signed_in(strict)
        assert Staff.objects.get(username=NURSE).language == "zh-hans"

    def test_login_without_token_is_refused(self, world: Any) -> None:
        client = Client(enforce_csrf_checks=True)
        assert login(client, NURSE).status_code == 403
        assert not signed_in(client)


class TestSecurityHeaders:
    def test_pages_carry_the_policy_headers(self, world: Any, anon: Client) -> None:
        response = anon.get("/login/")
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "object-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"

    def test_signed_in_pages_are_not_stored(self, scene: Scene) -> None:
        client = client_for(NURSE)
        for url in ("/patients/", f"/patients/{scene.patient.pk}/", "/patients/999999/"):
            response = client.get(url)
            assert "no-store" in response.get("Cache-Control", ""), url
            assert response["X-Frame-Options"] == "DENY"

    def test_api_answers_with_patient_data_are_not_stored(self, scene: Scene, api: Any) -> None:
        for url in (
            "/api/patients",
            f"/api/patients/{scene.patient.pk}",
            f"/api/patients/{scene.patient.pk}/conditions",
        ):
            response = api(NURSE).get(url)
            assert response.status_code == 200
            assert "no-store" in response.get("Cache-Control", ""), url
            assert response["X-Content-Type-Options"] == "nosniff"

    def test_downloaded_reports_are_sandboxed_attachments(self, scene: Scene) -> None:
        row = scene.rows["reports"]
        response = client_for(NURSE).get(f"/patients/{scene.patient.pk}/reports/{row.pk}/file")
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment")
        assert "sandbox" in response["Content-Security-Policy"]
        assert "no-store" in response["Cache-Control"]
        body_of(response)


EVIL_TARGETS = [
    "https://evil.example/",
    "//evil.example/",
    "http:evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://testserver.evil.example/",
    "javascript:alert(1)",
    " https://evil.example",
]


class TestOpenRedirect:
    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_login_next_cannot_leave_the_site(self, world: Any, anon: Client, target: str) -> None:
        response = anon.post("/login/", {"username": NURSE, "password": PASSWORD, "next": target})
        assert response.status_code == 302
        assert response["Location"] == "/"

    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_login_next_in_the_query_cannot_leave_the_site(
        self, world: Any, anon: Client, target: str
    ) -> None:
        response = anon.post(
            "/login/?" + _query(next=target), {"username": NURSE, "password": PASSWORD}
        )
        assert response["Location"] == "/"

    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_language_next_cannot_leave_the_site(
        self, world: Any, anon: Client, target: str
    ) -> None:
        response = anon.post("/language/", {"language": "en", "next": target})
        assert response["Location"] == "/"

    def test_a_local_next_is_followed(self, world: Any, anon: Client) -> None:
        response = anon.post(
            "/login/", {"username": NURSE, "password": PASSWORD, "next": "/patients/?q=1234"}
        )
        assert response["Location"] == "/patients/?q=1234"


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


class TestBodyLimits:
    def _huge(self) -> str:
        body = patient_data(address="x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
        return json.dumps(body)

    def test_oversized_json_body_is_refused_with_413(
        self, world: Any, api: Any, client: Client, token: Any
    ) -> None:
        response = client.post(
            "/api/patients",
            self._huge(),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token(NURSE)}",
        )
        assert response.status_code == 413
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["code"] == "payload_too_large"
        assert not m.Patient.objects.exists()

    def test_oversized_patch_is_refused_with_413(
        self, scene: Scene, client: Client, token: Any
    ) -> None:
        before = m.Patient.objects.get(pk=scene.patient.pk).version
        response = client.patch(
            f"/api/patients/{scene.patient.pk}",
            self._huge(),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token(NURSE)}",
        )
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert m.Patient.objects.get(pk=scene.patient.pk).version == before

    def test_oversized_form_is_refused(self, world: Any) -> None:
        data = {
            **form_data(patient_data()),
            "address": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
        }
        response = client_for(NURSE).post("/patients/new/", data)
        assert response.status_code in (400, 413)
        assert not m.Patient.objects.exists()


FORMULAS = ["=1+1", "+SUM(1,1)", "-2+3", "@SUM(A1)"]


class TestCsvExport:
    def test_formula_cells_are_neutralised(self, world: Any) -> None:
        # Usernames may start with + - @ (Django's validator allows them); an address can be
        # anything a proxy hands over. Both end up in exported cells.
        for name in FORMULAS:
            accounts.create_staff(
                organisation_id=world.org.pk,
                username=name,
                password=PASSWORD,
                role=Role.NURSE,
                department_ids=[world.cardio.pk],
            )
            assert (
                login(Client(REMOTE_ADDR='=HYPERLINK("http://evil.example")'), name).status_code
                == 302
            )
        response = client_for("auditor").get("/audit/export.csv")
        assert response.status_code == 200
        text = body_of(response).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@")), row
        actors = {r["actor"] for r in rows if r["action"] == "auth.login"}
        assert {"'" + name for name in FORMULAS} <= actors
        assert '\'=HYPERLINK("http://evil.example")' in {r["source"] for r in rows}

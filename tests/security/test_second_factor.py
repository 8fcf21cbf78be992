"""Staff second factor: admins must set up an authenticator; codes are single-use, guessing
them is locked out like passwords, and no way into the site skips the second step."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from careloop.accounts import second_factor
from careloop.accounts.models import Organisation, SecondFactor, Staff
from careloop.audit.models import AuditEvent
from careloop.kit import totp
from careloop.web import second_factor_views
from tests.conftest import PASSWORD

NURSE = "nurse.cardiology"


@pytest.fixture
def anon() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en")


def password(client: Client, username: str, **data: str) -> Any:
    return client.post("/login/", {"username": username, "password": PASSWORD, **data})


def signed_in(client: Client) -> bool:
    return client.get("/patients/").status_code == 200


def next_code(username: str) -> str:
    """A code the server has not accepted yet: the current step's, or the next one's."""
    factor = SecondFactor.objects.get(staff__username=username)
    now = time.time()
    step = totp.step_of(now)
    if factor.last_step is not None and factor.last_step >= step:
        step = factor.last_step + 1
    return totp.code_for_step(str(factor.secret), step)


def set_up(client: Client, username: str) -> None:
    """Password, then the set-up page's secret confirmed with its code."""
    assert password(client, username)["Location"] == "/login/setup/"
    page = client.get("/login/setup/").content.decode()
    shown = re.search(r'data-testid="second-factor-secret">([A-Z2-7 ]+)<', page)
    assert shown is not None
    secret = shown.group(1).replace(" ", "")
    assert str(SecondFactor.objects.get(staff__username=username).secret) == secret
    done = client.post("/login/setup/", {"code": totp.code_at(secret, time.time())})
    assert done.status_code == 302


class TestAdmins:
    def test_the_password_alone_does_not_sign_an_admin_in(self, world: Any, anon: Client) -> None:
        response = password(anon, "admin")
        assert response.status_code == 302 and response["Location"] == "/login/setup/"
        assert not signed_in(anon)
        assert not AuditEvent.objects.filter(action="auth.login", outcome="success").exists()

    def test_setting_up_signs_in_and_goes_where_asked(self, world: Any, anon: Client) -> None:
        response = password(anon, "admin", next="/audit/")
        assert response["Location"] == "/login/setup/"
        page = anon.get("/login/setup/")
        assert page.status_code == 200 and page["Cache-Control"] == "no-store"
        body = page.content.decode()
        assert "data:image/svg+xml" in body  # the QR code
        secret = re.search(r'second-factor-secret">([A-Z2-7 ]+)<', body).group(1)  # type: ignore[union-attr]
        wrong = anon.post("/login/setup/", {"code": "000000"})
        assert wrong.status_code == 401 and not signed_in(anon)
        right = anon.post(
            "/login/setup/", {"code": totp.code_at(secret.replace(" ", ""), time.time())}
        )
        assert right.status_code == 302 and right["Location"] == "/audit/"
        assert signed_in(anon)
        assert SecondFactor.objects.get(staff__username="admin").confirmed_at is not None
        actions = set(AuditEvent.objects.values_list("action", "outcome"))
        assert ("auth.second_factor_setup", "failure") in actions
        assert ("auth.second_factor_setup", "success") in actions

    def test_after_set_up_every_sign_in_asks_for_a_code(self, world: Any) -> None:
        set_up(Client(), "admin")
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        assert password(client, "admin")["Location"] == "/login/code/"
        assert not signed_in(client)
        assert client.get("/login/setup/")["Location"] == "/login/code/"  # no second secret
        code = next_code("admin")
        assert client.post("/login/code/", {"code": code})["Location"] == "/"
        assert signed_in(client)

    def test_a_code_is_accepted_once(self, world: Any) -> None:
        set_up(Client(), "admin")
        first, second = Client(HTTP_ACCEPT_LANGUAGE="en"), Client(HTTP_ACCEPT_LANGUAGE="en")
        password(first, "admin")
        password(second, "admin")
        code = next_code("admin")
        assert first.post("/login/code/", {"code": code}).status_code == 302
        replay = second.post("/login/code/", {"code": code})
        assert replay.status_code == 401
        assert "used already" in replay.content.decode()
        assert not signed_in(second)

    def test_guessing_codes_locks_the_account_like_guessing_passwords(self, world: Any) -> None:
        set_up(Client(), "admin")
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        password(client, "admin")
        right = next_code("admin")
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        for _ in range(settings.LOGIN_MAX_FAILURES):
            assert client.post("/login/code/", {"code": wrong}).status_code == 401
        locked = client.post("/login/code/", {"code": right})
        assert locked.status_code == 429
        assert not signed_in(client)
        # Passing the password again does not reset the count.
        again = Client(HTTP_ACCEPT_LANGUAGE="en")
        assert password(again, "admin").status_code == 429

    @pytest.mark.parametrize("code", ["", "12345", "abcdef", "1234567", "<script>"])
    def test_malformed_codes_are_refused_plainly(self, world: Any, code: str) -> None:
        set_up(Client(), "admin")
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        password(client, "admin")
        response = client.post("/login/code/", {"code": code})
        assert response.status_code in (400, 401)
        assert "<script>" not in response.content.decode()
        assert not signed_in(client)

    def test_the_second_step_needs_a_passed_password_first(self, world: Any, anon: Client) -> None:
        for path in ("/login/code/", "/login/setup/"):
            assert anon.get(path)["Location"] == "/login/"
            assert anon.post(path, {"code": "123456"})["Location"] == "/login/"
        assert not SecondFactor.objects.exists()

    def test_a_passed_password_expires(self, world: Any, anon: Client, monkeypatch: Any) -> None:
        set_up(Client(), "admin")
        password(anon, "admin")
        code = next_code("admin")
        later = time.time() + second_factor_views.PENDING_SECONDS + 1
        monkeypatch.setattr(second_factor_views.time, "time", lambda: later)
        assert anon.post("/login/code/", {"code": code})["Location"] == "/login/"
        assert not signed_in(anon)

    def test_the_session_key_changes_after_the_password(self, world: Any, anon: Client) -> None:
        anon.get("/login/")
        before = anon.cookies.get(settings.SESSION_COOKIE_NAME)
        password(anon, "admin")
        after = anon.cookies[settings.SESSION_COOKIE_NAME].value
        assert before is None or before.value != after

    def test_the_admin_site_signs_in_through_the_second_factor(
        self, world: Any, anon: Client
    ) -> None:
        response = anon.get("/admin/login/?next=/admin/")
        assert response.status_code == 302
        assert response["Location"] == "/login/?next=%2Fadmin%2F"
        posted = anon.post("/admin/login/", {"username": "admin", "password": PASSWORD})
        assert posted.status_code == 302 and not signed_in(anon)
        outside = anon.get("/admin/login/?next=https://evil.example/")
        assert "evil" not in outside["Location"]


class TestOtherStaff:
    def test_a_nurse_signs_in_with_the_password_by_default(self, world: Any, anon: Client) -> None:
        assert password(anon, NURSE)["Location"] == "/"
        assert signed_in(anon)

    def test_the_organisation_can_ask_it_of_everyone(self, world: Any, anon: Client) -> None:
        Organisation.objects.filter(pk=world.org.pk).update(second_factor_for_all=True)
        assert password(anon, NURSE)["Location"] == "/login/setup/"
        assert not signed_in(anon)

    def test_a_nurse_who_set_one_up_is_asked_for_it(self, world: Any) -> None:
        Organisation.objects.filter(pk=world.org.pk).update(second_factor_for_all=True)
        set_up(Client(), NURSE)
        Organisation.objects.filter(pk=world.org.pk).update(second_factor_for_all=False)
        client = Client()
        assert password(client, NURSE)["Location"] == "/login/code/"


class TestReset:
    def test_an_admin_resets_a_lost_factor_and_it_is_audited(self, world: Any) -> None:
        Organisation.objects.filter(pk=world.org.pk).update(second_factor_for_all=True)
        set_up(Client(), NURSE)
        nurse = Staff.objects.get(username=NURSE)
        second_factor.reset(world.actor("admin"), nurse.pk)
        assert not SecondFactor.objects.filter(staff=nurse).exists()
        assert AuditEvent.objects.filter(
            action="auth.second_factor_reset", actor="admin", object_id=str(nurse.pk)
        ).exists()
        assert password(Client(), NURSE)["Location"] == "/login/setup/"

    def test_only_an_admin_of_the_same_organisation_can_reset(self, world: Any) -> None:
        from careloop.kit.errors import Forbidden, NotFound

        nurse = Staff.objects.get(username=NURSE)
        with pytest.raises(Forbidden):
            second_factor.reset(world.actor(NURSE), nurse.pk)
        with pytest.raises(NotFound):
            second_factor.reset(world.actor("admin.other"), nurse.pk)

    def test_a_confirmed_secret_is_never_shown_again(self, world: Any) -> None:
        set_up(Client(), "admin")
        staff = Staff.objects.get(username="admin")
        from careloop.kit.errors import Forbidden

        with pytest.raises(Forbidden):
            second_factor.pending_secret(staff)
        assert b"second-factor-secret" not in self._setup_page_after_password()

    @staticmethod
    def _setup_page_after_password() -> bytes:
        client = Client()
        password(client, "admin")
        return client.get("/login/setup/", follow=True).content

"""Portal sign-in with a one-time SMS code: format, single use, expiry, wrong tries, rate
limits, no enumeration, browser binding, several records, caregivers by proxy."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from careloop.audit.models import AuditEvent
from careloop.portal import otp
from careloop.portal.context import COOKIE
from careloop.portal.models import PortalSession, SignInCode
from tests.conftest import patient_data
from tests.portal.access_support import (
    CODE,
    SIGN_IN,
    add_caregiver,
    ask,
    browser,
    codes_to,
    enter,
    frozen,
    last_code,
    phone_of,
    portal_sms,
    without_tokens,
)

pytestmark = pytest.mark.django_db
__all__ = ["portal_sms"]  # the fixture, imported for pytest

UNKNOWN = "13712345678"


def signed_in(client: Any) -> PortalSession | None:
    import hashlib

    token = client.cookies.get(COOKIE)
    if token is None or not token.value:
        return None
    return PortalSession.objects.filter(
        token_digest=hashlib.sha256(token.value.encode()).hexdigest(), ended_at__isnull=True
    ).first()


class TestCodes:
    def test_six_digits_from_the_csprng(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert all(re.fullmatch(r"\d{6}", otp.new_code()) for _ in range(300))
        calls = []

        def fake_randbelow(n: int) -> int:
            calls.append(n)
            return 42

        monkeypatch.setattr(otp.secrets, "randbelow", fake_randbelow)
        assert otp.new_code() == "000042"
        assert calls == [1_000_000]

    def test_only_a_keyed_digest_is_stored(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        ask(browser(), phone_of(p))
        code = last_code(portal_sms, phone_of(p))
        row = SignInCode.objects.get()
        stored = " ".join(str(v) for v in row.__dict__.values())
        assert code not in stored
        assert phone_of(p) not in stored
        assert row.code_digest and len(row.code_digest) == 64

    def test_sign_in_lands_on_today_and_is_audited(
        self, make_patient: Any, portal_sms: Any
    ) -> None:
        p = make_patient()
        client = browser()
        answer = ask(client, phone_of(p))
        assert answer.status_code == 302 and answer["Location"].startswith(CODE)
        assert "code" in portal_sms.sent[-1].extra["params"]
        done = enter(client, last_code(portal_sms, phone_of(p)))
        assert done.status_code == 302 and done["Location"] == "/portal/"
        session = signed_in(client)
        assert session is not None and session.patient_id == p.pk and session.method == "code"
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {"portal.code_request", "portal.sign_in"} <= actions
        assert client.get("/portal/me").status_code == 200

    def test_a_used_code_is_refused(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        client = browser()
        ask(client, phone_of(p))
        code = last_code(portal_sms, phone_of(p))
        otp_cookie = client.cookies["careloop_portal_otp"].value
        assert enter(client, code).status_code == 302
        # Replay from a browser holding the same cookie and the same code.
        replay = browser()
        replay.cookies["careloop_portal_otp"] = otp_cookie
        again = enter(replay, code)
        assert again.status_code == 200
        assert b"can no longer be used" in again.content
        assert signed_in(replay) is None
        assert PortalSession.objects.filter(patient=p).count() == 1

    def test_expires_after_ten_minutes(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
        with frozen(start) as clock:
            late = browser()
            ask(late, phone_of(p))
            clock.move(10 * 60 + 1)
            answer = enter(late, last_code(portal_sms, phone_of(p)))
            assert b"can no longer be used" in answer.content
            assert signed_in(late) is None
            in_time = browser("10.0.0.2")
            ask(in_time, phone_of(p))
            clock.move(9 * 60 + 50)
            assert enter(in_time, last_code(portal_sms, phone_of(p))).status_code == 302
            assert signed_in(in_time) is not None

    def test_five_wrong_tries_end_the_code(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        client = browser()
        ask(client, phone_of(p))
        code = last_code(portal_sms, phone_of(p))
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for left in (4, 3, 2, 1):
            answer = enter(client, wrong)
            assert answer.status_code == 422
            assert f"try {left} more".encode() in answer.content
        assert b"can no longer be used" in enter(client, wrong).content
        assert b"can no longer be used" in enter(client, code).content
        assert signed_in(client) is None
        failures = AuditEvent.objects.filter(action="portal.sign_in", outcome="failure")
        assert failures.count() == 6


class TestRateLimits:
    def test_per_number_known_or_not(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        for number in (phone_of(p), UNKNOWN):
            answers = [ask(browser(f"10.1.0.{i}"), number).status_code for i in range(6)]
            assert answers == [302] * 5 + [429]
        assert len(codes_to(portal_sms, phone_of(p))) == 5

    def test_per_address(self, portal_sms: Any) -> None:
        answers = [ask(browser("10.2.0.1"), f"137000000{i:02d}").status_code for i in range(21)]
        assert answers == [302] * 20 + [429]
        assert ask(browser("10.2.0.2"), "13700000099").status_code == 302

    def test_per_organisation(self, portal_sms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(otp, "PER_ORGANISATION", 3)
        answers = [ask(browser(f"10.3.0.{i}"), f"137100000{i:02d}").status_code for i in range(4)]
        assert answers == [302, 302, 302, 429]
        # Another organisation's budget is its own.
        assert ask(browser("10.3.1.1"), "13710000077", org="other").status_code == 302

    def test_limits_hold_in_the_database(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        for i in range(5):
            ask(browser(f"10.4.0.{i}"), phone_of(p))
        # A fresh process would see the same rows: the limit is a count of them.
        assert SignInCode.objects.filter(phone_index=otp.phone_index(phone_of(p))).count() == 5
        assert ask(browser("10.4.1.1"), phone_of(p)).status_code == 429


class TestNoEnumeration:
    def test_same_answer_for_known_and_unknown(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        known, unknown = browser("10.5.0.1"), browser("10.5.0.2")
        a, b = ask(known, phone_of(p)), ask(unknown, UNKNOWN)
        assert (a.status_code, a["Location"]) == (b.status_code, b["Location"])
        assert set(known.cookies) == set(unknown.cookies) == {"careloop_portal_otp"}
        page_a = without_tokens(known.get(CODE).content.decode())
        page_b = without_tokens(unknown.get(CODE).content.decode())
        assert page_a == page_b
        assert codes_to(portal_sms, UNKNOWN) == []
        assert len(codes_to(portal_sms, phone_of(p))) == 1
        # Any code typed for the unknown number is just "not right".
        assert enter(unknown, "123456").status_code == 422
        # The audit trail does not say which number belongs to a patient.
        requests = AuditEvent.objects.filter(action="portal.code_request")
        assert [e.patient_id for e in requests] == [None, None]

    def test_unknown_number_waits_like_a_send(
        self, world: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import time

        monkeypatch.setitem(otp._typical_send, "seconds", 0.3)
        started = time.monotonic()
        assert ask(browser(), UNKNOWN).status_code == 302
        assert time.monotonic() - started >= 0.24


class TestBrowserBinding:
    def test_another_browser_cannot_use_the_code(self, make_patient: Any, portal_sms: Any) -> None:
        p = make_patient()
        asker, thief = browser("10.6.0.1"), browser("10.6.0.2")
        ask(asker, phone_of(p))
        code = last_code(portal_sms, phone_of(p))
        # Without the asking browser's cookie there is nothing to enter the code into.
        answer = enter(thief, code)
        assert answer.status_code == 302 and answer["Location"].startswith(SIGN_IN)
        # With a code request of its own, the stolen code is simply wrong.
        ask(thief, UNKNOWN)
        assert enter(thief, code).status_code == 422
        assert signed_in(thief) is None
        # A forged cookie (not signed by the server) is ignored.
        row = SignInCode.objects.order_by("id").first()
        assert row is not None
        thief.cookies["careloop_portal_otp"] = f"{row.pk}:forged"
        assert enter(thief, code).status_code == 302
        assert signed_in(thief) is None
        assert enter(asker, code).status_code == 302
        assert signed_in(asker) is not None


class TestSeveralRecords:
    def test_choose_between_records_with_masked_names(
        self, world: Any, portal_sms: Any, make_patient: Any
    ) -> None:
        from careloop.patients import services as patient_services

        phone = "13912340000"
        mine = make_patient(name="王建国", phones=[phone])
        other = patient_services.create_patient(
            world.actor("nurse.other"), patient_data(name="王小明", phones=[phone])
        )
        client = browser()
        answer = client.post(SIGN_IN, {"phone": phone})  # no organisation named: all of them
        assert answer.status_code == 302
        step = client.post(CODE, {"code": last_code(portal_sms, phone)})
        assert step.status_code == 302 and step["Location"].startswith("/portal/sign-in/choose")
        page = client.get("/portal/sign-in/choose").content.decode()
        assert "王**" in page and "王建国" not in page and "王小明" not in page
        assert "Other Hospital" in page
        done = client.post("/portal/sign-in/choose", {"choice": "1"})
        assert done.status_code == 302
        session = signed_in(client)
        assert session is not None and session.patient_id == other.pk != mine.pk
        # The code is used up: choosing again from another tab does nothing.
        assert client.post("/portal/sign-in/choose", {"choice": "0"})["Location"].startswith(
            SIGN_IN
        )

    def test_organisation_in_the_link_narrows_the_search(
        self, world: Any, portal_sms: Any, make_patient: Any
    ) -> None:
        from careloop.patients import services as patient_services

        phone = "13912340001"
        mine = make_patient(phones=[phone])
        patient_services.create_patient(world.actor("nurse.other"), patient_data(phones=[phone]))
        client = browser()
        ask(client, phone, org="test")
        assert enter(client, last_code(portal_sms, phone))["Location"] == "/portal/"
        session = signed_in(client)
        assert session is not None and session.patient_id == mine.pk


class TestCaregivers:
    def test_caregiver_signs_in_only_with_consent(
        self, world: Any, portal_sms: Any, make_patient: Any
    ) -> None:
        from careloop.portal import services

        p = make_patient()
        carer = add_caregiver(world, p, "13655550000")
        # No consent recorded: the caregiver's number is unknown to the portal.
        ask(browser("10.7.0.1"), "13655550000")
        assert codes_to(portal_sms, "13655550000") == []
        services.grant_proxy(
            world.actor("nurse.cardiology"), p.pk, carer.pk, source="paper", consent=True,
            notify=False,
        )  # fmt: skip
        client = browser("10.7.0.2")
        ask(client, "13655550000")
        assert enter(client, last_code(portal_sms, "13655550000"))["Location"] == "/portal/"
        session = signed_in(client)
        assert session is not None
        assert (session.patient_id, session.caregiver_id) == (p.pk, carer.pk)
        me = client.get("/portal/me")
        assert me.status_code == 200 and b'data-testid="proxy-badge"' in me.content
        # The patient withdraws access: the caregiver's session ends at once.
        from tests.portal.client import portal_client

        patient_client = portal_client(p)
        proxy = services.PortalProxy.objects.get(patient=p)
        assert patient_client.post(f"/portal/me/family/{proxy.pk}/revoke").status_code == 302
        after = client.get("/portal/me")
        assert after.status_code == 302 and after["Location"].startswith(SIGN_IN)
        ask(browser("10.7.0.3"), "13655550000")
        assert len(codes_to(portal_sms, "13655550000")) == 1

    def test_old_number_loses_access_when_the_caregiver_number_changes(
        self, world: Any, portal_sms: Any, make_patient: Any
    ) -> None:
        from careloop.patients import services as patient_services
        from careloop.portal import services

        p = make_patient()
        nurse = world.actor("nurse.cardiology")
        carer = add_caregiver(world, p, "13655557777")
        services.grant_proxy(nurse, p.pk, carer.pk, source="verbal", consent=True, notify=False)
        patient_services.update_record(
            nurse,
            p.pk,
            "caregivers",
            carer.pk,
            {"name": carer.name, "relation": carer.relation, "phone": "13655558888"},
            carer.version,
        )
        client = browser("10.8.0.1")
        ask(client, "13655557777")
        answer = enter(client, last_code(portal_sms, "13655557777"))
        assert b"can no longer be used" in answer.content
        assert signed_in(client) is None

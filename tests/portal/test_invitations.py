"""Staff's portal-access panel: invitation links and QR codes (single use, expiring), ending a
patient's sessions, and family access recorded with the patient's consent."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.portal.models import Invitation, PortalProxy, PortalSession
from tests.conftest import PASSWORD
from tests.portal.access_support import add_caregiver, frozen
from tests.portal.client import portal_client


@pytest.fixture(autouse=True)
def english_staff(world: Any) -> None:
    """Staff pages in English, so that the assertions can name their text."""
    from careloop.accounts.models import Staff

    Staff.objects.update(language="en")


pytestmark = pytest.mark.django_db


def staff(username: str = "nurse.cardiology") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=username, password=PASSWORD)
    return client


def path_of(link: str) -> str:
    return link[link.index("/portal/invite/") :]


class TestInvitation:
    def test_link_and_qr_code_sign_in_once(self, make_patient: Any) -> None:
        p = make_patient()
        nurse = staff()
        panel = nurse.get(f"/portal-access/{p.pk}/")
        assert panel.status_code == 200 and b"Portal access" in panel.content
        page = nurse.post(f"/portal-access/{p.pk}/invite/").content.decode()
        link = re.search(r'value="(http[^"]+/portal/invite/[^"]+)"', page)
        assert link is not None
        qr = re.search(r'src="data:image/svg\+xml[^"]*"', page)
        assert qr is not None  # an SVG QR code made on the server
        token = link.group(1).rsplit("/", 1)[1]
        assert Invitation.objects.filter(token_digest__contains=token).count() == 0  # digest only
        phone = Client(HTTP_ACCEPT_LANGUAGE="en")
        shown = phone.get(path_of(link.group(1)))  # a link preview does not use it up
        assert shown.status_code == 200 and b'data-testid="use-invitation"' in shown.content
        used = phone.post(path_of(link.group(1)))
        assert used.status_code == 302 and used["Location"] == "/portal/"
        assert phone.get("/portal/me").status_code == 200
        session = PortalSession.objects.get(patient=p)
        assert session.method == "invitation"
        again = Client(HTTP_ACCEPT_LANGUAGE="en").post(path_of(link.group(1)))
        assert again.status_code == 410
        assert b"already used" in again.content
        actions = list(AuditEvent.objects.filter(patient_id=p.pk).values_list("action", flat=True))
        assert "portal.invitation.create" in actions and "portal.invitation.use" in actions

    def test_expired_link_shows_a_clear_page(self, make_patient: Any) -> None:
        p = make_patient()
        with frozen(datetime(2026, 3, 1, 0, 0, tzinfo=UTC)) as clock:
            page = staff().post(f"/portal-access/{p.pk}/invite/").content.decode()
            link = re.search(r'value="http[^"]+(/portal/invite/[^"]+)"', page)
            assert link is not None
            clock.move(72 * 3600 + 1)
            answer = Client(HTTP_ACCEPT_LANGUAGE="en").post(link.group(1))
        assert answer.status_code == 410
        assert b"no longer valid" in answer.content
        assert not PortalSession.objects.filter(patient=p).exists()

    def test_unknown_token(self, world: Any) -> None:
        answer = Client(HTTP_ACCEPT_LANGUAGE="en").get("/portal/invite/not-a-real-token")
        assert answer.status_code == 410

    def test_other_department_cannot_make_links(self, make_patient: Any) -> None:
        p = make_patient()
        assert (
            staff("nurse.endocrinology").post(f"/portal-access/{p.pk}/invite/").status_code == 404
        )
        assert staff("auditor").get(f"/portal-access/{p.pk}/").status_code == 403
        assert not Invitation.objects.exists()

    def test_command_prints_a_link(self, make_patient: Any) -> None:
        p = make_patient()
        out, err = io.StringIO(), io.StringIO()
        call_command("portal", "invite", "--patient", str(p.pk), stdout=out, stderr=err)
        link = out.getvalue().strip()
        assert "/portal/invite/" in link
        answer = Client().post(path_of(link))
        assert answer.status_code == 302

    def test_patient_page_links_to_the_panel(self, make_patient: Any) -> None:
        p = make_patient()
        page = staff().get(f"/patients/{p.pk}/")
        assert f"/portal-access/{p.pk}/".encode() in page.content


class TestRevocation:
    def test_staff_sign_out_everywhere(self, make_patient: Any) -> None:
        p = make_patient()
        one, two = portal_client(p), portal_client(p)
        assert one.get("/portal/me").status_code == 200
        nurse = staff()
        unused = re.search(
            r'value="http[^"]+(/portal/invite/[^"]+)"',
            nurse.post(f"/portal-access/{p.pk}/invite/").content.decode(),
        )
        assert unused is not None
        answer = nurse.post(f"/portal-access/{p.pk}/sessions/revoke/")
        assert answer.status_code == 302
        for client in (one, two):
            gone = client.get("/portal/me")
            assert gone.status_code == 302 and gone["Location"].startswith("/portal/sign-in")
        assert Client().post(unused.group(1)).status_code == 410  # unused links are void too
        assert AuditEvent.objects.filter(action="portal.session.revoke", patient_id=p.pk).exists()

    def test_sign_out_ends_the_session_row(self, make_patient: Any) -> None:
        p = make_patient()
        client = portal_client(p)
        cookie = client.cookies["careloop_portal"].value
        page = client.post("/portal/sign-out")
        assert page.status_code == 200 and b"data-clear-offline" in page.content
        copied = Client()
        copied.cookies["careloop_portal"] = cookie
        assert copied.get("/portal/me").status_code == 302


class TestFamilyConsent:
    def test_staff_must_record_consent(self, world: Any, make_patient: Any) -> None:
        p = make_patient()
        carer = add_caregiver(world, p, "13655551111")
        nurse = staff()
        refused = nurse.post(
            f"/portal-access/{p.pk}/family/", {"caregiver": carer.pk, "source": "paper"}
        )
        assert refused.status_code == 422
        assert not PortalProxy.objects.exists()
        granted = nurse.post(
            f"/portal-access/{p.pk}/family/",
            {"caregiver": carer.pk, "source": "verbal", "consent": "on", "notify": "on"},
        )
        assert granted.status_code == 302
        proxy = PortalProxy.objects.get()
        assert proxy.consent_source == "verbal" and proxy.granted_by is not None
        assert proxy.notify_missed_doses and proxy.consent_text
        carer_client = portal_client(p, caregiver=carer)
        assert carer_client.get("/portal/me").status_code == 200
        assert nurse.post(f"/portal-access/{p.pk}/family/{proxy.pk}/revoke/").status_code == 302
        assert carer_client.get("/portal/me").status_code == 302
        actions = set(AuditEvent.objects.filter(patient_id=p.pk).values_list("action", flat=True))
        assert {"portal.proxy.grant", "portal.proxy.revoke"} <= actions

    def test_patient_grants_from_me(self, world: Any, make_patient: Any) -> None:
        p = make_patient()
        carer = add_caregiver(world, p, "13655552222")
        client = portal_client(p)
        me = client.get("/portal/me").content.decode()
        assert 'data-testid="consent-text"' in me and "I can withdraw this" in me
        refused = client.post("/portal/me/family/grant", {"caregiver": carer.pk})
        assert refused.status_code == 422 and not PortalProxy.objects.exists()
        ok = client.post("/portal/me/family/grant", {"caregiver": carer.pk, "consent": "1"})
        assert ok.status_code == 302
        proxy = PortalProxy.objects.get()
        assert proxy.consent_source == "portal" and proxy.granted_by is None
        assert not proxy.notify_missed_doses
        client.post(f"/portal/me/family/{proxy.pk}/notify", {"notify": "1"})
        proxy.refresh_from_db()
        assert proxy.notify_missed_doses
        # A caregiver cannot give or take others' access.
        carer_client = portal_client(p, caregiver=carer)
        assert carer_client.post(f"/portal/me/family/{proxy.pk}/revoke").status_code == 403

    def test_another_patients_proxy_is_not_found(self, world: Any, make_patient: Any) -> None:
        p, q = make_patient(), make_patient()
        carer = add_caregiver(world, q, "13655553333")
        client = portal_client(q)
        client.post("/portal/me/family/grant", {"caregiver": carer.pk, "consent": "1"})
        proxy = PortalProxy.objects.get()
        assert portal_client(p).post(f"/portal/me/family/{proxy.pk}/revoke").status_code == 404
        # p cannot give q's caregiver access to p's record either.
        bad = portal_client(p).post(
            "/portal/me/family/grant", {"caregiver": carer.pk, "consent": "1"}
        )
        assert bad.status_code == 422
        proxy.refresh_from_db()
        assert proxy.revoked_at is None


def test_qr_is_svg() -> None:
    from careloop.portal.staff_views import qr_data_uri

    uri = qr_data_uri("https://example.org/portal/invite/abc")
    assert uri.startswith("data:image/svg+xml")
    if ";base64," in uri:
        assert b"<svg" in base64.b64decode(uri.split(",", 1)[1])
    else:
        assert "svg" in uri

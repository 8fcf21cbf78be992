"""The portal and staff pages render, with empty states, elder mode and audited reads; the
check-in button; the demo data."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.engagement import demo, selectors, services
from careloop.engagement import models as em
from tests.engagement.conftest import actor_of, diagnose
from tests.portal.client import portal_client


@pytest.fixture(autouse=True)
def english_staff(world: Any) -> None:
    """Staff pages in English, so that the assertions can name their text."""
    from careloop.accounts.models import Staff

    Staff.objects.update(language="en")


pytestmark = pytest.mark.django_db


class TestPortalPages:
    def test_empty_states(self, patient: Any) -> None:
        client = portal_client(patient)
        rewards = client.get(reverse("portal:rewards")).content.decode()
        assert 'data-testid="no-rewards"' in rewards and 'data-testid="check-in"' in rewards
        board = client.get(reverse("portal:leaderboard")).content.decode()
        assert 'data-testid="board-empty"' in board
        community = client.get(reverse("portal:community")).content.decode()
        assert 'data-testid="no-communities"' in community

    def test_check_in_button_adds_a_point_and_a_streak(
        self, patient: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = portal_client(patient)
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("portal:check_in"))
        html = client.get(reverse("portal:rewards")).content.decode()
        assert 'data-testid="checked-in"' in html
        assert 'data-testid="balance">1<' in html and 'data-testid="streak">1<' in html
        with django_capture_on_commit_callbacks(execute=True):
            again = client.post(reverse("portal:check_in"), follow=True)
        assert "already checked in today" in again.content.decode()
        assert services.balance(patient.pk) == 1
        assert (
            AuditEvent.objects.filter(
                action="portal.engagement.check_in", patient_id=patient.pk
            ).count()
            == 1
        )

    def test_check_in_is_post_only(self, patient: Any) -> None:
        assert portal_client(patient).get(reverse("portal:check_in")).status_code == 405

    def test_reads_are_audited_as_the_patient(self, patient: Any) -> None:
        portal_client(patient).get(reverse("portal:rewards"))
        event = AuditEvent.objects.get(action="portal.engagement.view")
        assert (event.patient_id, event.actor) == (patient.pk, f"patient:{patient.pk}")

    def test_elder_mode(self, patient: Any) -> None:
        client = portal_client(patient)
        client.cookies["careloop_elder"] = "1"
        html = client.get(reverse("portal:rewards")).content.decode()
        assert 'class="elder"' in html

    def test_chinese(self, patient: Any) -> None:
        response = portal_client(patient, language="zh-hans").get(reverse("portal:rewards"))
        assert response.status_code == 200

    def test_signed_out_visitors_go_to_the_portal_sign_in(self, db: Any) -> None:
        response = Client().get(reverse("portal:rewards"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("portal:sign_in"))


class TestStaffPages:
    def test_moderators_and_admins_pages(self, world: Any, client: Any) -> None:
        client.force_login(world.staff["nurse.cardiology"])
        html = client.get(reverse("engagement:community")).content.decode()
        assert "Nothing is waiting for review." in html
        assert 'data-testid="nav-community"' in html
        assert client.get(reverse("engagement:rewards")).status_code == 403
        client.force_login(world.staff["admin"])
        for name in ("engagement:rewards", "engagement:redemptions", "engagement:rules"):
            assert client.get(reverse(name)).status_code == 200, name
        assert client.get(reverse("engagement:community")).status_code == 403

    def test_point_rules_per_organisation(self, world: Any, client: Any, patient: Any) -> None:
        client.force_login(world.staff["admin"])
        data = {}
        for kind in ("dose_taken", "reading", "questionnaire", "content_read", "check_in"):
            data[f"{kind}_points"] = 4
            data[f"{kind}_cap"] = 8
        assert client.post(reverse("engagement:rules"), data).status_code == 302
        rules = services.rules_for(world.org.pk)
        assert (rules["reading"].points, rules["reading"].daily_cap) == (4, 8)
        assert services.rules_for(world.other_org.pk)["reading"].points == 3
        data["reading_points"] = -1
        assert client.post(reverse("engagement:rules"), data).status_code == 422


class TestDemo:
    def test_build(self, world: Any, make_patient: Any) -> None:
        for i in range(4):
            p = make_patient()
            diagnose(world, p, "I10" if i % 2 else "E11")
        result = demo.build(world.org, seed=7)
        assert result.rewards == 4 and len(result.communities) == 2
        assert result.posts == 4 and result.session is not None
        assert em.Post.objects.filter(status="published").count() == 4
        player = em.Wallet.objects.exclude(nickname="").first()
        assert player is not None and player.current_streak >= 5
        board = selectors.leaderboard(actor_of(player.patient))
        assert board.opted_in and board.rows[0]["points"] > 0
        # Demo members see their community's posts in the portal.
        membership = em.Membership.objects.filter(patient=player.patient).first()
        assert membership is not None
        html = portal_client(player.patient).get(
            reverse("portal:community_detail", args=[membership.community_id])
        )
        assert html.status_code == 200 and player.nickname in html.content.decode()

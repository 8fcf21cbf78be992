"""The community: joining by condition, personal data blocked, escaping, moderation, reports,
expert Q&A, nicknames only; and the opt-in leaderboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.engagement import domain, selectors, services
from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound, ValidationFailed
from tests.conftest import VALID_ID
from tests.engagement.conftest import actor_of, diagnose, give_points
from tests.portal.client import portal_client


@pytest.fixture(autouse=True)
def english_staff(world: Any) -> None:
    """Staff pages in English, so that the assertions can name their text."""
    from careloop.accounts.models import Staff

    Staff.objects.update(language="en")


pytestmark = pytest.mark.django_db


def community(world: Any, **overrides: Any) -> em.Community:
    data = {"name": "高血压之家", "condition": "hypertension", "icd10_prefixes": "I10, I11",
            "moderation": "pre", "active": "on"}  # fmt: skip
    data.update(overrides)
    return services.save_community(world.actor("nurse.cardiology"), data)


def member(world: Any, patient: Any, c: em.Community, nickname: str) -> Any:
    diagnose(world, patient, "I10", "原发性高血压")
    actor = actor_of(patient)
    services.save_profile(actor, {"nickname": nickname})
    services.join(actor, c.pk)
    return actor


class TestPersonalData:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("有事打我电话 13812345678", "phone"),
            ("电话 138-1234-5678 找我", "phone"),
            ("+86 139 1234 5678", "phone"),
            ("座机 010-62345678", "phone"),
            (f"身份证 {VALID_ID}", "national_id"),
            ("身份证号 110105194912310021", "national_id"),
            ("邮箱 wang.xy@example.com 联系", "email"),
            ("mail: wang＠example.cn", "email"),
        ],
    )
    def test_found(self, text: str, kind: str) -> None:
        assert kind in domain.personal_data_problems(text)

    @pytest.mark.parametrize(
        "text",
        [
            "今天血压 135/85，心率 72",
            "空腹血糖 6.1 mmol/L，餐后 8.4",
            "每天走 8000 步，坚持了 30 天",
            "2026-03-09 复查",
        ],
    )
    def test_ordinary_health_talk_passes(self, text: str) -> None:
        assert domain.personal_data_problems(text) == []

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ("加我 13812345678", "a phone number"),
            (f"我的身份证是 {VALID_ID}", "an ID card number"),
            ("写信到 someone@example.com", "an e-mail address"),
        ],
    )
    def test_a_post_with_personal_data_is_blocked_with_a_clear_message(
        self, world: Any, patient: Any, text: str, words: str
    ) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        response = portal_client(patient).post(
            reverse("portal:post_create", args=[c.pk]), {"body": text}
        )
        assert response.status_code == 422
        page = response.content.decode()
        assert f"For your safety, remove {words} before posting" in page
        assert not em.Post.objects.exists()

    def test_the_warning_is_shown_before_posting(self, world: Any, patient: Any) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        page = portal_client(patient).get(reverse("portal:community_detail", args=[c.pk]))
        assert 'data-testid="privacy-warning"' in page.content.decode()


class TestPostsAndModeration:
    def test_stored_xss_is_shown_escaped(self, world: Any, patient: Any, other: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
        post = services.create_post(actor_of(patient), c.pk, {"body": attack})
        for client in (portal_client(other),):
            html = client.get(reverse("portal:post", args=[post.pk])).content.decode()
            assert "<script>alert(1)" not in html and "<img src=x" not in html
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        from django.test import Client

        staff = Client()
        staff.force_login(world.staff["nurse.cardiology"])
        html = staff.get(reverse("engagement:community")).content.decode()
        assert "<script>alert(1)" not in html and "&lt;script&gt;" in html

    def test_pre_moderation_holds_posts_until_approved(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        post = services.create_post(actor_of(patient), c.pk, {"body": "分享一下我的控压经验"})
        assert post.status == "pending"
        assert post not in selectors.community_posts(actor_of(other), c)
        assert post in selectors.community_posts(actor_of(patient), c)  # the author sees it
        with pytest.raises(NotFound):
            services.visible_post(actor_of(other), post.pk)
        queue = selectors.moderation_queue(world.actor("nurse.cardiology"))
        assert list(queue["pending"]) == [post]
        services.moderate(world.actor("nurse.cardiology"), post.pk, {"decision": "approve"})
        assert post in selectors.community_posts(actor_of(other), c)
        assert AuditEvent.objects.filter(action="engagement.post.approve").exists()

    def test_post_moderation_publishes_at_once(self, world: Any, patient: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        post = services.create_post(actor_of(patient), c.pk, {"body": "今天走了一万步"})
        assert post.status == "published"

    def test_hiding_needs_a_reason_that_the_author_sees(self, world: Any, patient: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        post = services.create_post(actor_of(patient), c.pk, {"body": "这个偏方包治百病"})
        nurse = world.actor("nurse.cardiology")
        with pytest.raises(ValidationFailed):
            services.moderate(nurse, post.pk, {"decision": "hide"})
        services.moderate(nurse, post.pk, {"decision": "hide", "reason": "未经证实的疗法"})
        page = portal_client(patient).get(reverse("portal:community_detail", args=[c.pk]))
        assert "未经证实的疗法" in page.content.decode()
        with pytest.raises(Forbidden):
            services.moderate(world.actor("auditor"), post.pk, {"decision": "approve"})
        with pytest.raises(NotFound):  # another organisation's moderator
            services.moderate(world.actor("nurse.other"), post.pk, {"decision": "approve"})

    def test_report_flow(self, world: Any, patient: Any, other: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        post = services.create_post(actor_of(other), c.pk, {"body": "买我的保健品，降压神药"})
        client = portal_client(patient)
        response = client.post(reverse("portal:post_report", args=[post.pk]), {"reason": "广告"})
        assert response.status_code == 302
        with pytest.raises(ValidationFailed):
            services.report(actor_of(patient), post.pk, {"reason": "again"})
        with pytest.raises(NotFound):  # one does not report oneself
            services.report(actor_of(other), post.pk, {"reason": "x"})
        nurse = world.actor("nurse.cardiology")
        queue = selectors.moderation_queue(nurse)
        assert [r.post_id for r in queue["reports"]] == [post.pk]
        services.moderate(nurse, post.pk, {"decision": "remove", "reason": "商业广告"})
        report = em.Report.objects.get()
        assert report.outcome == "acted" and report.resolved_by == world.staff["nurse.cardiology"]
        assert list(selectors.moderation_queue(nurse)["reports"]) == []
        assert client.get(reverse("portal:post", args=[post.pk])).status_code == 404

    def test_dismissing_a_report(self, world: Any, patient: Any, other: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        post = services.create_post(actor_of(other), c.pk, {"body": "大家晚安"})
        report = services.report(actor_of(patient), post.pk, {"reason": "看不惯"})
        services.dismiss_report(world.actor("nurse.cardiology"), report.pk)
        report.refresh_from_db()
        assert report.outcome == "dismissed"
        post.refresh_from_db()
        assert post.status == "published"

    def test_another_patients_post_cannot_be_edited(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        post = services.create_post(actor_of(patient), c.pk, {"body": "原文"})
        intruder = portal_client(other)
        url = reverse("portal:post_edit", args=[post.pk])
        assert intruder.get(url).status_code == 404
        assert intruder.post(url, {"body": "篡改"}).status_code == 404
        post.refresh_from_db()
        assert post.body == "原文"
        # The author can; in a pre-moderated community the change is reviewed again.
        c.moderation = "pre"
        c.save()
        assert portal_client(patient).post(url, {"body": "修改后"}).status_code == 302
        post.refresh_from_db()
        assert (post.body, post.status) == ("修改后", "pending")

    def test_replies(self, world: Any, patient: Any, other: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        post = services.create_post(actor_of(patient), c.pk, {"body": "问个问题"})
        response = portal_client(other).post(
            reverse("portal:post_reply", args=[post.pk]), {"body": "我来回答"}
        )
        assert response.status_code == 302
        html = portal_client(patient).get(reverse("portal:post", args=[post.pk])).content.decode()
        assert "我来回答" in html and "老李" in html

    def test_posts_show_nicknames_never_names(self, world: Any, patient: Any, other: Any) -> None:
        c = community(world, moderation="post")
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        services.create_post(actor_of(patient), c.pk, {"body": "大家好"})
        html = portal_client(other).get(reverse("portal:community_detail", args=[c.pk]))
        text = html.content.decode()
        assert "晨跑的人" in text and patient.name not in text

    def test_a_post_is_limited_in_length(self, world: Any, patient: Any) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        with pytest.raises(ValidationFailed):
            services.create_post(actor_of(patient), c.pk, {"body": "好" * 1001})
        with pytest.raises(ValidationFailed):
            services.create_post(actor_of(patient), c.pk, {"body": "   "})


class TestJoining:
    def test_patients_join_communities_of_their_conditions(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        c = community(world)
        everyone = community(world, name="康复之家", condition="general", icd10_prefixes="")
        diagnose(world, patient, "I10")
        names = [r["community"].name for r in selectors.communities(actor_of(patient))]
        assert sorted(names) == sorted(["高血压之家", "康复之家"])
        assert [r["community"] for r in selectors.communities(actor_of(other))] == [everyone]
        with pytest.raises(NotFound):
            services.join(actor_of(other), c.pk)
        services.join(actor_of(patient), c.pk)
        # Not a member: nothing inside is reachable.
        assert (
            portal_client(other).get(reverse("portal:community_detail", args=[c.pk])).status_code
            == 404
        )

    def test_a_nickname_is_needed_to_post_and_may_not_be_the_name(
        self, world: Any, patient: Any
    ) -> None:
        c = community(world)
        diagnose(world, patient, "I10")
        services.join(actor_of(patient), c.pk)
        with pytest.raises(ValidationFailed):
            services.create_post(actor_of(patient), c.pk, {"body": "你好"})
        for bad in (patient.name, "我是" + patient.name, "13812345678"):
            with pytest.raises(ValidationFailed):
                services.save_profile(actor_of(patient), {"nickname": bad})

    def test_nicknames_are_unique_in_the_organisation(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        services.save_profile(actor_of(patient), {"nickname": "晨跑的人"})
        with pytest.raises(ValidationFailed):
            services.save_profile(actor_of(other), {"nickname": "晨跑的人"})


class TestExpertSessions:
    def test_questions_before_the_session_and_published_answers(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        member(world, other, c, "老李")
        now = utc_now()
        session = em.ExpertSession.objects.create(
            organisation=world.org, community=c, expert=world.staff["doctor.cardiology"],
            topic="冬季血压管理", starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=1, hours=1),
        )  # fmt: skip
        question = services.ask(actor_of(patient), session.pk, {"body": "冬天血压会高吗？"})
        assert list(selectors.session_questions(actor_of(other), session)) == []
        services.answer(world.actor("doctor.cardiology"), question.pk, {"answer": "会偏高一些。"})
        html = portal_client(other).get(reverse("portal:expert_session", args=[session.pk]))
        text = html.content.decode()
        assert "会偏高一些。" in text and "晨跑的人" in text and patient.name not in text
        with pytest.raises(ValidationFailed):
            services.ask(actor_of(patient), session.pk, {"body": "电话 13812345678"})

    def test_questions_close_when_the_session_ends(self, world: Any, patient: Any) -> None:
        c = community(world)
        member(world, patient, c, "晨跑的人")
        now = utc_now()
        session = em.ExpertSession.objects.create(
            organisation=world.org, community=c, expert=world.staff["doctor.cardiology"],
            topic="过去的", starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1),
        )  # fmt: skip
        with pytest.raises(ValidationFailed):
            services.ask(actor_of(patient), session.pk, {"body": "还能问吗？"})

    def test_staff_plan_a_session(self, world: Any, client: Any) -> None:
        c = community(world)
        client.force_login(world.staff["nurse.cardiology"])
        response = client.post(
            reverse("engagement:session_create"),
            {"community": c.pk, "expert": world.staff["doctor.cardiology"].pk,
             "topic": "足部护理", "starts_at": "2030-01-05T10:00", "ends_at": "2030-01-05T09:00"},
        )  # fmt: skip
        assert response.status_code == 422
        assert "must end after it starts" in response.content.decode()
        response = client.post(
            reverse("engagement:session_create"),
            {"community": c.pk, "expert": world.staff["doctor.cardiology"].pk,
             "topic": "足部护理", "starts_at": "2030-01-05T10:00", "ends_at": "2030-01-05T11:00"},
        )  # fmt: skip
        assert response.status_code == 302
        session = em.ExpertSession.objects.get()
        assert session.starts_at.isoformat() == "2030-01-05T02:00:00+00:00"  # Shanghai time


class TestLeaderboard:
    def test_only_opted_in_nicknames_with_my_rank(
        self, world: Any, patient: Any, other: Any, make_patient: Any
    ) -> None:
        shy = make_patient(name="钱多多")
        give_points(patient, 30)
        give_points(other, 50)
        give_points(shy, 999)
        services.save_profile(actor_of(patient), {"nickname": "晨跑的人", "on_leaderboard": "on"})
        services.save_profile(actor_of(other), {"nickname": "老李", "on_leaderboard": "on"})
        services.save_profile(actor_of(shy), {"nickname": "安静的人"})  # not opted in
        board = selectors.leaderboard(actor_of(patient))
        assert [(r["rank"], r["nickname"], r["points"]) for r in board.rows] == [
            (1, "老李", 50), (2, "晨跑的人", 30),
        ]  # fmt: skip
        assert (board.my_rank, board.my_points, board.opted_in) == (2, 30, True)
        html = portal_client(patient).get(reverse("portal:leaderboard")).content.decode()
        assert "老李" in html and "安静的人" not in html
        assert all(name not in html for name in (patient.name, other.name, shy.name))
        assert "You are number 2, with 30 points." in html

    def test_only_the_last_30_days_count_and_spending_does_not_lower_the_score(
        self, world: Any, patient: Any, frozen: Any
    ) -> None:
        services.save_profile(actor_of(patient), {"nickname": "晨跑的人", "on_leaderboard": "on"})
        give_points(patient, 40, ref="old")
        frozen.advance(days=31)
        give_points(patient, 20, ref="new")
        em.PointEntry.objects.create(
            organisation=world.org, patient=patient, kind=domain.REDEMPTION, ref="redemption:1",
            points=-20, day=frozen.now.date(), created_at=frozen.now,
        )  # fmt: skip
        board = selectors.leaderboard(actor_of(patient))
        assert board.rows[0]["points"] == 20

    def test_other_organisations_are_not_on_the_board(self, world: Any, patient: Any) -> None:
        from careloop.patients import services as patient_services
        from tests.conftest import patient_data

        stranger = patient_services.create_patient(world.actor("nurse.other"), patient_data())
        services.save_profile(actor_of(stranger), {"nickname": "远方", "on_leaderboard": "on"})
        give_points(stranger, 10)
        assert selectors.leaderboard(actor_of(patient)).rows == []

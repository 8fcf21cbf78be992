"""The engagement routes in the shared security and audit tests (tests/security/scenario.py).

The scene's patient (who has a diabetes diagnosis, E11) belongs to a diabetes community with a
nickname and 500 points; the second patient wrote a published post there that the first can
read, reply to and report; the first has a pending post of their own (reported by the second),
a pending redemption and a question in an upcoming expert session.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from careloop.engagement import models as em
from careloop.kit.clock import utc_now


def extend(scene: Any) -> None:
    p, q = scene.patient, scene.second
    org = p.organisation_id
    now = utc_now()
    community = em.Community.objects.create(
        organisation_id=org, name="糖友会", condition="diabetes", icd10_prefixes="E10, E11"
    )
    for who, nick in ((p, "晨跑的人"), (q, "老李")):
        em.Wallet.objects.create(organisation_id=org, patient=who, nickname=nick)
        em.Membership.objects.create(community=community, patient=who, joined_at=now)
    em.PointEntry.objects.create(
        organisation_id=org, patient=p, kind="questionnaire", ref="scene:1", points=500,
        day=now.date(), created_at=now,
    )  # fmt: skip
    theirs = em.Post.objects.create(
        organisation_id=org, community=community, patient=q, nickname="老李",
        body="控糖三个月的经验", status=em.Post.Status.PUBLISHED, created_at=now,
    )  # fmt: skip
    mine = em.Post.objects.create(
        organisation_id=org, community=community, patient=p, nickname="晨跑的人",
        body="我也想分享", status=em.Post.Status.PENDING, created_at=now,
    )  # fmt: skip
    reward = em.Reward.objects.create(organisation_id=org, name="血糖试纸", cost=100, stock=10)
    redemption = em.Redemption.objects.create(
        organisation_id=org, patient=p, reward=reward, cost=100, code="SCENE234", created_at=now
    )
    report = em.Report.objects.create(
        organisation_id=org, post=mine, patient=q, reason="广告", created_at=now
    )
    expert = scene.world.staff["doctor.cardiology"]
    session = em.ExpertSession.objects.create(
        organisation_id=org, community=community, expert=expert, topic="冬季控糖",
        starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=1),
    )  # fmt: skip
    question = em.ExpertQuestion.objects.create(
        session=session, patient=p, nickname="晨跑的人", body="运动前要测血糖吗？", created_at=now
    )
    scene.extra["engagement"] = {
        "community": community,
        "theirs": theirs,
        "mine": mine,
        "reward": reward,
        "redemption": redemption,
        "report": report,
        "session": session,
        "question": question,
    }


def _ours(route: Any) -> bool:
    return route.transport == "page" and (
        route.name.startswith("engagement:") or route.path.startswith(
            ("portal/rewards", "portal/redemptions", "portal/leaderboard", "portal/community",
             "portal/posts", "portal/sessions")
        )
    )  # fmt: skip


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    e = scene.extra["engagement"]
    values: dict[str, Any] = {}
    path = route.path
    if "<int:reward_id>" in path:
        values["reward_id"] = e["reward"].pk
    if "<int:redemption_id>" in path:
        values["redemption_id"] = e["redemption"].pk
    if "<int:community_id>" in path:
        values["community_id"] = e["community"].pk
    if "<int:post_id>" in path:
        own = route.name in ("portal:post_edit", "engagement:post_moderate")
        values["post_id"] = (e["mine"] if own else e["theirs"]).pk
    if "<int:report_id>" in path:
        values["report_id"] = e["report"].pk
    if "<int:session_id>" in path:
        values["session_id"] = e["session"].pk
    if "<int:question_id>" in path:
        values["question_id"] = e["question"].pk
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    e = scene.extra["engagement"]
    start = (utc_now() + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    end = (utc_now() + timedelta(days=3)).strftime("%Y-%m-%dT11:00")
    rules: dict[str, Any] = {}
    for kind in ("dose_taken", "reading", "questionnaire", "content_read", "check_in"):
        rules[f"{kind}_points"] = 2
        rules[f"{kind}_cap"] = 10
    bodies: dict[str, dict[str, Any]] = {
        "portal:leaderboard": {"nickname": "晨跑的人", "on_leaderboard": "on"},
        "portal:post_create": {"body": "今天空腹血糖 6.1，很稳定"},
        "portal:post_reply": {"body": "谢谢分享"},
        "portal:post_edit": {"body": "我也想分享控糖经验"},
        "portal:post_report": {"reason": "推销产品"},
        "portal:expert_session": {"body": "饭后多久可以运动？"},
        "engagement:post_moderate": {"decision": "approve"},
        "engagement:answer": {"answer": "一般饭后一小时左右开始为宜。"},
        "engagement:community_create": {
            "name": "高血压之家", "condition": "hypertension", "icd10_prefixes": "I10",
            "moderation": "pre", "active": "on",
        },
        "engagement:community_edit": {
            "name": "糖友会", "condition": "diabetes", "icd10_prefixes": "E11",
            "moderation": "post", "active": "on",
        },
        "engagement:session_create": {
            "community": e["community"].pk, "expert": scene.world.staff["doctor.cardiology"].pk,
            "topic": "足部护理", "starts_at": start, "ends_at": end,
        },
        "engagement:rewards": {"name": "计步器", "cost": 300, "stock": 5, "active": "on"},
        "engagement:reward_edit": {"name": "血糖试纸", "cost": 120, "stock": 8, "active": "on"},
        "engagement:rules": rules,
    }  # fmt: skip
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None

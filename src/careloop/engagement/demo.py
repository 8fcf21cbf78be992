"""Demo data of engagement: a reward catalogue, hypertension and diabetes communities with a
few approved posts, an upcoming expert session, and some patients on the leaderboard."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q

from careloop.accounts.models import Organisation, Staff
from careloop.engagement import domain, services
from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.patients.models import Condition, Patient
from careloop.portal import events

REWARDS = [
    ("血糖试纸（50 片）", "Glucose test strips (50)", 300, 40),
    ("电子血压计", "Upper-arm blood pressure monitor", 1500, 8),
    ("分药盒（一周）", "Weekly pill organiser", 120, 60),
    ("营养师咨询一次", "One session with a dietitian", 600, 15),
]

COMMUNITIES = [
    ("高血压之家", "hypertension", "I10, I11, I12, I13, I15",
     "交流控压经验：饮食、运动、按时服药和家庭测压。"),
    ("糖友会", "diabetes", "E10, E11, E13, E14",
     "糖尿病患者互助：监测血糖、饮食搭配和足部护理。"),
]  # fmt: skip

POSTS = {
    "hypertension": [
        "坚持每天早晚各量一次血压，记下来复诊时给医生看，医生说调整药量很有帮助。",
        "少盐真的有用！用限盐勺三个月，收缩压从 150 降到 135 左右。",
        "每天饭后散步 30 分钟，睡眠也变好了。大家有什么运动推荐吗？",
    ],
    "diabetes": [
        "餐后两小时测血糖，发现米饭换成杂粮饭后明显平稳。",
        "每天睡前检查一下脚，有小伤口及时处理，护士教的方法很实用。",
        "分药盒加手机提醒，这个月一次药都没漏。",
    ],
}
NICKNAMES = ["晨跑的人", "老李", "向日葵", "慢慢来", "知足常乐", "小步快跑", "清风", "开心每一天"]


@dataclass
class EngagementDemo:
    rewards: int = 0
    communities: list[em.Community] = field(default_factory=list)
    posts: int = 0
    session: em.ExpertSession | None = None
    players: int = 0


def _with_condition(org: Organisation, prefixes: list[str]) -> list[int]:
    match = Q()
    for prefix in prefixes:
        match |= Q(icd10_code__istartswith=prefix)
    return sorted(
        set(
            Condition.objects.filter(organisation=org, deleted_at__isnull=True, status="active")
            .filter(match)
            .values_list("patient_id", flat=True)
        )
    )


@transaction.atomic
def build(org: Organisation, seed: int) -> EngagementDemo:
    rng = random.Random(seed * 31 + 5)  # noqa: S311 - demo data, not secrets
    result = EngagementDemo()
    for name, description, cost, stock in REWARDS:
        em.Reward.objects.create(
            organisation=org, name=name, description=description, cost=cost, stock=stock
        )
        result.rewards += 1
    now = utc_now()
    used: set[str] = set()
    nick_of: dict[int, str] = {}

    def nickname(patient_id: int) -> str:
        if patient_id not in nick_of:
            free = [n for n in NICKNAMES if n not in used] or [f"病友{patient_id}"]
            chosen = free[0] if free[0].startswith("病友") else rng.choice(free)
            used.add(chosen)
            nick_of[patient_id] = chosen
            em.Wallet.objects.update_or_create(
                patient_id=patient_id,
                defaults={"organisation": org, "nickname": chosen, "on_leaderboard": True},
            )
        return nick_of[patient_id]

    for name, condition, prefixes, description in COMMUNITIES:
        community = em.Community.objects.create(
            organisation=org, name=name, condition=condition, icd10_prefixes=prefixes,
            description=description, moderation=em.Community.Moderation.PRE,
        )  # fmt: skip
        result.communities.append(community)
        members = _with_condition(org, community.prefixes)
        rng.shuffle(members)
        for patient_id in members[:12]:
            em.Membership.objects.create(
                community=community, patient_id=patient_id, joined_at=now - timedelta(days=20)
            )
        for i, (patient_id, body) in enumerate(zip(members[:3], POSTS[condition], strict=False)):
            em.Post.objects.create(
                organisation=org, community=community, patient_id=patient_id,
                nickname=nickname(patient_id), body=body, status=em.Post.Status.PUBLISHED,
                created_at=now - timedelta(days=6 - 2 * i, hours=rng.randint(1, 10)),
                moderated_at=now - timedelta(days=5 - 2 * i),
            )  # fmt: skip
            result.posts += 1

    expert = (
        Staff.objects.filter(organisation=org, role="doctor", is_active=True).order_by("pk").first()
    )
    if result.communities and expert is not None:
        start = (now + timedelta(days=3)).replace(hour=11, minute=0, second=0, microsecond=0)
        result.session = em.ExpertSession.objects.create(
            organisation=org, community=result.communities[0], expert=expert,
            topic="冬季血压为什么会升高？", starts_at=start, ends_at=start + timedelta(hours=1),
        )  # fmt: skip

    # Some patients have been taking part for a while: points through the real rules.
    players = list(nick_of)
    for patient_id in players:
        patient = Patient.objects.get(pk=patient_id)
        run = rng.randint(5, 25)
        zone = ZoneInfo(patient.time_zone)
        today_local = domain.local_day(now, patient.time_zone)
        for day in range(1, run + 1):  # checked in every day up to yesterday
            local = today_local - timedelta(days=day)
            at = datetime.combine(local, time(7 + rng.randint(0, 12), rng.randint(0, 59)), zone)
            em.CheckIn.objects.create(organisation=org, patient=patient, created_at=at, day=local)
            for kind, ref in (
                (events.DOSE_TAKEN, f"demo-dose:{day}"),
                (events.READING, f"demo-reading:{day}"),
                (events.CHECK_IN, f"demo-day:{day}"),
            ):
                services.pay(events.PatientEvent(kind, patient.pk, org.pk, ref, at))
        today = domain.local_day(now, patient.time_zone)
        days = em.CheckIn.objects.filter(patient=patient).values_list("day", flat=True)
        streak = domain.streak(list(days), today)
        em.Wallet.objects.filter(patient=patient).update(
            current_streak=streak.current, longest_streak=streak.longest,
            last_check_in=today - timedelta(days=1),
        )  # fmt: skip
    result.players = len(players)
    return result

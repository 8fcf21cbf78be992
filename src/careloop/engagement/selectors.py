"""Every read of engagement, scoped to the acting patient or staff member."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.engagement import domain, services
from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound
from careloop.patients import selectors as patient_selectors
from careloop.patients.models import Patient
from careloop.portal.context import PortalActor

EARNING_KINDS = (*domain.EVENT_LABELS.keys(), domain.STREAK_BONUS)
TOP = 20


@dataclass(frozen=True)
class Summary:
    balance: int
    streak: domain.Streak
    checked_in_today: bool
    badges: list[dict[str, Any]]
    wallet: em.Wallet | None


def summary(actor: PortalActor) -> Summary:
    patient = Patient.objects.only("pk", "time_zone").get(pk=actor.patient_id)
    today = domain.local_day(utc_now(), patient.time_zone)
    days = list(em.CheckIn.objects.filter(patient_id=patient.pk).values_list("day", flat=True))
    wallet = em.Wallet.objects.filter(patient_id=patient.pk).first()
    current = domain.streak(days, today)
    if wallet is not None and wallet.longest_streak > current.longest:
        current = domain.Streak(current.current, wallet.longest_streak, current.started)
    awarded = dict(
        em.BadgeAward.objects.filter(patient_id=patient.pk).values_list("code", "awarded_at")
    )
    badges = [
        {"badge": b, "earned": b.code in awarded, "at": awarded.get(b.code)} for b in domain.BADGES
    ]
    return Summary(
        balance=services.balance(patient.pk),
        streak=current,
        checked_in_today=today in days,
        badges=badges,
        wallet=wallet,
    )


def ledger(actor: PortalActor, limit: int = 10) -> list[dict[str, Any]]:
    rows = em.PointEntry.objects.filter(patient_id=actor.patient_id).order_by("-created_at", "-id")
    return [
        {"entry": e, "label": domain.LEDGER_LABELS.get(e.kind, e.kind)}
        for e in rows[:limit]
        if e.points != 0
    ]


def catalogue(organisation_id: int) -> QuerySet[em.Reward]:
    return em.Reward.objects.filter(organisation_id=organisation_id, active=True)


def my_redemptions(actor: PortalActor) -> QuerySet[em.Redemption]:
    return em.Redemption.objects.filter(
        patient_id=actor.patient_id, organisation_id=_org(actor)
    ).select_related("reward")


def my_redemption(actor: PortalActor, redemption_id: int) -> em.Redemption:
    found = my_redemptions(actor).filter(pk=redemption_id).first()
    if found is None:
        raise NotFound()
    return found


def reward_for_patient(actor: PortalActor, reward_id: int) -> em.Reward:
    found = catalogue(actor.organisation_id).filter(pk=reward_id).first()
    if found is None:
        raise NotFound()
    return found


# --- leaderboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Board:
    rows: list[dict[str, Any]]
    my_rank: int | None
    my_points: int
    opted_in: bool


def leaderboard(actor: PortalActor) -> Board:
    """Opted-in patients of the organisation by points earned in the last 30 days."""
    since = services.leaderboard_since(utc_now())
    earned = Sum(
        "points",
        filter=Q(
            points__gt=0,
            created_at__gte=since,
            kind__in=EARNING_KINDS,
        ),
    )
    patient_ids = em.Wallet.objects.filter(
        organisation_id=_org(actor), on_leaderboard=True
    ).exclude(nickname="")
    scores: dict[int, int] = {
        pid: int(total or 0)
        for pid, total in em.PointEntry.objects.filter(
            organisation_id=_org(actor),
            patient_id__in=patient_ids.values("patient_id"),
        )
        .values_list("patient_id")
        .annotate(total=earned)
        .values_list("patient_id", "total")
    }
    wallets = list(patient_ids.only("patient_id", "nickname"))
    ranked = sorted(wallets, key=lambda w: (-scores.get(w.patient_id, 0), w.nickname))
    rows = []
    my_rank = None
    previous = None
    rank = 0
    for position, wallet in enumerate(ranked, start=1):
        points = scores.get(wallet.patient_id, 0)
        if points != previous:
            rank = position
            previous = points
        if wallet.patient_id == actor.patient_id:
            my_rank = rank
        if position <= TOP:
            rows.append(
                {
                    "rank": rank,
                    "nickname": wallet.nickname,
                    "points": points,
                    "me": wallet.patient_id == actor.patient_id,
                }
            )
    mine = next((w for w in wallets if w.patient_id == actor.patient_id), None)
    return Board(
        rows=rows,
        my_rank=my_rank,
        my_points=scores.get(actor.patient_id, 0),
        opted_in=mine is not None,
    )


# --- community (portal) -----------------------------------------------------------------------


def communities(actor: PortalActor) -> list[dict[str, Any]]:
    joined = set(
        em.Membership.objects.filter(patient_id=actor.patient_id).values_list(
            "community_id", flat=True
        )
    )
    out = []
    for community in em.Community.objects.filter(organisation_id=_org(actor), active=True).annotate(
        published=Count("posts", filter=Q(posts__status=em.Post.Status.PUBLISHED)),
        people=Count("members", distinct=True),
    ):
        is_member = community.pk in joined
        if is_member or services.may_join(community, actor.patient_id):
            out.append({"community": community, "member": is_member})
    return out


def community_posts(actor: PortalActor, community: em.Community) -> QuerySet[em.Post]:
    """Published posts, and the patient's own posts whatever their state (not removed)."""
    return (
        em.Post.objects.filter(community=community, parent__isnull=True)
        .filter(Q(status=em.Post.Status.PUBLISHED) | Q(patient_id=actor.patient_id))
        .exclude(status=em.Post.Status.REMOVED)
        .annotate(reply_count=Count("replies", filter=Q(replies__status=em.Post.Status.PUBLISHED)))
        .order_by("-created_at")
    )


def replies(actor: PortalActor, post: em.Post) -> QuerySet[em.Post]:
    return (
        post.replies.filter(Q(status=em.Post.Status.PUBLISHED) | Q(patient_id=actor.patient_id))
        .exclude(status=em.Post.Status.REMOVED)
        .order_by("created_at")
    )


def sessions_of(community: em.Community) -> QuerySet[em.ExpertSession]:
    return community.sessions.filter(ends_at__gte=utc_now()).select_related("expert")


def past_sessions_of(community: em.Community) -> QuerySet[em.ExpertSession]:
    return community.sessions.filter(ends_at__lt=utc_now()).order_by("-starts_at")[:5]


def session_for_patient(actor: PortalActor, session_id: int) -> em.ExpertSession:
    session = (
        em.ExpertSession.objects.filter(pk=session_id, organisation_id=_org(actor))
        .select_related("community", "expert")
        .first()
    )
    if session is None:
        raise NotFound()
    services.member_community(actor, session.community_id)
    return session


def session_questions(actor: PortalActor, session: em.ExpertSession) -> QuerySet[em.ExpertQuestion]:
    """Answered questions are published to the community; unanswered ones only to the asker."""
    return session.questions.filter(Q(answered_at__isnull=False) | Q(patient_id=actor.patient_id))


# --- staff ------------------------------------------------------------------------------------


def _org(actor: Actor | PortalActor) -> int:
    return int(actor.organisation_id or 0)


def moderation_queue(actor: Actor) -> dict[str, Any]:
    patient_selectors.require(actor, Action.TASK_WORK)
    org = _org(actor)
    return {
        "pending": em.Post.objects.filter(organisation_id=org, status=em.Post.Status.PENDING)
        .select_related("community", "parent")
        .order_by("created_at")[:100],
        "reports": em.Report.objects.filter(organisation_id=org, outcome=em.Report.Outcome.OPEN)
        .select_related("post", "post__community")
        .order_by("created_at")[:100],
        "recent": em.Post.objects.filter(organisation_id=org, status=em.Post.Status.PUBLISHED)
        .select_related("community")
        .order_by("-created_at")[:20],
        "communities": em.Community.objects.filter(organisation_id=org).annotate(
            people=Count("members", distinct=True)
        ),
        "sessions": em.ExpertSession.objects.filter(organisation_id=org, ends_at__gte=utc_now())
        .select_related("community", "expert")
        .annotate(open_questions=Count("questions", filter=Q(questions__answered_at__isnull=True))),
    }


def community_for_staff(actor: Actor, community_id: int) -> em.Community:
    patient_selectors.require(actor, Action.TASK_WORK)
    found = em.Community.objects.filter(pk=community_id, organisation_id=_org(actor)).first()
    if found is None:
        raise NotFound()
    return found


def session_for_staff(actor: Actor, session_id: int) -> em.ExpertSession:
    patient_selectors.require(actor, Action.TASK_WORK)
    found = (
        em.ExpertSession.objects.filter(pk=session_id, organisation_id=_org(actor))
        .select_related("community", "expert")
        .first()
    )
    if found is None:
        raise NotFound()
    return found


def rewards_for_staff(actor: Actor) -> QuerySet[em.Reward]:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    return em.Reward.objects.filter(organisation_id=_org(actor)).annotate(
        waiting=Count("redemptions", filter=Q(redemptions__status=em.Redemption.Status.PENDING))
    )


def reward_for_staff(actor: Actor, reward_id: int) -> em.Reward:
    found = rewards_for_staff(actor).filter(pk=reward_id).first()
    if found is None:
        raise NotFound()
    return found


def redemptions_for_staff(actor: Actor, code: str = "") -> QuerySet[em.Redemption]:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    qs = em.Redemption.objects.filter(organisation_id=_org(actor)).select_related("reward")
    code = "".join(code.split()).upper()
    if code:
        qs = qs.filter(code=code)
    return qs


def rules_for_staff(actor: Actor) -> dict[str, domain.Rule]:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    return services.rules_for(actor.organisation_id or 0)

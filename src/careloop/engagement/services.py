"""Every write of engagement, each in one transaction and audited.

Points are an append-only ledger (PointEntry) whose sum is the balance. Every change to a
patient's ledger first locks that patient's Wallet row, so caps, balances and badges are
decided on figures nobody else is changing at the same moment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Staff
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.engagement import domain, forms
from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.patients import selectors as patient_selectors
from careloop.patients.models import Condition, Patient
from careloop.portal import events
from careloop.portal.context import PortalActor

log = logging.getLogger(__name__)


# --- wallet and ledger ------------------------------------------------------------------------


def _patient(patient_id: int, organisation_id: int) -> Patient:
    patient = (
        Patient.objects.filter(pk=patient_id, organisation_id=organisation_id)
        .only("pk", "organisation_id", "time_zone", "name")
        .first()
    )
    if patient is None:
        raise NotFound()
    return patient


def lock_wallet(patient: Patient) -> em.Wallet:
    """The patient's wallet row, created if needed, locked until the transaction ends."""
    em.Wallet.objects.get_or_create(
        patient_id=patient.pk, defaults={"organisation_id": patient.organisation_id}
    )
    return em.Wallet.objects.select_for_update().get(patient_id=patient.pk)


def rules_for(organisation_id: int) -> dict[str, domain.Rule]:
    rules = dict(domain.DEFAULT_RULES)
    for row in em.PointRule.objects.filter(organisation_id=organisation_id):
        rules[row.kind] = domain.Rule(points=row.points, daily_cap=row.daily_cap)
    return rules


def balance(patient_id: int) -> int:
    total = em.PointEntry.objects.filter(patient_id=patient_id).aggregate(s=Sum("points"))["s"]
    return int(total or 0)


def _entry(
    patient: Patient, kind: str, ref: str, points: int, at: datetime
) -> em.PointEntry | None:
    """Append a ledger line unless (patient, kind, ref) already has one."""
    if em.PointEntry.objects.filter(patient_id=patient.pk, kind=kind, ref=ref).exists():
        return None
    try:
        with transaction.atomic():
            return em.PointEntry.objects.create(
                organisation_id=patient.organisation_id,
                patient_id=patient.pk,
                kind=kind,
                ref=ref[:80],
                points=points,
                day=domain.local_day(at, patient.time_zone),
                created_at=at,
            )
    except IntegrityError:
        return None


def on_patient_event(event: events.PatientEvent) -> None:
    """The listener of portal events (registered in EngagementConfig.ready)."""
    pay(event)


def pay(event: events.PatientEvent) -> em.PointEntry | None:
    """Pay the points of a patient event, once per (kind, ref), within the day's cap."""
    with transaction.atomic():
        patient = _patient(event.patient_id, event.organisation_id)
        lock_wallet(patient)
        if em.PointEntry.objects.filter(
            patient_id=patient.pk, kind=event.kind, ref=event.ref
        ).exists():
            return None
        day = domain.local_day(event.at, patient.time_zone)
        earned = em.PointEntry.objects.filter(
            patient_id=patient.pk, kind=event.kind, day=day
        ).aggregate(s=Sum("points"))["s"]
        rule = rules_for(patient.organisation_id)[event.kind]
        points = domain.award(rule, int(earned or 0))
        entry = _entry(patient, event.kind, event.ref, points, event.at)
        if entry is not None:
            _award_badges(patient)
        return entry


def _award_badges(patient: Patient) -> list[str]:
    counts = dict(
        em.PointEntry.objects.filter(patient_id=patient.pk, kind__in=events.KINDS)
        .values_list("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )
    wallet = em.Wallet.objects.get(patient_id=patient.pk)
    have = set(em.BadgeAward.objects.filter(patient_id=patient.pk).values_list("code", flat=True))
    new = [c for c in domain.badges_earned(counts, wallet.longest_streak) if c not in have]
    now = utc_now()
    for code in new:
        em.BadgeAward.objects.create(
            organisation_id=patient.organisation_id, patient_id=patient.pk, code=code,
            awarded_at=now,
        )  # fmt: skip
    return new


# --- check-in and streaks ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckInResult:
    new: bool
    streak: domain.Streak
    bonus: int


def check_in(actor: PortalActor) -> CheckInResult:
    """Today's check-in in the patient's own time zone: once a day; streak and bonuses."""
    now = utc_now()
    with transaction.atomic():
        patient = _patient(actor.patient_id, actor.organisation_id)
        wallet = lock_wallet(patient)
        today = domain.local_day(now, patient.time_zone)
        if em.CheckIn.objects.filter(patient_id=patient.pk, day=today).exists():
            current = domain.streak(_check_in_days(patient), today)
            return CheckInResult(new=False, streak=current, bonus=0)
        em.CheckIn.objects.create(
            organisation_id=patient.organisation_id, patient_id=patient.pk, day=today,
            created_at=now,
        )  # fmt: skip
        current = domain.streak(_check_in_days(patient), today)
        wallet.current_streak = current.current
        wallet.longest_streak = max(wallet.longest_streak, current.longest)
        wallet.last_check_in = today
        wallet.save(
            update_fields=["current_streak", "longest_streak", "last_check_in", "updated_at"]
        )
        bonus = 0
        for length, points, ref in domain.streak_bonus_due(current):
            if _entry(patient, domain.STREAK_BONUS, ref, points, now) is not None:
                bonus += points
                log.info("streak bonus %s days for patient %s", length, patient.pk)
        _award_badges(patient)
        actor.audit("portal.engagement.check_in", object_type="engagement.checkin",
                    object_id=today.isoformat(), detail={"streak": current.current})  # fmt: skip
        events.emit(
            events.CHECK_IN,
            patient_id=patient.pk,
            organisation_id=patient.organisation_id,
            ref=f"day:{today.isoformat()}",
        )
    return CheckInResult(new=True, streak=current, bonus=bonus)


def _check_in_days(patient: Patient) -> list[Any]:
    return list(em.CheckIn.objects.filter(patient_id=patient.pk).values_list("day", flat=True))


# --- the reward catalogue and redemptions -----------------------------------------------------


def save_reward(actor: Actor, data: dict[str, Any], reward_id: int | None = None) -> em.Reward:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    form = forms.RewardForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        if reward_id is None:
            reward = em.Reward(organisation_id=actor.organisation_id or 0)
        else:
            reward = _reward_for_staff(actor, reward_id, lock=True)
        for key, value in form.cleaned_data.items():
            setattr(reward, key, value)
        reward.save()
        audit.record(
            actor,
            "engagement.reward.save",
            obj=reward,
            detail={"cost": reward.cost, "stock": reward.stock, "active": reward.active},
        )
    return reward


def _reward_for_staff(actor: Actor, reward_id: int, *, lock: bool = False) -> em.Reward:
    qs = em.Reward.objects.filter(organisation_id=actor.organisation_id or 0, pk=reward_id)
    if lock:
        qs = qs.select_for_update()
    reward = qs.first()
    if reward is None:
        raise NotFound()
    return reward


class InsufficientPoints(ValidationFailed):
    code = "insufficient_points"


class OutOfStock(Conflict):
    code = "out_of_stock"


def redeem(actor: PortalActor, reward_id: int) -> em.Redemption:
    """Spend points on a reward: balance checked under the wallet lock, stock taken by a
    conditional UPDATE, so neither can go below zero however many requests race."""
    now = utc_now()
    with transaction.atomic():
        patient = _patient(actor.patient_id, actor.organisation_id)
        reward = em.Reward.objects.filter(
            pk=reward_id, organisation_id=patient.organisation_id, active=True
        ).first()
        if reward is None:
            raise NotFound()
        lock_wallet(patient)
        have = balance(patient.pk)
        if have < reward.cost:
            raise InsufficientPoints(
                _("You need %(cost)s points for this reward; you have %(have)s.")
                % {"cost": reward.cost, "have": have}
            )
        taken = em.Reward.objects.filter(pk=reward.pk, active=True, stock__gt=0).update(
            stock=F("stock") - 1
        )
        if not taken:
            raise OutOfStock(_("Sorry, this reward has just run out."))
        redemption = em.Redemption.objects.create(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            reward=reward,
            cost=reward.cost,
            code=_unique_code(),
            created_at=now,
        )
        _entry(patient, domain.REDEMPTION, f"redemption:{redemption.pk}", -reward.cost, now)
        actor.audit(
            "portal.engagement.redeem",
            object_type="engagement.redemption",
            object_id=redemption.pk,
            detail={"reward": reward.pk, "cost": reward.cost},
        )
    return redemption


def _unique_code() -> str:
    for _attempt in range(10):
        code = domain.redemption_code()
        if not em.Redemption.objects.filter(code=code).exists():
            return code
    raise Conflict()


def _close(redemption_id: int, organisation_id: int, patient_id: int | None) -> em.Redemption:
    qs = em.Redemption.objects.select_for_update().filter(
        pk=redemption_id, organisation_id=organisation_id
    )
    if patient_id is not None:
        qs = qs.filter(patient_id=patient_id)
    redemption = qs.select_related("reward").first()
    if redemption is None:
        raise NotFound()
    return redemption


def _cancel(redemption: em.Redemption, by: str) -> None:
    now = utc_now()
    changed = em.Redemption.objects.filter(
        pk=redemption.pk, status=em.Redemption.Status.PENDING
    ).update(status=em.Redemption.Status.CANCELLED, cancelled_at=now, closed_by=by[:80])
    if not changed:
        raise Conflict(_("Only a redemption that has not been collected can be cancelled."))
    patient = _patient(redemption.patient_id, redemption.organisation_id)
    lock_wallet(patient)
    _entry(patient, domain.REFUND, f"redemption:{redemption.pk}", redemption.cost, now)
    em.Reward.objects.filter(pk=redemption.reward_id).update(stock=F("stock") + 1)
    redemption.refresh_from_db()


def cancel_by_patient(actor: PortalActor, redemption_id: int) -> em.Redemption:
    with transaction.atomic():
        redemption = _close(redemption_id, actor.organisation_id, actor.patient_id)
        _cancel(redemption, actor.name)
        actor.audit("portal.engagement.redemption_cancel", object_type="engagement.redemption",
                    object_id=redemption.pk)  # fmt: skip
    return redemption


def cancel_by_staff(actor: Actor, redemption_id: int) -> em.Redemption:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    with transaction.atomic():
        redemption = _close(redemption_id, actor.organisation_id or 0, None)
        _cancel(redemption, actor.user.get_username())
        audit.record(actor, "engagement.redemption.cancel", obj=redemption,
                     patient_id=redemption.patient_id)  # fmt: skip
    return redemption


def fulfil(actor: Actor, redemption_id: int) -> em.Redemption:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    with transaction.atomic():
        redemption = _close(redemption_id, actor.organisation_id or 0, None)
        changed = em.Redemption.objects.filter(
            pk=redemption.pk, status=em.Redemption.Status.PENDING
        ).update(
            status=em.Redemption.Status.FULFILLED,
            fulfilled_at=utc_now(),
            closed_by=actor.user.get_username()[:80],
        )
        if not changed:
            raise Conflict(_("This redemption is already closed."))
        redemption.refresh_from_db()
        audit.record(actor, "engagement.redemption.fulfil", obj=redemption,
                     patient_id=redemption.patient_id)  # fmt: skip
    return redemption


def save_rules(actor: Actor, data: dict[str, Any]) -> dict[str, domain.Rule]:
    patient_selectors.require(actor, Action.ORG_MANAGE)
    org = actor.organisation_id or 0
    form = forms.PointRulesForm(data, initial_rules=rules_for(org))
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    rules = form.rules()
    with transaction.atomic():
        for kind, rule in rules.items():
            em.PointRule.objects.update_or_create(
                organisation_id=org, kind=kind,
                defaults={"points": rule.points, "daily_cap": rule.daily_cap},
            )  # fmt: skip
        audit.record(actor, "engagement.rules.save", object_type="engagement.pointrule",
                     detail={k: [r.points, r.daily_cap] for k, r in rules.items()})  # fmt: skip
    return rules


# --- nickname and leaderboard -----------------------------------------------------------------


def save_profile(actor: PortalActor, data: dict[str, Any]) -> em.Wallet:
    with transaction.atomic():
        patient = _patient(actor.patient_id, actor.organisation_id)
        form = forms.ProfileForm(data, patient_name=patient.name)
        if not form.is_valid():
            raise ValidationFailed(details=forms.errors_of(form))
        wallet = lock_wallet(patient)
        nickname = form.cleaned_data["nickname"]
        taken = (
            em.Wallet.objects.filter(organisation_id=patient.organisation_id, nickname=nickname)
            .exclude(pk=wallet.pk)
            .exists()
        )
        if taken:
            raise ValidationFailed(details={"nickname": [_("Someone already uses this nickname.")]})
        wallet.nickname = nickname
        wallet.on_leaderboard = form.cleaned_data["on_leaderboard"]
        try:
            with transaction.atomic():
                wallet.save(update_fields=["nickname", "on_leaderboard", "updated_at"])
        except IntegrityError as exc:
            raise ValidationFailed(
                details={"nickname": [_("Someone already uses this nickname.")]}
            ) from exc
        em.Post.objects.filter(patient_id=patient.pk).update(nickname=nickname)
        em.ExpertQuestion.objects.filter(patient_id=patient.pk).update(nickname=nickname)
        actor.audit(
            "portal.engagement.profile",
            object_type="engagement.wallet",
            object_id=wallet.pk,
            detail={"on_leaderboard": wallet.on_leaderboard},
        )
    return wallet


# --- the community ----------------------------------------------------------------------------


def may_join(community: em.Community, patient_id: int) -> bool:
    prefixes = community.prefixes
    if not prefixes:
        return True
    match = Q()
    for prefix in prefixes:
        match |= Q(icd10_code__istartswith=prefix)
    return (
        Condition.objects.filter(patient_id=patient_id, deleted_at__isnull=True, status="active")
        .filter(match)
        .exists()
    )


def _community(actor: PortalActor, community_id: int) -> em.Community:
    community = em.Community.objects.filter(
        pk=community_id, organisation_id=actor.organisation_id, active=True
    ).first()
    if community is None:
        raise NotFound()
    return community


def join(actor: PortalActor, community_id: int) -> em.Membership:
    community = _community(actor, community_id)
    if not may_join(community, actor.patient_id):
        raise NotFound()
    with transaction.atomic():
        membership, created = em.Membership.objects.get_or_create(
            community=community, patient_id=actor.patient_id, defaults={"joined_at": utc_now()}
        )
        if created:
            actor.audit("portal.community.join", object_type="engagement.community",
                        object_id=community.pk)  # fmt: skip
    return membership


def leave(actor: PortalActor, community_id: int) -> None:
    community = _community(actor, community_id)
    with transaction.atomic():
        deleted, _rows = em.Membership.objects.filter(
            community=community, patient_id=actor.patient_id
        ).delete()
        if deleted:
            actor.audit("portal.community.leave", object_type="engagement.community",
                        object_id=community.pk)  # fmt: skip


def member_community(actor: PortalActor, community_id: int) -> em.Community:
    community = _community(actor, community_id)
    if not em.Membership.objects.filter(community=community, patient_id=actor.patient_id).exists():
        raise NotFound()
    return community


def _nickname(patient: Patient) -> str:
    wallet = em.Wallet.objects.filter(patient_id=patient.pk).first()
    if wallet is None or not wallet.nickname:
        raise ValidationFailed(
            _("Choose a nickname first; it is shown instead of your name."),
            details={"nickname": [_("Choose a nickname first; it is shown instead of your name.")]},
        )
    return wallet.nickname


def create_post(
    actor: PortalActor, community_id: int, data: dict[str, Any], parent_id: int | None = None
) -> em.Post:
    community = member_community(actor, community_id)
    form = forms.PostForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        patient = _patient(actor.patient_id, actor.organisation_id)
        parent = None
        if parent_id is not None:
            parent = em.Post.objects.filter(
                pk=parent_id, community=community, parent__isnull=True,
                status=em.Post.Status.PUBLISHED,
            ).first()  # fmt: skip
            if parent is None:
                raise NotFound()
        status = (
            em.Post.Status.PUBLISHED
            if community.moderation == em.Community.Moderation.POST
            else em.Post.Status.PENDING
        )
        post = em.Post.objects.create(
            organisation_id=community.organisation_id,
            community=community,
            parent=parent,
            patient_id=patient.pk,
            nickname=_nickname(patient),
            body=form.cleaned_data["body"],
            status=status,
            created_at=utc_now(),
        )
        actor.audit("portal.community.post", object_type="engagement.post", object_id=post.pk,
                    detail={"status": status, "reply_to": parent_id})  # fmt: skip
    return post


def own_post(actor: PortalActor, post_id: int, *, lock: bool = False) -> em.Post:
    qs = em.Post.objects.filter(
        pk=post_id, patient_id=actor.patient_id, organisation_id=actor.organisation_id
    ).exclude(status=em.Post.Status.REMOVED)
    if lock:
        qs = qs.select_for_update()
    post = qs.select_related("community").first()
    if post is None:
        raise NotFound()
    return post


def edit_post(actor: PortalActor, post_id: int, data: dict[str, Any]) -> em.Post:
    form = forms.PostForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        post = own_post(actor, post_id, lock=True)
        post.body = form.cleaned_data["body"]
        post.edited_at = utc_now()
        if post.community.moderation == em.Community.Moderation.PRE:
            post.status = em.Post.Status.PENDING
        post.save(update_fields=["body", "edited_at", "status"])
        actor.audit("portal.community.post_edit", object_type="engagement.post",
                    object_id=post.pk)  # fmt: skip
    return post


def visible_post(actor: PortalActor, post_id: int) -> em.Post:
    """A published post of a community the patient belongs to (or their own post)."""
    post = (
        em.Post.objects.filter(pk=post_id, organisation_id=actor.organisation_id)
        .filter(
            Q(status=em.Post.Status.PUBLISHED, community__active=True)
            | Q(patient_id=actor.patient_id)
        )
        .exclude(status=em.Post.Status.REMOVED)
        .select_related("community")
        .first()
    )
    if (
        post is None
        or not em.Membership.objects.filter(
            community_id=post.community_id, patient_id=actor.patient_id
        ).exists()
    ):
        raise NotFound()
    return post


def report(actor: PortalActor, post_id: int, data: dict[str, Any]) -> em.Report:
    form = forms.ReportForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    post = visible_post(actor, post_id)
    if post.patient_id == actor.patient_id:
        raise NotFound()
    with transaction.atomic():
        if em.Report.objects.filter(post=post, patient_id=actor.patient_id).exists():
            raise ValidationFailed(details={"reason": [_("You have already reported this post.")]})
        row = em.Report.objects.create(
            organisation_id=post.organisation_id,
            post=post,
            patient_id=actor.patient_id,
            reason=form.cleaned_data["reason"],
            created_at=utc_now(),
        )
        actor.audit("portal.community.report", object_type="engagement.post", object_id=post.pk)
    return row


def _require_moderator(actor: Actor) -> int:
    patient_selectors.require(actor, Action.TASK_WORK)
    return int(actor.organisation_id or 0)


def moderate(actor: Actor, post_id: int, data: dict[str, Any]) -> em.Post:
    org = _require_moderator(actor)
    form = forms.ModerateForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    decision = form.cleaned_data["decision"]
    status = {
        "approve": em.Post.Status.PUBLISHED,
        "hide": em.Post.Status.HIDDEN,
        "remove": em.Post.Status.REMOVED,
    }[decision]
    with transaction.atomic():
        post = em.Post.objects.select_for_update().filter(pk=post_id, organisation_id=org).first()
        if post is None:
            raise NotFound()
        now = utc_now()
        post.status = status
        post.reason = form.cleaned_data.get("reason", "").strip()
        post.moderated_by = actor.user
        post.moderated_at = now
        post.save(update_fields=["status", "reason", "moderated_by", "moderated_at"])
        outcome = em.Report.Outcome.DISMISSED if decision == "approve" else em.Report.Outcome.ACTED
        em.Report.objects.filter(post=post, outcome=em.Report.Outcome.OPEN).update(
            outcome=outcome, resolved_at=now, resolved_by=actor.user
        )
        audit.record(actor, f"engagement.post.{decision}", obj=post, patient_id=post.patient_id,
                     detail={"reason": post.reason})  # fmt: skip
    return post


def dismiss_report(actor: Actor, report_id: int) -> em.Report:
    org = _require_moderator(actor)
    with transaction.atomic():
        row = (
            em.Report.objects.select_for_update().filter(pk=report_id, organisation_id=org).first()
        )
        if row is None:
            raise NotFound()
        if row.outcome == em.Report.Outcome.OPEN:
            row.outcome = em.Report.Outcome.DISMISSED
            row.resolved_at = utc_now()
            row.resolved_by = actor.user
            row.save(update_fields=["outcome", "resolved_at", "resolved_by"])
            audit.record(actor, "engagement.report.dismiss", obj=row)
    return row


def save_community(
    actor: Actor, data: dict[str, Any], community_id: int | None = None
) -> em.Community:
    org = _require_moderator(actor)
    form = forms.CommunityForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        if community_id is None:
            community = em.Community(organisation_id=org)
        else:
            found = (
                em.Community.objects.select_for_update()
                .filter(pk=community_id, organisation_id=org)
                .first()
            )
            if found is None:
                raise NotFound()
            community = found
        for key, value in form.cleaned_data.items():
            setattr(community, key, value)
        community.save()
        audit.record(actor, "engagement.community.save", obj=community,
                     detail={"moderation": community.moderation})  # fmt: skip
    return community


def experts(organisation_id: int) -> list[Staff]:
    return list(
        Staff.objects.filter(organisation_id=organisation_id, is_active=True, role__in=[
            "doctor", "nurse", "dept_head"]).order_by("display_name", "username")
    )  # fmt: skip


def save_session(actor: Actor, data: dict[str, Any]) -> em.ExpertSession:
    org = _require_moderator(actor)
    communities = [(c.pk, c.name) for c in em.Community.objects.filter(organisation_id=org)]
    people = [(s.pk, str(s)) for s in experts(org)]
    form = forms.SessionForm(data, communities=communities, experts=people)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        session = em.ExpertSession.objects.create(
            organisation_id=org,
            community_id=form.cleaned_data["community"],
            expert_id=form.cleaned_data["expert"],
            topic=form.cleaned_data["topic"],
            starts_at=form.cleaned_data["starts_at"],
            ends_at=form.cleaned_data["ends_at"],
        )
        audit.record(actor, "engagement.session.create", obj=session)
    return session


def ask(actor: PortalActor, session_id: int, data: dict[str, Any]) -> em.ExpertQuestion:
    session = em.ExpertSession.objects.filter(
        pk=session_id, organisation_id=actor.organisation_id
    ).first()
    if session is None:
        raise NotFound()
    member_community(actor, session.community_id)
    if utc_now() >= session.ends_at:
        raise ValidationFailed(
            details={"body": [_("This session has ended; questions are closed.")]}
        )
    form = forms.QuestionForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        patient = _patient(actor.patient_id, actor.organisation_id)
        question = em.ExpertQuestion.objects.create(
            session=session,
            patient_id=patient.pk,
            nickname=_nickname(patient),
            body=form.cleaned_data["body"],
            created_at=utc_now(),
        )
        actor.audit("portal.community.question", object_type="engagement.question",
                    object_id=question.pk)  # fmt: skip
    return question


def answer(actor: Actor, question_id: int, data: dict[str, Any]) -> em.ExpertQuestion:
    org = _require_moderator(actor)
    form = forms.AnswerForm(data)
    if not form.is_valid():
        raise ValidationFailed(details=forms.errors_of(form))
    with transaction.atomic():
        question = (
            em.ExpertQuestion.objects.select_for_update()
            .filter(pk=question_id, session__organisation_id=org)
            .first()
        )
        if question is None:
            raise NotFound()
        question.answer = form.cleaned_data["answer"].strip()
        question.answered_at = utc_now()
        question.answered_by = actor.user
        question.save(update_fields=["answer", "answered_at", "answered_by"])
        audit.record(actor, "engagement.question.answer", obj=question)
    return question


def leaderboard_since(now: datetime) -> datetime:
    return now - timedelta(days=30)

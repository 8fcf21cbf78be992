"""Portal pages of engagement: points, streak and rewards; the leaderboard; the community."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.engagement import models as em
from careloop.engagement import selectors, services
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, ValidationFailed
from careloop.portal.context import PortalActor
from careloop.portal.decorators import patient_page

ACTIVE = "me"


def _page(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    return render(request, template, {"active": ACTIVE, **context}, status=status)


# --- points, streak, badges, rewards ----------------------------------------------------------


@patient_page
@require_GET
def rewards(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    found = selectors.summary(actor)
    catalogue = list(selectors.catalogue(actor.organisation_id))
    mine = list(selectors.my_redemptions(actor)[:10])
    actor.audit("portal.engagement.view", object_type="engagement.wallet",
                detail={"balance": found.balance})  # fmt: skip
    return _page(
        request,
        "engagement/portal/rewards.html",
        {
            "section": "rewards",
            "summary": found,
            "ledger": selectors.ledger(actor),
            "catalogue": catalogue,
            "redemptions": mine,
            "elder": getattr(request, "elder", False),
        },
    )


@patient_page
@require_POST
def check_in(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    result = services.check_in(actor)
    if not result.new:
        messages.info(request, _("You have already checked in today. See you tomorrow!"))
    elif result.bonus:
        messages.success(
            request,
            _("Checked in! %(days)s days in a row, and %(bonus)s bonus points.")
            % {"days": result.streak.current, "bonus": result.bonus},
        )
    else:
        messages.success(
            request, _("Checked in! %(days)s day(s) in a row.") % {"days": result.streak.current}
        )
    return redirect("portal:rewards")


@patient_page
@require_http_methods(["GET", "POST"])
def redeem(request: HttpRequest, actor: PortalActor, reward_id: int) -> HttpResponse:
    """A confirmation page; the POST spends the points."""
    reward = selectors.reward_for_patient(actor, reward_id)
    error = ""
    status = 200
    if request.method == "POST":
        try:
            redemption = services.redeem(actor, reward.pk)
        except (ValidationFailed, Conflict) as exc:
            error, status = str(exc.message), exc.status
            reward = selectors.reward_for_patient(actor, reward_id)
        else:
            messages.success(request, _("Done! Show this code to collect your reward."))
            return redirect("portal:redemption", redemption_id=redemption.pk)
    balance = services.balance(actor.patient_id)
    actor.audit(
        "portal.engagement.reward_view", object_type="engagement.reward", object_id=reward.pk
    )
    return _page(
        request,
        "engagement/portal/redeem.html",
        {"reward": reward, "balance": balance, "after": balance - reward.cost, "error": error},
        status,
    )


@patient_page
@require_GET
def redemption(request: HttpRequest, actor: PortalActor, redemption_id: int) -> HttpResponse:
    found = selectors.my_redemption(actor, redemption_id)
    actor.audit("portal.engagement.redemption_view", object_type="engagement.redemption",
                object_id=found.pk)  # fmt: skip
    return _page(request, "engagement/portal/redemption.html", {"redemption": found})


@patient_page
@require_POST
def redemption_cancel(request: HttpRequest, actor: PortalActor, redemption_id: int) -> HttpResponse:
    selectors.my_redemption(actor, redemption_id)
    try:
        services.cancel_by_patient(actor, redemption_id)
    except Conflict as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Cancelled. Your points are back."))
    return redirect("portal:redemption", redemption_id=redemption_id)


# --- leaderboard and nickname -----------------------------------------------------------------


@patient_page
@require_http_methods(["GET", "POST"])
def leaderboard(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    errors: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        try:
            services.save_profile(actor, request.POST.dict())
        except ValidationFailed as exc:
            errors, status = exc.details, exc.status
        else:
            messages.success(request, _("Saved."))
            target = request.POST.get("next", "")
            if target.startswith("/portal/") and "//" not in target:
                return redirect(target)
            return redirect("portal:leaderboard")
    board = selectors.leaderboard(actor)
    wallet = selectors.summary(actor).wallet
    actor.audit("portal.engagement.leaderboard", object_type="engagement.wallet",
                detail={"opted_in": board.opted_in})  # fmt: skip
    return _page(
        request,
        "engagement/portal/leaderboard.html",
        {
            "section": "leaderboard",
            "board": board,
            "errors": errors,
            "nickname": request.POST.get("nickname")
            if errors
            else (wallet.nickname if wallet else ""),
            "on_leaderboard": (
                request.POST.get("on_leaderboard") == "on"
                if errors
                else bool(wallet and wallet.on_leaderboard)
            ),
        },
        status,
    )


# --- community --------------------------------------------------------------------------------


@patient_page
@require_GET
def community(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    rows = selectors.communities(actor)
    actor.audit("portal.community.list", object_type="engagement.community",
                detail={"communities": len(rows)})  # fmt: skip
    return _page(
        request, "engagement/portal/community.html", {"section": "community", "rows": rows}
    )


@patient_page
@require_POST
def community_join(request: HttpRequest, actor: PortalActor, community_id: int) -> HttpResponse:
    services.join(actor, community_id)
    return redirect("portal:community_detail", community_id=community_id)


@patient_page
@require_POST
def community_leave(request: HttpRequest, actor: PortalActor, community_id: int) -> HttpResponse:
    services.leave(actor, community_id)
    messages.success(request, _("You left the community."))
    return redirect("portal:community")


def _nickname(actor: PortalActor) -> str:
    wallet = em.Wallet.objects.filter(patient_id=actor.patient_id).first()
    return wallet.nickname if wallet else ""


def _community_page(
    request: HttpRequest,
    actor: PortalActor,
    found: em.Community,
    errors: dict[str, Any],
    status: int,
) -> HttpResponse:
    posts = list(selectors.community_posts(actor, found)[:50])
    actor.audit("portal.community.view", object_type="engagement.community", object_id=found.pk)
    return _page(
        request,
        "engagement/portal/community_detail.html",
        {
            "section": "community",
            "community": found,
            "posts": posts,
            "sessions": list(selectors.sessions_of(found)),
            "past_sessions": list(selectors.past_sessions_of(found)),
            "nickname": _nickname(actor),
            "errors": errors,
            "body": request.POST.get("body", "") if errors else "",
            "max_length": em.Post.MAX_LENGTH,
            "me": actor.patient_id,
        },
        status,
    )


@patient_page
@require_GET
def community_detail(request: HttpRequest, actor: PortalActor, community_id: int) -> HttpResponse:
    found = services.member_community(actor, community_id)
    return _community_page(request, actor, found, {}, 200)


@patient_page
@require_POST
def post_create(request: HttpRequest, actor: PortalActor, community_id: int) -> HttpResponse:
    found = services.member_community(actor, community_id)
    try:
        post = services.create_post(actor, found.pk, request.POST.dict())
    except ValidationFailed as exc:
        return _community_page(
            request, actor, found, exc.details or {"body": [exc.message]}, exc.status
        )
    if post.status == em.Post.Status.PENDING:
        messages.success(
            request, _("Thank you! A moderator will check your post before others see it.")
        )
    else:
        messages.success(request, _("Your post is published."))
    return redirect("portal:post", post_id=post.pk)


def _post_page(
    request: HttpRequest, actor: PortalActor, post: em.Post, errors: dict[str, Any], status: int
) -> HttpResponse:
    actor.audit("portal.community.post_view", object_type="engagement.post", object_id=post.pk)
    reported = em.Report.objects.filter(post=post, patient_id=actor.patient_id).exists()
    return _page(
        request,
        "engagement/portal/post.html",
        {
            "section": "community",
            "post": post,
            "replies": list(selectors.replies(actor, post)) if post.parent_id is None else [],
            "nickname": _nickname(actor),
            "errors": errors,
            "body": request.POST.get("body", "") if errors else "",
            "max_length": em.Post.MAX_LENGTH,
            "me": actor.patient_id,
            "reported": reported,
        },
        status,
    )


@patient_page
@require_GET
def post(request: HttpRequest, actor: PortalActor, post_id: int) -> HttpResponse:
    return _post_page(request, actor, services.visible_post(actor, post_id), {}, 200)


@patient_page
@require_POST
def post_reply(request: HttpRequest, actor: PortalActor, post_id: int) -> HttpResponse:
    parent = services.visible_post(actor, post_id)
    try:
        reply = services.create_post(actor, parent.community_id, request.POST.dict(), parent.pk)
    except ValidationFailed as exc:
        return _post_page(
            request, actor, parent, exc.details or {"body": [exc.message]}, exc.status
        )
    if reply.status == em.Post.Status.PENDING:
        messages.success(
            request, _("Thank you! A moderator will check your reply before others see it.")
        )
    return redirect(reverse("portal:post", args=[parent.pk]) + f"#p{reply.pk}")


@patient_page
@require_http_methods(["GET", "POST"])
def post_edit(request: HttpRequest, actor: PortalActor, post_id: int) -> HttpResponse:
    found = services.own_post(actor, post_id)
    errors: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        try:
            services.edit_post(actor, found.pk, request.POST.dict())
        except ValidationFailed as exc:
            errors, status = exc.details, exc.status
        else:
            messages.success(request, _("Your post is updated."))
            return redirect("portal:post", post_id=found.parent_id or found.pk)
    actor.audit("portal.community.post_view", object_type="engagement.post", object_id=found.pk)
    return _page(
        request,
        "engagement/portal/post_edit.html",
        {
            "section": "community",
            "post": found,
            "errors": errors,
            "body": request.POST.get("body", "") if errors else found.body,
            "max_length": em.Post.MAX_LENGTH,
        },
        status,
    )


@patient_page
@require_POST
def post_report(request: HttpRequest, actor: PortalActor, post_id: int) -> HttpResponse:
    found = services.visible_post(actor, post_id)
    try:
        services.report(actor, found.pk, request.POST.dict())
    except ValidationFailed as exc:
        return _post_page(
            request, actor, found, {"report": exc.details.get("reason", [])}, exc.status
        )
    messages.success(request, _("Thank you. A moderator will look at this post."))
    return redirect("portal:post", post_id=found.parent_id or found.pk)


@patient_page
@require_http_methods(["GET", "POST"])
def expert_session(request: HttpRequest, actor: PortalActor, session_id: int) -> HttpResponse:
    found = selectors.session_for_patient(actor, session_id)
    errors: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        try:
            services.ask(actor, found.pk, request.POST.dict())
        except ValidationFailed as exc:
            errors, status = exc.details or {"body": [exc.message]}, exc.status
        else:
            messages.success(request, _("Your question is sent. The answer will appear here."))
            return redirect("portal:expert_session", session_id=found.pk)
    actor.audit(
        "portal.community.session_view", object_type="engagement.session", object_id=found.pk
    )
    return _page(
        request,
        "engagement/portal/session.html",
        {
            "section": "community",
            "session": found,
            "questions": list(selectors.session_questions(actor, found)),
            "open": utc_now() < found.ends_at,
            "nickname": _nickname(actor),
            "errors": errors,
            "body": request.POST.get("body", "") if errors else "",
            "me": actor.patient_id,
        },
        status,
    )

"""Staff pages of engagement: community moderation and expert sessions; rewards and rules."""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms as django_forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.engagement import domain, forms, selectors, services
from careloop.engagement import models as em
from careloop.kit.errors import Conflict, ValidationFailed
from careloop.web.decorators import staff_page

F = TypeVar("F", bound=django_forms.Form)


def _bound(form: F, exc: ValidationFailed) -> F:
    """Show a service's errors on the page's form (its own validation, or what the service
    found beyond it)."""
    if form.is_valid():
        for field, errs in exc.details.items():
            for err in errs:
                form.add_error(field if field in form.fields else None, str(err))
    return form


def _org_zone(actor: Actor) -> Any:
    return domain.zone(actor.user.organisation.time_zone if actor.user.organisation else "")


def _common(actor: Actor, section: str) -> dict[str, Any]:
    return {
        "section": section,
        "can_moderate": actor.can(Action.TASK_WORK),
        "can_manage": actor.can(Action.ORG_MANAGE),
    }


# --- community moderation ---------------------------------------------------------------------


@staff_page
@require_GET
def community(request: HttpRequest, actor: Actor) -> HttpResponse:
    queue = selectors.moderation_queue(actor)
    return render(
        request,
        "engagement/community.html",
        {**_common(actor, "community"), **queue, "decisions": forms.ModerateForm.DECISIONS},
    )


@staff_page
@require_POST
def post_moderate(request: HttpRequest, actor: Actor, post_id: int) -> HttpResponse:
    try:
        post = services.moderate(actor, post_id, request.POST.dict())
    except ValidationFailed as exc:
        for errs in exc.details.values():
            for err in errs:
                messages.error(request, str(err))
    else:
        messages.success(request, _("Post %(status)s.") % {"status": post.get_status_display()})
    return redirect("engagement:community")


@staff_page
@require_POST
def report_dismiss(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    services.dismiss_report(actor, report_id)
    messages.success(request, _("Report closed without action."))
    return redirect("engagement:community")


def _community_form_page(
    request: HttpRequest, actor: Actor, found: em.Community | None
) -> HttpResponse:
    if request.method == "POST":
        try:
            services.save_community(actor, request.POST.dict(), found.pk if found else None)
        except ValidationFailed as exc:
            form = _bound(forms.CommunityForm(request.POST), exc)
        else:
            messages.success(request, _("Community saved."))
            return redirect("engagement:community")
        status = 422
    else:
        initial = (
            {
                "name": found.name,
                "condition": found.condition,
                "description": found.description,
                "icd10_prefixes": found.icd10_prefixes,
                "moderation": found.moderation,
                "active": found.active,
            }
            if found
            else None
        )
        form = forms.CommunityForm(initial=initial)
        status = 200
    return render(
        request,
        "engagement/form.html",
        {
            **_common(actor, "community"),
            "form": form,
            "title": found.name if found else _("New community"),
            "back": "engagement:community",
        },
        status=status,
    )


@staff_page
@require_http_methods(["GET", "POST"])
def community_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.moderation_queue(actor)  # role check
    return _community_form_page(request, actor, None)


@staff_page
@require_http_methods(["GET", "POST"])
def community_edit(request: HttpRequest, actor: Actor, community_id: int) -> HttpResponse:
    found = selectors.community_for_staff(actor, community_id)
    return _community_form_page(request, actor, found)


def _session_form(actor: Actor, data: Any = None) -> forms.SessionForm:
    org = actor.organisation_id or 0
    return forms.SessionForm(
        data,
        communities=[(c.pk, c.name) for c in em.Community.objects.filter(organisation_id=org)],
        experts=[(s.pk, str(s)) for s in services.experts(org)],
    )


@staff_page
@require_http_methods(["GET", "POST"])
def session_create(request: HttpRequest, actor: Actor) -> HttpResponse:
    selectors.moderation_queue(actor)  # role check
    status = 200
    with timezone.override(_org_zone(actor)):
        if request.method == "POST":
            try:
                session = services.save_session(actor, request.POST.dict())
            except ValidationFailed as exc:
                form = _bound(_session_form(actor, request.POST), exc)
                status = 422
            else:
                messages.success(request, _("Expert session planned."))
                return redirect("engagement:session", session_id=session.pk)
        else:
            form = _session_form(actor)
        return render(
            request,
            "engagement/form.html",
            {
                **_common(actor, "community"),
                "form": form,
                "title": _("New expert session"),
                "back": "engagement:community",
            },
            status=status,
        )


@staff_page
@require_GET
def session(request: HttpRequest, actor: Actor, session_id: int) -> HttpResponse:
    found = selectors.session_for_staff(actor, session_id)
    return render(
        request,
        "engagement/session.html",
        {
            **_common(actor, "community"),
            "session": found,
            "questions": list(found.questions.order_by("answered_at", "created_at")),
        },
    )


@staff_page
@require_POST
def answer(request: HttpRequest, actor: Actor, question_id: int) -> HttpResponse:
    question = em.ExpertQuestion.objects.filter(
        pk=question_id, session__organisation_id=actor.organisation_id or 0
    ).first()
    try:
        answered = services.answer(actor, question_id, request.POST.dict())
    except ValidationFailed as exc:
        for errs in exc.details.values():
            for err in errs:
                messages.error(request, str(err))
        if question is None:
            return redirect("engagement:community")
        return redirect("engagement:session", session_id=question.session_id)
    messages.success(request, _("Answer published to the community."))
    return redirect("engagement:session", session_id=answered.session_id)


# --- rewards, redemptions and point rules -----------------------------------------------------


@staff_page
@require_http_methods(["GET", "POST"])
def rewards(request: HttpRequest, actor: Actor) -> HttpResponse:
    rows = list(selectors.rewards_for_staff(actor))
    status = 200
    form = forms.RewardForm()
    if request.method == "POST":
        try:
            services.save_reward(actor, request.POST.dict())
        except ValidationFailed as exc:
            form = _bound(forms.RewardForm(request.POST), exc)
            status = 422
        else:
            messages.success(request, _("Reward added."))
            return redirect("engagement:rewards")
    return render(
        request,
        "engagement/rewards.html",
        {**_common(actor, "rewards"), "rows": rows, "form": form},
        status=status,
    )


@staff_page
@require_http_methods(["GET", "POST"])
def reward_edit(request: HttpRequest, actor: Actor, reward_id: int) -> HttpResponse:
    found = selectors.reward_for_staff(actor, reward_id)
    status = 200
    if request.method == "POST":
        try:
            services.save_reward(actor, request.POST.dict(), found.pk)
        except ValidationFailed as exc:
            form = _bound(forms.RewardForm(request.POST), exc)
            status = 422
        else:
            messages.success(request, _("Reward saved."))
            return redirect("engagement:rewards")
    else:
        form = forms.RewardForm(
            initial={
                "name": found.name,
                "description": found.description,
                "cost": found.cost,
                "stock": found.stock,
                "active": found.active,
            }
        )
    return render(
        request,
        "engagement/form.html",
        {
            **_common(actor, "rewards"),
            "form": form,
            "title": found.name,
            "back": "engagement:rewards",
        },
        status=status,
    )


@staff_page
@require_GET
def redemptions(request: HttpRequest, actor: Actor) -> HttpResponse:
    code = request.GET.get("code", "")[:20]
    rows = list(selectors.redemptions_for_staff(actor, code)[:100])
    return render(
        request,
        "engagement/redemptions.html",
        {**_common(actor, "redemptions"), "rows": rows, "code": code},
    )


def _after_redemption(request: HttpRequest) -> HttpResponse:
    code = request.POST.get("code", "")
    target = "engagement:redemptions"
    response = redirect(target)
    if code:
        response["Location"] += "?code=" + "".join(ch for ch in code if ch.isalnum())[:20]
    return response


@staff_page
@require_POST
def redemption_fulfil(request: HttpRequest, actor: Actor, redemption_id: int) -> HttpResponse:
    try:
        services.fulfil(actor, redemption_id)
    except Conflict as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Marked as collected."))
    return _after_redemption(request)


@staff_page
@require_POST
def redemption_cancel(request: HttpRequest, actor: Actor, redemption_id: int) -> HttpResponse:
    try:
        services.cancel_by_staff(actor, redemption_id)
    except Conflict as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Redemption cancelled; the points were returned."))
    return _after_redemption(request)


@staff_page
@require_http_methods(["GET", "POST"])
def rules(request: HttpRequest, actor: Actor) -> HttpResponse:
    current = selectors.rules_for_staff(actor)
    status = 200
    form = forms.PointRulesForm(initial_rules=current)
    if request.method == "POST":
        try:
            services.save_rules(actor, request.POST.dict())
        except ValidationFailed as exc:
            form = _bound(forms.PointRulesForm(request.POST, initial_rules=current), exc)
            status = 422
        else:
            messages.success(request, _("Point rules saved."))
            return redirect("engagement:rules")
    return render(
        request,
        "engagement/form.html",
        {
            **_common(actor, "rules"),
            "form": form,
            "title": _("Points for patients' actions"),
            "back": "engagement:rewards",
            "intro": _(
                "Points each action earns, and the most points each kind can earn in one "
                "day, so the game stays fair."
            ),
        },  # fmt: skip
        status=status,
    )

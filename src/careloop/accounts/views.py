"""The "API tokens" page: each user issues and revokes their own; admins see the organisation's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from careloop.accounts import services
from careloop.accounts.actor import Actor
from careloop.accounts.models import ApiToken
from careloop.accounts.roles import Action
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.patients.selectors import require
from careloop.web.decorators import staff_page

MAX_DAYS = 3650
LIST_LIMIT = 500


def _visible_tokens(actor: Actor) -> Any:
    qs = ApiToken.objects.select_related("staff", "patient").order_by("-created_at", "-pk")
    if actor.can(Action.ORG_MANAGE):
        return qs.filter(staff__organisation_id=actor.organisation_id or 0)
    return qs.filter(staff=actor.user)


def _state(token: ApiToken, now: Any) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _form_errors(form: dict[str, str]) -> tuple[dict[str, list[str]], int | None, Any]:
    errors: dict[str, list[str]] = {}
    patient_id: int | None = None
    if form["patient"]:
        if form["patient"].isdigit() and len(form["patient"]) < 12:
            patient_id = int(form["patient"])
        else:
            errors["patient"] = [_("Enter the patient's number (digits only).")]
    expires_at = None
    if form["days"]:
        if form["days"].isdigit() and 0 < int(form["days"]) <= MAX_DAYS:
            expires_at = utc_now() + timedelta(days=int(form["days"]))
        else:
            errors["expires_at"] = [
                _("Enter a number of days from 1 to %(max)d.") % {"max": MAX_DAYS}
            ]
    return errors, patient_id, expires_at


@staff_page
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest, actor: Actor) -> HttpResponse:
    """List the tokens the user may manage and issue a new one (shown once)."""
    require(actor, Action.API_TOKEN)
    form = {
        k: request.POST.get(k, "").strip()[:2000] for k in ("label", "scopes", "patient", "days")
    }
    errors: dict[str, list[str]] = {}
    issued = ""
    status = 200
    if request.method == "POST":
        errors, patient_id, expires_at = _form_errors(form)
        if not errors:
            try:
                issued = services.issue_token(
                    actor.user,
                    form["label"][:100],
                    scopes=form["scopes"],
                    patient_id=patient_id,
                    expires_at=expires_at,
                    actor=actor,
                )
            except ValidationFailed as exc:
                errors = {k: [str(m) for m in v] for k, v in exc.details.items()}
        if errors:
            status = 422
        else:
            form = {k: "" for k in form}
    now = utc_now()
    rows = [(t, _state(t, now)) for t in _visible_tokens(actor)[:LIST_LIMIT]]
    return render(
        request,
        "accounts/tokens.html",
        {
            "rows": rows,
            "form": form,
            "errors": errors,
            "issued": issued,
            "org_wide": actor.can(Action.ORG_MANAGE),
        },
        status=status,
    )


@staff_page
@require_http_methods(["GET", "POST"])
def revoke(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Confirm (GET ?token=ID), then revoke (POST token=ID) one token: the user's own, or any of
    the organisation's for admins. Without a token number it goes back to the list."""
    require(actor, Action.API_TOKEN)
    raw_id = (request.POST if request.method == "POST" else request.GET).get("token", "")
    if not raw_id:
        return redirect("tokens:list")
    token_id = int(raw_id) if raw_id.isdigit() and len(raw_id) <= 12 else 0
    token = _visible_tokens(actor).filter(pk=token_id).first()
    if token is None:
        raise NotFound()
    if request.method == "POST":
        services.revoke_token(actor, token.pk)
        messages.success(request, _("The token was revoked. Calls with it now fail."))
        return redirect("tokens:list")
    return render(
        request, "accounts/token_revoke.html", {"token": token, "state": _state(token, utc_now())}
    )

"""Portal sign-in (SMS code, invitation link), sign-out, the installable shell and Me."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import client_address
from careloop.accounts.models import Organisation
from careloop.audit import services as audit
from careloop.kit.errors import ValidationFailed
from careloop.patients import models as pm
from careloop.portal import context, otp, services
from careloop.portal.context import PortalActor
from careloop.portal.decorators import ELDER_COOKIE, is_elder, patient_page
from careloop.portal.forms import CodeForm, PhoneForm
from careloop.portal.models import PortalSession, SignInCode

OTP_COOKIE = "careloop_portal_otp"
_OTP_SALT = "careloop.portal.otp"
_OTP_AGE = int(otp.CODE_LIFETIME.total_seconds())
THEME = "#1f6feb"


# --- helpers -----------------------------------------------------------------------------------


def _safe_next(request: HttpRequest, value: str | None) -> str:
    """Where to go after signing in: a portal page of this site, else Today."""
    target = value or ""
    if (
        target.startswith("/portal/")
        and not target.startswith("/portal/sign-")
        and url_has_allowed_host_and_scheme(target, {request.get_host()})
    ):
        return target
    return reverse("portal:today")


def _organisation(request: HttpRequest) -> tuple[Organisation | None, bool]:
    """The organisation named by ``org`` (its code), the only one there is, or none (all).

    Returns (organisation, valid): an unknown code is not valid.
    """
    code = (request.POST.get("org") or request.GET.get("org") or "").strip()
    if code:
        org = Organisation.objects.filter(code=code[:40]).first()
        return org, org is not None
    orgs = list(Organisation.objects.order_by("pk")[:2])
    return (orgs[0] if len(orgs) == 1 else None), True


def _public(request: HttpRequest) -> None:
    """Pages before sign-in honour elder mode too."""
    request.elder = is_elder(request)  # type: ignore[attr-defined]


def _otp_state(request: HttpRequest) -> tuple[int, str] | None:
    try:
        value = request.get_signed_cookie(OTP_COOKIE, salt=_OTP_SALT, max_age=_OTP_AGE)
    except (KeyError, signing.BadSignature):
        return None
    challenge, _sep, nonce = str(value).partition(":")
    if not challenge.isdigit() or not nonce:
        return None
    return int(challenge), nonce


def _drop_otp(response: HttpResponse) -> None:
    response.delete_cookie(OTP_COOKIE, samesite="Lax")


def _query(org: str, next_url: str) -> str:
    from urllib.parse import urlencode

    items = {k: v for k, v in (("org", org), ("next", next_url)) if v}
    return f"?{urlencode(items)}" if items else ""


def _sign_in_page(
    request: HttpRequest,
    *,
    form: PhoneForm | None = None,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "portal/sign_in.html",
        {
            "form": form or PhoneForm(),
            "org": (request.POST.get("org") or request.GET.get("org") or "")[:40],
            "next": request.POST.get("next") or request.GET.get("next") or "",
            "notice": notice,
        },
        status=status,
    )


def _finish(
    request: HttpRequest, patient: pm.Patient, caregiver: Any, method: str, next_url: str
) -> HttpResponse:
    response = redirect(_safe_next(request, next_url))
    context.start(request, response, patient, method=method, caregiver=caregiver)
    _drop_otp(response)
    return response


def _fail(row: SignInCode | None, request: HttpRequest, reason: str) -> None:
    audit.append(
        action="portal.sign_in",
        outcome="failure",
        actor_name="portal:anonymous",
        organisation_id=row.organisation_id if row is not None else None,
        object_type="portal.signincode",
        object_id=row.pk if row is not None else "",
        source=client_address(request),
        detail={"method": "code", "reason": reason},
    )


# --- sign-in with an SMS code ------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    _public(request)
    if context.current(request) is not None and request.method == "GET":
        return redirect(_safe_next(request, request.GET.get("next")))
    org, valid = _organisation(request)
    if not valid:
        return _sign_in_page(
            request, notice=_("This clinic link is not valid. Ask your clinic for its portal link.")
        )
    if request.method == "GET":
        return _sign_in_page(request)
    form = PhoneForm(request.POST)
    if not form.is_valid():
        return _sign_in_page(request, form=form, status=422)
    language = getattr(request, "LANGUAGE_CODE", "") or "zh-hans"
    try:
        issued = otp.request_code(
            form.cleaned_data["phone"],
            organisation=org,
            address=client_address(request),
            language=language,
        )
    except otp.TooMany as exc:
        return _sign_in_page(request, form=form, notice=exc.message, status=429)
    org_code = org.code if org is not None and request.POST.get("org") else ""
    response = redirect(
        reverse("portal:sign_in_code") + _query(org_code, request.POST.get("next", ""))
    )
    response.set_signed_cookie(
        OTP_COOKIE,
        f"{issued.challenge_id}:{issued.nonce}",
        salt=_OTP_SALT,
        max_age=_OTP_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


@require_http_methods(["GET", "POST"])
def sign_in_code(request: HttpRequest) -> HttpResponse:
    _public(request)
    state = _otp_state(request)
    org = request.POST.get("org") or request.GET.get("org") or ""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if state is None:
        if request.method == "POST":
            _fail(None, request, "no_code_requested")
        return redirect(reverse("portal:sign_in") + _query(org, next_url))
    form = CodeForm(request.POST or None)
    ctx: dict[str, Any] = {"form": form, "org": org, "next": next_url, "error": ""}
    if request.method == "GET":
        return render(request, "portal/sign_in_code.html", ctx)
    if not form.is_valid():
        return render(request, "portal/sign_in_code.html", ctx, status=422)
    outcome, row = otp.check_code(state[0], state[1], form.cleaned_data["code"])
    if outcome == otp.Outcome.EXPIRED:
        _fail(row, request, "expired_or_used")
        response = _sign_in_page(
            request, notice=_("This code can no longer be used. Ask for a new one.")
        )
        _drop_otp(response)
        return response
    if outcome == otp.Outcome.WRONG:
        _fail(row, request, "wrong_code")
        left = otp.tries_left(row)
        ctx["error"] = (
            _("That code is not right. You can try %(n)d more times.") % {"n": left}
            if left
            else _("That code is not right, and it can no longer be used. Ask for a new one.")
        )
        return render(request, "portal/sign_in_code.html", ctx, status=422)
    if row is None:  # an OK outcome always carries its row
        return redirect(reverse("portal:sign_in"))
    found = otp.candidates(row.phone_index, row.organisation_id)
    if not found:
        _fail(row, request, "no_record")
        response = _sign_in_page(
            request, notice=_("This code can no longer be used. Ask for a new one.")
        )
        _drop_otp(response)
        return response
    if len(found) == 1:
        return _take(request, row, found[0], next_url)
    SignInCode.objects.filter(pk=row.pk).update(choices=[c.as_json() for c in found])
    return redirect(reverse("portal:sign_in_choose") + _query(org, next_url))


def _take(
    request: HttpRequest, row: SignInCode, candidate: otp.Candidate, next_url: str
) -> HttpResponse:
    allowed = services.still_allowed(candidate)
    if allowed is None or not services.take_code(row.pk):
        _fail(row, request, "no_record")
        response = _sign_in_page(
            request, notice=_("This code can no longer be used. Ask for a new one.")
        )
        _drop_otp(response)
        return response
    patient, caregiver = allowed
    return _finish(request, patient, caregiver, PortalSession.Method.CODE, next_url)


@require_http_methods(["GET", "POST"])
def sign_in_choose(request: HttpRequest) -> HttpResponse:
    """After a correct code for a number on several records: which one to open."""
    _public(request)
    state = _otp_state(request)
    org = request.POST.get("org") or request.GET.get("org") or ""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    row = None
    if state is not None:
        row = SignInCode.objects.filter(
            pk=state[0],
            browser_digest=otp.digest(f"browser:{state[1]}"),
            verified_at__isnull=False,
            used_at__isnull=True,
        ).first()
    if row is None or not row.choices or row.expires_at <= otp.utc_now():
        return redirect(reverse("portal:sign_in") + _query(org, next_url))
    found = [otp.Candidate.from_json(c) for c in row.choices]
    if request.method == "POST":
        picked = request.POST.get("choice", "")
        if picked.isdigit() and int(picked) < len(found):
            return _take(request, row, found[int(picked)], next_url)
    return render(
        request,
        "portal/sign_in_choose.html",
        {"choices": services.describe(found), "org": org, "next": next_url},
    )


# --- invitation links --------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the link's state (link previews never use it up); POST signs in."""
    _public(request)
    if request.method == "GET":
        state, _row = services.invitation_state(token)
    else:
        state, row = services.use_invitation(token, client_address(request))
        if state == services.InvitationState.VALID and row is not None:
            return _finish(
                request, row.patient, None, PortalSession.Method.INVITATION, reverse("portal:today")
            )
    status = 200 if state == services.InvitationState.VALID else 410
    return render(request, "portal/invitation.html", {"state": state}, status=status)


# --- sign-out ----------------------------------------------------------------------------------


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End this browser's session; the page then empties the offline copy on this phone."""
    _public(request)
    response = render(request, "portal/signed_out.html", {})
    context.sign_out(request, response)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the installable shell ---------------------------------------------------------------------


@require_GET
def manifest(request: HttpRequest) -> HttpResponse:
    start = reverse("portal:today")
    data = {
        "name": "CareLoop",
        "short_name": "CareLoop",
        "description": _("Your follow-up care: today's tasks, messages and your health."),
        "id": start,
        "start_url": start,
        "scope": start,
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": THEME,
        "lang": getattr(request, "LANGUAGE_CODE", "zh-hans"),
        "icons": [
            {
                "src": static("portal/icon.svg"),
                "sizes": "any",
                "type": "image/svg+xml",
                "purpose": "any",
            },
            {
                "src": static("portal/icon-maskable.svg"),
                "sizes": "any",
                "type": "image/svg+xml",
                "purpose": "maskable",
            },
        ],
    }
    return HttpResponse(
        json.dumps(data, ensure_ascii=False), content_type="application/manifest+json"
    )


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    shell = [
        static("vendor/pico.min.css"),
        static("portal/portal.css"),
        static("vendor/htmx.min.js"),
        static("careloop/app.js"),
        static("portal/portal.js"),
        static("portal/icon.svg"),
    ]
    response = render(
        request,
        "portal/sw.js",
        {
            "shell": json.dumps(shell),
            "scope": json.dumps(reverse("portal:today")),
            "version": json.dumps("careloop-portal-v1"),
        },
        content_type="application/javascript; charset=utf-8",
    )
    response.headers["Service-Worker-Allowed"] = reverse("portal:today")
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- Me ----------------------------------------------------------------------------------------


def _me_context(request: HttpRequest, actor: PortalActor) -> dict[str, Any]:
    patient = pm.Patient.objects.get(pk=actor.patient_id)
    phone = pm.PatientPhone.objects.filter(patient=patient).order_by("position", "id").first()
    caregiver = (
        pm.Caregiver.objects.filter(pk=actor.caregiver_id, patient=patient).first()
        if actor.caregiver_id
        else None
    )
    shown_phone = caregiver.phone if caregiver is not None else (phone.number if phone else "")
    return {
        "active": "me",
        "patient": patient,
        "caregiver": caregiver,
        "masked_phone": services.mask_phone(shown_phone),
        "elder": getattr(request, "elder", False),
        "vapid_key": "" if actor.is_proxy else services.vapid_public_key(actor.organisation_id),
        "push_on": services.push_enabled(actor.patient_id),
        "consent_text": services.CONSENT_TEXT,
        "notify_text": services.NOTIFY_TEXT,
        "errors": {},
        **services.family(actor),
    }


@patient_page
@require_GET
def me(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    ctx = _me_context(request, actor)
    actor.audit("portal.me.view", object_type="patients.patient", object_id=actor.patient_id)
    return render(request, "portal/me.html", ctx)


@patient_page
@require_POST
def elder_mode(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    on = request.POST.get("elder") == "1"
    response = redirect(_safe_next(request, request.POST.get("next") or reverse("portal:me")))
    if on:
        response.set_cookie(ELDER_COOKIE, "1", max_age=365 * 24 * 3600, samesite="Lax")
    else:
        response.delete_cookie(ELDER_COOKIE, samesite="Lax")
    return response


@patient_page
@require_POST
def family_grant(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    try:
        services.grant_proxy_portal(
            actor,
            request.POST.get("caregiver"),
            consent=request.POST.get("consent") == "1",
            notify=request.POST.get("notify") == "1",
        )
    except ValidationFailed as exc:
        ctx = _me_context(request, actor)
        ctx["errors"] = exc.details
        return render(request, "portal/me.html", ctx, status=422)
    messages.success(request, _("Your family member can now sign in with their own phone."))
    return redirect(reverse("portal:me") + "#family")


@patient_page
@require_POST
def family_revoke(request: HttpRequest, actor: PortalActor, proxy_id: int) -> HttpResponse:
    services.revoke_proxy_portal(actor, proxy_id)
    messages.success(request, _("Access was withdrawn; their phone is signed out."))
    return redirect(reverse("portal:me") + "#family")


@patient_page
@require_POST
def family_notify(request: HttpRequest, actor: PortalActor, proxy_id: int) -> HttpResponse:
    services.set_proxy_notify(actor, proxy_id, request.POST.get("notify") == "1")
    return redirect(reverse("portal:me") + "#family")


# --- web push ----------------------------------------------------------------------------------


def _payload(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {
        "endpoint": request.POST.get("endpoint", ""),
        "keys": {"p256dh": request.POST.get("p256dh", ""), "auth": request.POST.get("auth", "")},
    }


@patient_page
@require_POST
def push_subscribe(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    try:
        services.subscribe_push(actor, _payload(request))
    except ValidationFailed as exc:
        return JsonResponse(exc.as_dict(), status=422)
    return JsonResponse({"subscribed": True})


@patient_page
@require_POST
def push_unsubscribe(request: HttpRequest, actor: PortalActor) -> HttpResponse:
    data = _payload(request)
    ended = services.unsubscribe_push(actor, str(data.get("endpoint") or "")[:2000])
    return JsonResponse({"subscribed": services.push_enabled(actor.patient_id), "ended": ended})

"""Staff side of the portal: the portal-access panel reached from the patient 360 page.

Invitation links (shown once, also as a QR code), ending every portal session of the patient,
and family (proxy) access recorded with the patient's consent.
"""

from __future__ import annotations

from typing import Any

import segno
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.kit.errors import ValidationFailed
from careloop.portal import services
from careloop.portal.forms import StaffGrantForm
from careloop.web.decorators import staff_page


def qr_data_uri(text: str) -> str:
    """An SVG QR code of the text, as a data: URI for an <img> (the CSP allows data: images)."""
    code = segno.make(text, error="m")
    return str(code.svg_data_uri(scale=6, border=2, dark="#111", light="#fff"))


def _caregiver_choices(ctx: dict[str, Any]) -> list[tuple[int, str]]:
    return [(c.pk, f"{c.name} · {c.relation}") for c in ctx["caregivers"]]


def _panel(
    request: HttpRequest,
    actor: Actor,
    patient_id: int,
    *,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    ctx = services.overview(actor, patient_id)
    ctx["grant_form"] = StaffGrantForm(caregivers=_caregiver_choices(ctx))
    ctx["can_consent"] = actor.can(Action.CONSENT_WRITE)
    ctx["consent_text"] = services.CONSENT_TEXT
    ctx.update(extra or {})
    return render(request, "portal/staff/panel.html", ctx, status=status)


@staff_page
@require_GET
def panel(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    return _panel(request, actor, patient_id)


@staff_page
@require_POST
def invite(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    invitation, token = services.create_invitation(actor, patient_id)
    link = services.invitation_url(token)
    return _panel(
        request,
        actor,
        patient_id,
        extra={"new_link": link, "new_qr": qr_data_uri(link), "new_invitation": invitation},
    )


@staff_page
@require_POST
def revoke_sessions(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    ended = services.revoke_sessions(actor, patient_id)
    messages.success(request, _("Portal sessions ended: %(n)d.") % {"n": ended})
    return redirect("portal_staff:panel", patient_id=patient_id)


@staff_page
@require_POST
def proxy_grant(request: HttpRequest, actor: Actor, patient_id: int) -> HttpResponse:
    ctx = services.overview(actor, patient_id)
    form = StaffGrantForm(request.POST, caregivers=_caregiver_choices(ctx))
    if not form.is_valid():
        return _panel(request, actor, patient_id, extra={"grant_form": form}, status=422)
    data = form.cleaned_data
    try:
        services.grant_proxy(
            actor,
            patient_id,
            data["caregiver"],
            source=data["source"],
            consent=data["consent"],
            notify=data["notify"],
        )
    except ValidationFailed as exc:
        for field, errors in exc.details.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
        return _panel(request, actor, patient_id, extra={"grant_form": form}, status=422)
    messages.success(request, _("Family access recorded."))
    return redirect("portal_staff:panel", patient_id=patient_id)


@staff_page
@require_POST
def proxy_revoke(
    request: HttpRequest, actor: Actor, patient_id: int, proxy_id: int
) -> HttpResponse:
    services.revoke_proxy(actor, patient_id, proxy_id)
    messages.success(request, _("Family access withdrawn; their sessions are ended."))
    return redirect("portal_staff:panel", patient_id=patient_id)

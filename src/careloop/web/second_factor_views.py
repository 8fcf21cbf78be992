"""Sign-in's second step: the authenticator code, or setting the authenticator up.

After a correct password the account is not signed in yet: the session (with a new key) holds
only who passed the password, for five minutes. Wrong codes count toward the same lockout as
wrong passwords.
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from careloop.accounts import second_factor
from careloop.accounts import services as accounts
from careloop.accounts.actor import client_address
from careloop.accounts.models import Staff
from careloop.portal.staff_views import qr_data_uri

PENDING = "careloop.second_factor"
PENDING_SECONDS = 300


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


def begin(request: HttpRequest, staff: Staff, target: str) -> HttpResponse | None:
    """After the password: None when no second factor is needed (sign in now), else the
    redirect to the second step."""
    has_factor = second_factor.confirmed(staff) is not None
    if not has_factor and not second_factor.required(staff):
        return None
    request.session.cycle_key()
    request.session[PENDING] = {
        "uid": staff.pk,
        "backend": getattr(staff, "backend", ""),
        "until": time.time() + PENDING_SECONDS,
        "next": target,
    }
    return redirect("login_code" if has_factor else "login_setup")


def _pending(request: HttpRequest) -> tuple[Staff, dict[str, Any]] | None:
    state = request.session.get(PENDING)
    if not isinstance(state, dict) or state.get("until", 0) < time.time():
        request.session.pop(PENDING, None)
        return None
    staff = Staff.objects.filter(pk=int(state.get("uid") or 0), is_active=True).first()
    return (staff, state) if staff is not None else None


def _finish(request: HttpRequest, staff: Staff, state: dict[str, Any]) -> HttpResponse:
    request.session.pop(PENDING, None)
    accounts.clear_failures(staff.username)
    login(request, staff, backend=state.get("backend") or None)
    return HttpResponseRedirect(state.get("next") or "/")


def _step(
    request: HttpRequest, staff: Staff, state: dict[str, Any], *, confirming: bool
) -> HttpResponse | tuple[CodeForm, str, int]:
    """The signed-in redirect for an accepted code; else the form, error and status to show."""
    form = CodeForm(request.POST or None)
    if request.method != "POST":
        return form, "", 200
    source = client_address(request)
    if accounts.is_locked_out(staff.username, source):
        return form, str(_("Too many failed attempts. Sign-in is locked for 15 minutes.")), 429
    if not form.is_valid():
        return form, "", 400
    if second_factor.check(staff, form.cleaned_data["code"], source=source, confirming=confirming):
        return _finish(request, staff, state)
    accounts.register_failure(staff.username, source)
    error = _("That code is not right, or it was used already. Try the next one.")
    return form, str(error), 401


@require_http_methods(["GET", "POST"])
def code_view(request: HttpRequest) -> HttpResponse:
    found = _pending(request)
    if found is None:
        return redirect("login")
    outcome = _step(request, *found, confirming=False)
    if isinstance(outcome, HttpResponse):
        return outcome
    form, error, status = outcome
    return render(request, "web/login_code.html", {"form": form, "error": error}, status=status)


@require_http_methods(["GET", "POST"])
def setup_view(request: HttpRequest) -> HttpResponse:
    found = _pending(request)
    if found is None:
        return redirect("login")
    staff, state = found
    if second_factor.confirmed(staff) is not None:
        return redirect("login_code")
    secret = second_factor.pending_secret(staff)
    outcome = _step(request, staff, state, confirming=True)
    if isinstance(outcome, HttpResponse):
        return outcome
    form, error, status = outcome
    uri = second_factor.provisioning_uri(staff, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    response = render(
        request,
        "web/login_setup.html",
        {"form": form, "error": error, "secret": grouped, "qr": qr_data_uri(uri)},
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response

"""Login, logout, language, health checks and error pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts import services as accounts
from careloop.accounts.actor import client_address
from careloop.accounts.roles import Action, allowed
from careloop.web import second_factor_views


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    if allowed(getattr(request.user, "role", None), Action.AUDIT_VIEW) and not allowed(
        getattr(request.user, "role", None), Action.PATIENT_SEARCH
    ):
        return redirect("audit:list")
    if allowed(getattr(request.user, "role", None), Action.TASK_WORK):
        # Nurses, doctors and department heads start the day from their worklist.
        return redirect("worklist:index")
    return redirect("patients:list")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:  # any database error means not ready; details stay in the log
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if pending:
        return JsonResponse(
            {"status": "unavailable", "database": "ok", "pending_migrations": len(pending)},
            status=503,
        )
    return JsonResponse({"status": "ok", "database": "ok"})


class LoginForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, max_length=200)


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"].strip()
        source = client_address(request)
        if accounts.is_locked_out(username, source):
            error = str(_("Too many failed attempts. Sign-in is locked for 15 minutes."))
            status = 429
            from careloop.audit import services as audit

            audit.append(
                action="auth.login",
                outcome="denied",
                actor_name=username,
                source=source,
                detail={"reason": "locked_out"},
            )
        else:
            user = authenticate(request, username=username, password=form.cleaned_data["password"])
            if user is None:
                accounts.register_failure(username, source)
                error = str(_("Wrong username or password."))
                status = 401
            else:
                target = request.POST.get("next") or request.GET.get("next") or ""
                if not url_has_allowed_host_and_scheme(
                    target, {request.get_host()}, require_https=request.is_secure()
                ):
                    target = "/"
                # Failures are cleared only once every factor has passed.
                second_step = second_factor_views.begin(request, user, target)
                if second_step is not None:
                    return second_step
                accounts.clear_failures(username)
                login(request, user)
                return HttpResponseRedirect(target)
    return render(
        request,
        "web/login.html",
        {"form": form, "error": error, "next": request.GET.get("next", "")},
        status=status,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@require_POST
def language_view(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = "/"
    response = HttpResponseRedirect(target)
    if language in dict(settings.LANGUAGES):
        if request.user.is_authenticated:
            accounts.set_language(request.user, language)  # type: ignore[arg-type]
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax", max_age=365 * 24 * 3600
        )
    return response


def _error(request: HttpRequest, status: int, title: Any, text: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        code = {403: "forbidden", 404: "not_found"}.get(status, "server_error")
        return JsonResponse({"code": code, "message": str(text), "details": {}}, status=status)
    return render(request, "web/error.html", {"title": title, "text": text}, status=status)


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, _("Not allowed"), _("Your role does not allow this."))


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, _("Not found"), _("There is nothing here, or you cannot see it."))


def error_500(request: HttpRequest) -> HttpResponse:
    return _error(
        request,
        500,
        _("Something went wrong"),
        _("The error was logged. Nothing you entered was saved; please try again."),
    )

"""Staff page plumbing: sign-in required, domain errors rendered as pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from careloop.accounts.actor import Actor
from careloop.kit.errors import CareLoopError, Forbidden, NotFound


def staff_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Require sign-in, hand the view an Actor, and render NotFound/Forbidden as pages."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        actor = Actor.from_request(request)
        try:
            return view(request, actor, *args, **kwargs)
        except (NotFound, Forbidden) as exc:
            return render(
                request,
                "web/error.html",
                {"title": exc.message, "text": _explain(exc)},
                status=exc.status,
            )
        except CareLoopError as exc:
            return render(
                request, "web/error.html", {"title": exc.message, "text": ""}, status=exc.status
            )

    return wrapper


def _explain(exc: CareLoopError) -> str:
    from django.utils.translation import gettext as _

    if isinstance(exc, Forbidden):
        return _("Your role does not allow this. Ask your department head if you need it.")
    return _("There is nothing here, or it is outside your departments.")


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"

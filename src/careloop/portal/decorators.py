"""Portal page plumbing: a signed-in patient required, domain errors rendered as portal pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.kit.errors import CareLoopError, Forbidden, NotFound
from careloop.patients.models import Patient
from careloop.portal.context import current

ELDER_COOKIE = "careloop_elder"


def patient_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Require a portal sign-in and call ``view(request, actor, ...)`` with the PortalActor.

    Not signed in: sent to the portal sign-in page (with ``next``). NotFound and Forbidden
    become portal error pages with their status; nothing about other patients is revealed.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        actor = current(request)
        if actor is None:
            target = reverse("portal:sign_in")
            return redirect(f"{target}?next={quote(request.get_full_path())}")
        request.portal = actor  # type: ignore[attr-defined]
        request.elder = request.COOKIES.get(ELDER_COOKIE) == "1"  # type: ignore[attr-defined]
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            language = (
                Patient.objects.filter(pk=actor.patient_id)
                .values_list("preferred_language", flat=True)
                .first()
            )
            if language in dict(settings.LANGUAGES):
                translation.activate(language)
                request.LANGUAGE_CODE = language
        try:
            response = view(request, actor, *args, **kwargs)
            # A patient's pages are theirs alone: no shared or browser HTTP cache keeps them.
            response.headers.setdefault("Cache-Control", "no-store")
            return response
        except (NotFound, Forbidden) as exc:
            text = _("There is nothing here.") if isinstance(exc, NotFound) else ""
            return render(
                request, "portal/error.html", {"title": exc.message, "text": text},
                status=exc.status,
            )  # fmt: skip
        except CareLoopError as exc:
            return render(
                request, "portal/error.html", {"title": exc.message, "text": ""},
                status=exc.status,
            )  # fmt: skip

    return wrapper


def is_elder(request: HttpRequest) -> bool:
    """Elder mode (large text, high contrast, fewer items per screen) is on in this browser."""
    return request.COOKIES.get(ELDER_COOKIE) == "1"


def per_screen(request: HttpRequest, normal: int, elder: int) -> int:
    """How many items a list shows at once: fewer in elder mode."""
    return elder if getattr(request, "elder", False) or is_elder(request) else normal

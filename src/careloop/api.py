"""The JSON API at /api (django-ninja); OpenAPI docs at /api/docs."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from careloop.accounts import services as accounts
from careloop.kit.errors import CareLoopError
from careloop.web import api_scopes


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` from `careloop token issue` (or `careloop apitoken`).

    The live token is kept on the request as ``request.auth_token`` (its ``scopes`` and
    ``patient_id``); its SMART scopes are checked here against the operation, on top of the
    role and department checks every operation makes for the token's user."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        found = accounts.token_for(token)
        if found is None:
            return None
        staff = found.staff
        request.auth_token = found  # type: ignore[attr-defined]
        if "HTTP_ACCEPT_LANGUAGE" not in request.META:
            # Messages follow the user's own language unless the client asks for another.
            translation.activate(staff.language)
        api_scopes.enforce(request, found)
        return staff


api = NinjaAPI(
    title="CareLoop API",
    version="1",
    description="Patient records, scoped to the token's user. Errors are "
    '`{"code", "message", "details"}`.',
    auth=BearerToken(),
    urls_namespace="api",
    docs_url="/docs",
)


def error(
    request: HttpRequest, status: int, code: str, message: str, details: Any = None
) -> HttpResponse:
    return api.create_response(
        request, {"code": code, "message": message, "details": details or {}}, status=status
    )


@api.exception_handler(CareLoopError)
def _domain_error(request: HttpRequest, exc: CareLoopError) -> HttpResponse:
    return api.create_response(request, exc.as_dict(), status=exc.status)


_PYDANTIC_MESSAGES = {
    "missing": gettext_noop("This field is required."),
    "date": gettext_noop("Enter a valid date."),
    "time": gettext_noop("Enter a valid time."),
    "datetime": gettext_noop("Enter a valid date/time."),
    "int": gettext_noop("Enter a whole number."),
    "decimal": gettext_noop("Enter a number."),
    "float": gettext_noop("Enter a number."),
    "bool": gettext_noop("Enter true or false."),
    "string": gettext_noop("Enter text."),
    "list": gettext_noop("Enter a list."),
    "too_long": gettext_noop("This value is too long."),
}


def _message_for(kind: str) -> str:
    for prefix, message in _PYDANTIC_MESSAGES.items():
        if kind.startswith(prefix) or prefix in kind:
            return _(message)
    return _("Enter a valid value.")


@api.exception_handler(NinjaValidationError)
def _schema_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    details: dict[str, list[str]] = {}
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "payload", "query", "path")]
        field = ".".join(loc) or "__all__"
        if err.get("type") == "json_invalid":
            field = "__all__"
            msg = _("The body is not valid JSON.")
        else:
            msg = _message_for(str(err.get("type", "")))
        details.setdefault(field, []).append(msg)
    return error(request, 422, "invalid", _("Please correct the errors below."), details)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error(
        request,
        401,
        "unauthenticated",
        _("A valid bearer token is required (careloop apitoken <username>)."),
    )


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error(request, 413, "payload_too_large", _("The request is too large."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ValueError):
        # django-ninja wraps a body that fails to parse (bad JSON, bad UTF-8) in HttpError(400).
        return error(
            request,
            422,
            "invalid",
            _("Please correct the errors below."),
            {"__all__": [_("The body is not valid JSON.")]},
        )
    return error(request, exc.status_code, "error", str(exc))


from careloop.alerts.api import router as alerts_router  # noqa: E402
from careloop.appointments.api import router as appointments_router  # noqa: E402
from careloop.audit.api import router as audit_router  # noqa: E402
from careloop.careplans.api import router as careplans_router  # noqa: E402
from careloop.messaging.api import router as messaging_router  # noqa: E402
from careloop.observations.api import router as observations_router  # noqa: E402
from careloop.patients.api import router as patients_router  # noqa: E402
from careloop.questionnaires.api import router as questionnaires_router  # noqa: E402
from careloop.reminders.api import router as reminders_router  # noqa: E402

api.add_router("/patients", patients_router)
api.add_router("/audit", audit_router)
# Care plans and reminders name their paths in full (/plans, /patients/{id}/..., /operations).
api.add_router("", careplans_router)
api.add_router("", reminders_router)
api.add_router("/appointments", appointments_router)
# The worklist and alerts name their paths in full (/worklist, /alerts, /patients/{id}/...).
api.add_router("", alerts_router)
# Readings: /observations, /observations/batch and /patients/{id}/observations|symptoms|...
api.add_router("", observations_router)
# The staff inbox: /messages, /messages/{id}, .../reply|assign|close.
api.add_router("", messaging_router)
# Questionnaires: /questionnaires, /questionnaires/assignments, .../patients/{id}/responses.
api.add_router("", questionnaires_router)


@api.get("/me", tags=["me"], summary="The token's user, role and departments")
def me(request: HttpRequest) -> dict[str, Any]:
    user = request.auth  # type: ignore[attr-defined]
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "organisation": user.organisation_id,
        "departments": list(user.memberships.values_list("department_id", flat=True)),
        "language": user.language,
    }

"""Errors that carry their meaning; each transport renders them in its own form."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class CareLoopError(Exception):
    """Base error: an HTTP status, a stable machine code, a human message and details."""

    status = 400
    code = "error"
    default_message: Any = _("The request could not be processed.")

    def __init__(self, message: Any = None, *, details: Any = None) -> None:
        self.message = message if message is not None else self.default_message
        self.details = details if details is not None else {}
        super().__init__(str(self.message))

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self.message), "details": _plain(self.details)}


def _plain(value: Any) -> Any:
    """Turn lazy translations and nested containers into JSON-ready values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class NotFound(CareLoopError):
    status = 404
    code = "not_found"
    default_message = _("Not found.")


class Forbidden(CareLoopError):
    status = 403
    code = "forbidden"
    default_message = _("You are not allowed to do this.")


class ValidationFailed(CareLoopError):
    """Input was rejected; details maps each field to its list of messages."""

    status = 422
    code = "invalid"
    default_message = _("Please correct the errors below.")


class Conflict(CareLoopError):
    status = 409
    code = "conflict"
    default_message = _("The request conflicts with the current state.")


class StaleVersion(Conflict):
    """The record changed since the client read it; details carry the current values."""

    code = "stale_version"
    default_message = _(
        "Someone else changed this record since you opened it. Review their changes and try again."
    )


class DuplicatePatient(Conflict):
    code = "duplicate_patient"
    default_message = _("This patient appears to be registered already.")


class PayloadTooLarge(CareLoopError):
    status = 413
    code = "payload_too_large"
    default_message = _("The request is too large.")


class Unauthenticated(CareLoopError):
    status = 401
    code = "unauthenticated"
    default_message = _("Authentication is required.")

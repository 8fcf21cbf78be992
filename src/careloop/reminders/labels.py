"""How reminders are described to people: status colours, reasons, channels, who confirmed.

Shared by the staff pages that show reminders (the plan calendar, the task list).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy

from careloop.patients import models as pm
from careloop.reminders import models as rm

# Why a reminder was skipped, cancelled, deferred or given up (codes of the dispatcher).
REASONS: dict[str, Any] = {
    "no_consent": gettext_lazy("no consent for any channel"),
    "quiet_hours": gettext_lazy("waiting for the end of quiet hours"),
    "daily_cap": gettext_lazy("daily limit of reminders reached"),
    "expired": gettext_lazy("too late to be useful"),
    "enrolment_ended": gettext_lazy("enrolment ended"),
    "patient_inactive": gettext_lazy("patient deceased or record merged"),
    "patient_deceased": gettext_lazy("patient deceased"),
    "no_address": gettext_lazy("no address for the channel"),
    "no_channel": gettext_lazy("no usable channel"),
    "undelivered": gettext_lazy("not delivered"),
    "retries_exhausted": gettext_lazy("gave up after repeated failures"),
    "invalid_address": gettext_lazy("invalid address"),
    "unsubscribed": gettext_lazy("the patient unsubscribed"),
    "quota": gettext_lazy("provider quota used up"),
    "rejected": gettext_lazy("rejected by the provider"),
    "configuration": gettext_lazy("channel not set up"),
}
# Colour of a status badge; the badge always carries its text too.
TONES = {
    rm.Status.SCHEDULED: "neutral",
    rm.Status.SENDING: "info",
    rm.Status.SENT: "info",
    rm.Status.DELIVERED: "info",
    rm.Status.ACKNOWLEDGED: "ok",
    rm.Status.FAILED: "warn",
    rm.Status.RETRYING: "warn",
    rm.Status.DEAD: "bad",
    rm.Status.CANCELLED: "muted",
    rm.Status.SKIPPED: "warn",
}
ATTEMPT_TONES = {
    rm.Attempt.Outcome.PENDING: "neutral",
    rm.Attempt.Outcome.ACCEPTED: "info",
    rm.Attempt.Outcome.DELIVERED: "ok",
    rm.Attempt.Outcome.TRANSIENT: "warn",
    rm.Attempt.Outcome.PERMANENT: "bad",
    rm.Attempt.Outcome.SUPERSEDED: "muted",
}
CHANNELS: dict[str, Any] = {
    **dict(pm.Channel.choices),
    "outbox": gettext_lazy("In-app message"),
}
ACK_SOURCES: dict[str, Any] = {
    "link": gettext_lazy("by the patient, from the message link"),
    "staff_call": gettext_lazy("by staff, after a phone call"),
    "portal": gettext_lazy("by the patient, in the portal"),
}

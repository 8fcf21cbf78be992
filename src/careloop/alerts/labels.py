"""Words for the codes of tasks and alerts (outcomes, reasons), in the user's language."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from careloop.reminders.labels import REASONS

# How a task ended (services.OUTCOMES), in words.
OUTCOME_LABELS: dict[str, Any] = {
    "reached": gettext_lazy("Reached the patient"),
    "agreed_to_visit": gettext_lazy("Agreed to come for a visit"),
    "remind_later": gettext_lazy("Asked to be called later"),
    "no_answer": gettext_lazy("No answer"),
    "already_visited": gettext_lazy("Has already visited"),
    "unavailable": gettext_lazy("Patient not available"),
    "wrong_number": gettext_lazy("Wrong number"),
    "changed_facility": gettext_lazy("Now cared for elsewhere"),
    "moved": gettext_lazy("Moved away"),
    "died": gettext_lazy("Patient has died"),
    "refused": gettext_lazy("Refused follow-up"),
    "done": gettext_lazy("Done"),
    "other": pgettext_lazy("outcome", "Other"),
}
# Why the dispatcher opened a task (its reason text), in words; anything else is shown as is.
REASON_LABELS: dict[str, Any] = {
    "no acknowledgement": gettext_lazy("the patient did not confirm the reminder"),
    "not delivered": gettext_lazy("the reminder was not delivered"),
}

# What was done about an alert (services.RESOLVE_OUTCOMES).
RESOLVE_LABELS: dict[str, Any] = {
    "contacted_patient": gettext_lazy("Contacted the patient"),
    "plan_adjusted": gettext_lazy("Care plan adjusted"),
    "medication_changed": gettext_lazy("Medication changed"),
    "visit_booked": gettext_lazy("Visit booked"),
    "referred": gettext_lazy("Referred"),
    "advice_given": gettext_lazy("Advice given"),
    "no_action_needed": gettext_lazy("No action needed"),
    "other": pgettext_lazy("outcome", "Other"),
    "auto_resolved": gettext_lazy("Resolved by a later reading"),
}
# Why an alert was dismissed (services.DISMISS_REASONS).
DISMISS_LABELS: dict[str, Any] = {
    "false_reading": gettext_lazy("Wrong or implausible reading"),
    "known_condition": gettext_lazy("Known and already managed"),
    "duplicate": gettext_lazy("Duplicate of another alert"),
    "not_relevant": gettext_lazy("Not clinically relevant"),
    "other": pgettext_lazy("reason", "Other"),
}
PRIORITY_TONES = {
    "stat": "tone-bad",
    "asap": "tone-bad",
    "urgent": "tone-warn",
    "routine": "tone-info",
}
STATUS_TONES = {
    "open": "tone-warn",
    "acknowledged": "tone-info",
    "resolved": "tone-ok",
    "dismissed": "tone-muted",
}


def reason_text(reason: str) -> str:
    """A task's reason for people: the dispatcher's phrases translated, other text unchanged."""
    if reason in REASON_LABELS:
        return str(REASON_LABELS[reason])
    if reason.startswith("dead letter: "):
        code = reason.removeprefix("dead letter: ")
        why = REASONS.get(code, code)
        return _("the reminder could not be sent: %(why)s") % {"why": why}
    if reason.startswith("high risk: "):
        return _("high-risk patient: %(why)s") % {"why": reason_text(reason[11:])}
    return reason


def closing_label(status: str, code: str) -> str:
    """How a closed alert ended, in words (its outcome or its dismissal reason)."""
    table = DISMISS_LABELS if status == "dismissed" else RESOLVE_LABELS
    return str(table.get(code, code))

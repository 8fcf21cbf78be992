"""What patients do in the portal, announced to whoever listens (points, streaks, metrics).

Features call ``emit`` after their own transaction has committed work; listeners register
with ``on`` in their AppConfig.ready. A failing listener is logged and never undoes the
patient's action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from careloop.kit.clock import utc_now

log = logging.getLogger(__name__)

# The kinds of event: a dose confirmed taken, a reading entered by the patient, a
# questionnaire completed, an education item read, a daily check-in.
DOSE_TAKEN = "dose_taken"
READING = "reading"
QUESTIONNAIRE = "questionnaire"
CONTENT_READ = "content_read"
CHECK_IN = "check_in"
KINDS = (DOSE_TAKEN, READING, QUESTIONNAIRE, CONTENT_READ, CHECK_IN)


@dataclass(frozen=True)
class PatientEvent:
    kind: str
    patient_id: int
    organisation_id: int
    ref: str  # what it was about, unique per kind and patient (e.g. "occurrence:42")
    at: datetime = field(default_factory=utc_now)


_listeners: list[Callable[[PatientEvent], None]] = []


def on(listener: Callable[[PatientEvent], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def emit(kind: str, *, patient_id: int, organisation_id: int, ref: str) -> None:
    """Announce an event once the surrounding transaction (if any) has committed."""
    if kind not in KINDS:
        raise ValueError(f"unknown patient event {kind!r}")
    event = PatientEvent(kind, patient_id, organisation_id, ref)
    transaction.on_commit(lambda: _deliver(event))


def _deliver(event: PatientEvent) -> None:
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:
            log.exception("portal event listener failed for %s", event.kind)

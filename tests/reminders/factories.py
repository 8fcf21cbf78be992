"""Occurrences and attempts built by hand, for tests of figures and operations."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from careloop.careplans import domain
from careloop.reminders import links
from careloop.reminders import models as rm

_seq = itertools.count(1)


def occurrence(patient: Any, due_at: datetime, status: str = "scheduled", **extra: Any) -> Any:
    """One reminder of a patient, in any state, due at a UTC instant."""
    n = next(_seq)
    tz = domain.zone(patient.time_zone)
    key = f"test:{patient.pk}:{n}"
    values: dict[str, Any] = {
        "organisation_id": patient.organisation_id,
        "patient": patient,
        "kind": "medication",
        "source_key": key,
        "local_due": f"{domain.local_of(due_at, tz):%Y-%m-%dT%H:%M}",
        "time_zone": tz.key,
        "due_at": due_at,
        "status": status,
        "wake_at": due_at if status in ("scheduled", "retrying") else None,
        "link_digest": links.digest(links.token_for(key)),
        "payload": {"title": "按时服药", "title_en": "Take your medicine"},
    }
    values.update(extra)
    return rm.Occurrence.objects.create(**values)


def attempt(
    occ: Any,
    channel: str,
    outcome: str,
    started_at: datetime,
    *,
    in_doubt: bool = False,
    error_code: str = "",
    detail: str = "",
) -> Any:
    n = next(_seq)
    return rm.Attempt.objects.create(
        occurrence=occ,
        organisation_id=occ.organisation_id,
        patient_id=occ.patient_id,
        dedupe_key=f"{occ.source_key}:{channel}:{n}",
        channel=channel,
        provider={"sms": "aliyun_sms", "voice": "aliyun_voice"}.get(channel, channel),
        address_hint="139****0000",
        outcome=outcome,
        error_code=error_code,
        detail=detail,
        in_doubt=in_doubt,
        started_at=started_at,
        finished_at=None if outcome == "pending" else started_at,
    )

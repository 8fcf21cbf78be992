"""Provider callbacks: delivery reports and patients' replies, applied once each."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from careloop.channels import models as chm
from careloop.channels import registry
from careloop.channels.port import InboundEvent
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import NotFound
from careloop.kit.identifiers import normalise_phone
from careloop.patients import models as pm
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

log = logging.getLogger("careloop.channels")

# Replies that mean "done / taken" and "not taken", in the languages patients write in.
YES = re.compile(r"^\s*(1|y|yes|ok|好|是|已服|已吃|吃了|已测|收到|确认)\s*[。.!！]?\s*$", re.I)
NO = re.compile(r"^\s*(2|n|no|否|没吃|未服|跳过)\s*[。.!！]?\s*$", re.I)
REPLY_WINDOW = timedelta(hours=24)


def channel_for(organisation_code: str, provider: str) -> chm.ChannelConfig:
    cfg = (
        chm.ChannelConfig.objects.select_related("organisation")
        .filter(organisation__code=organisation_code, provider=provider, enabled=True)
        .first()
    )
    if cfg is None:
        raise NotFound()
    return cfg


def _local_number(number: str) -> str:
    digits = number.strip()
    if digits.startswith("+86"):
        digits = digits[3:]
    return normalise_phone(digits) or digits


def apply_event(cfg: chm.ChannelConfig, event: InboundEvent, now: datetime | None = None) -> str:
    """Apply one callback event unless its provider event id was seen before."""
    try:
        with transaction.atomic():
            row = chm.InboundEvent.objects.create(
                organisation_id=cfg.organisation_id,
                provider=cfg.provider,
                event_id=event.provider_event_id[:120],
                kind=event.kind,
            )
            result = _apply(cfg, event, now or utc_now())
            row.result = result[:60]
            row.save(update_fields=["result"])
    except IntegrityError:
        return "duplicate"
    return result


def _attempt_for(cfg: chm.ChannelConfig, event: InboundEvent) -> rm.Attempt | None:
    qs = rm.Attempt.objects.filter(organisation_id=cfg.organisation_id, provider=cfg.provider)
    if event.dedupe_key:
        found = qs.filter(dedupe_key=event.dedupe_key).order_by("-id").first()
        if found is not None:
            return found
    if not event.provider_message_id:
        return None
    candidates = list(qs.filter(provider_message_id=event.provider_message_id)[:1000])
    if len(candidates) <= 1 or not event.recipient:
        return candidates[0] if candidates else None
    # A batch shares one provider id: pick the attempt whose patient has this number.
    index = blind_index("phone", _local_number(event.recipient))
    patients = set(
        pm.PatientPhone.objects.filter(number_index=index).values_list("patient_id", flat=True)
    )
    return next((a for a in candidates if a.patient_id in patients), None)


def _apply(cfg: chm.ChannelConfig, event: InboundEvent, now: datetime) -> str:
    if event.kind in ("delivered", "failed"):
        attempt = _attempt_for(cfg, event)
        if attempt is None:
            return "unknown_message"
        return reminder_services.apply_delivery(
            attempt.pk, delivered=event.kind == "delivered", detail=event.detail
        )
    if event.kind == "reply":
        return _reply(cfg, event, now)
    return "ignored"


def _reply(cfg: chm.ChannelConfig, event: InboundEvent, now: datetime) -> str:
    """An SMS reply acknowledges the patient's latest unanswered reminder of the last day."""
    if YES.match(event.text):
        intake, reason = "taken", ""
    elif NO.match(event.text):
        intake, reason = "skipped", "other"
    else:
        return "not_an_answer"
    index = blind_index("phone", _local_number(event.sender))
    patient_ids = list(
        pm.PatientPhone.objects.filter(organisation_id=cfg.organisation_id, number_index=index)
        .values_list("patient_id", flat=True)
        .distinct()
    )
    if len(patient_ids) != 1:
        return "unknown_sender" if not patient_ids else "ambiguous_sender"
    occ = (
        rm.Occurrence.objects.filter(
            patient_id=patient_ids[0],
            status__in=[rm.Status.SENT, rm.Status.DELIVERED, rm.Status.FAILED],
            due_at__gte=now - REPLY_WINDOW,
            due_at__lte=now + timedelta(minutes=5),
        )
        .order_by("-due_at")
        .first()
    )
    if occ is None:
        return "nothing_to_acknowledge"
    reminder_services.acknowledge(
        occ.pk,
        source="sms_reply",
        intake=intake if occ.kind == "medication" else "",
        reason=reason if occ.kind == "medication" else "",
        at=now,
    )
    return "acknowledged"


def handle_callback(
    organisation_code: str,
    provider: str,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes,
    query: dict[str, str],
    url: str,
    now: datetime | None = None,
) -> tuple[str, bytes, list[str]]:
    """Check and apply a provider callback; returns (content type, answer body, results)."""
    cfg = channel_for(organisation_code, provider)
    events = registry.parse_callback(provider, cfg.config, method, headers, body, query, url=url)
    results = [apply_event(cfg, e, now) for e in events]
    content_type, answer = registry.callback_ack(provider, method, query)
    return content_type, answer, results

"""Appending to the audit trail and verifying it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from careloop.audit.domain import GENESIS, HASHED_NAMES, chain_hash, hashed_fields
from careloop.audit.models import AuditChainHead, AuditEvent, Outcome
from careloop.kit.clock import utc_now

if TYPE_CHECKING:
    from careloop.accounts.actor import Actor

log = logging.getLogger(__name__)

SYSTEM_CHAIN = "system"


def chain_for(organisation_id: int | None) -> str:
    return f"org:{organisation_id}" if organisation_id else SYSTEM_CHAIN


def _locked_head(chain: str) -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(chain=chain).first()
    if head is not None:
        return head
    try:
        with transaction.atomic():
            AuditChainHead.objects.create(chain=chain)
    except IntegrityError:
        pass  # another writer created it first
    return AuditChainHead.objects.select_for_update().get(chain=chain)


def append(
    *,
    action: str,
    outcome: str = Outcome.SUCCESS,
    actor_id: int | None = None,
    actor_name: str = "",
    organisation_id: int | None = None,
    patient_id: int | None = None,
    object_type: str = "",
    object_id: Any = "",
    source: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to its organisation's chain, inside the caller's transaction if any."""
    return append_many(
        [
            Entry(
                action=action,
                outcome=outcome,
                actor_id=actor_id,
                actor_name=actor_name,
                organisation_id=organisation_id,
                patient_id=patient_id,
                object_type=object_type,
                object_id=object_id,
                source=source,
                detail=detail,
            )
        ]
    )[0]


@dataclass
class Entry:
    """One event to append (the arguments of ``append``)."""

    action: str
    outcome: str = Outcome.SUCCESS
    actor_id: int | None = None
    actor_name: str = ""
    organisation_id: int | None = None
    patient_id: int | None = None
    object_type: str = ""
    object_id: Any = ""
    source: str = ""
    detail: dict[str, Any] | None = None


def append_many(entries: list[Entry]) -> list[AuditEvent]:
    """Append events in order, each chain's head locked once for all of its events: the same
    rows, hashes and sequence numbers as appending them one by one. Returns the events in the
    order of ``entries``."""
    if not entries:
        return []
    at = utc_now().astimezone(UTC)
    made: dict[int, AuditEvent] = {}
    with transaction.atomic():
        by_chain: dict[str, list[tuple[int, Entry]]] = {}
        for n, entry in enumerate(entries):
            by_chain.setdefault(chain_for(entry.organisation_id), []).append((n, entry))
        for chain in sorted(by_chain):  # a fixed order: two writers never wait on each other
            head = _locked_head(chain)
            rows = []
            for n, entry in by_chain[chain]:
                fields = hashed_fields(
                    chain=chain,
                    seq=head.seq + 1,
                    at=at,
                    actor_id=entry.actor_id,
                    actor=entry.actor_name[:150],
                    organisation_id=entry.organisation_id,
                    action=entry.action,
                    patient_id=entry.patient_id,
                    object_type=entry.object_type,
                    object_id=str(entry.object_id or "")[:64],
                    outcome=str(entry.outcome),
                    source=entry.source[:64],
                    detail=entry.detail or {},
                )
                digest = chain_hash(head.hash, fields)
                # The row holds exactly what was hashed (the time as a datetime, not its text).
                made[n] = AuditEvent(**{**fields, "at": at}, prev_hash=head.hash, hash=digest)
                rows.append(made[n])
                head.seq = fields["seq"]
                head.hash = digest
            if len(rows) == 1:
                rows[0].save(force_insert=True)
            else:
                AuditEvent.objects.bulk_create(rows)
            head.save(update_fields=["seq", "hash"])
    return [made[n] for n in range(len(entries))]


def record(
    actor: Actor,
    action: str,
    *,
    outcome: str = Outcome.SUCCESS,
    patient_id: int | None = None,
    obj: Any = None,
    object_type: str = "",
    object_id: Any = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Audit what an authenticated actor did."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    merged = {"via": actor.channel, **(detail or {})}
    return append(
        action=action,
        outcome=outcome,
        actor_id=actor.user.pk,
        actor_name=actor.user.get_username(),
        organisation_id=actor.organisation_id,
        patient_id=patient_id,
        object_type=object_type,
        object_id=object_id,
        source=actor.source,
        detail=merged,
    )


def record_denied(actor: Actor, action: str, **kwargs: Any) -> None:
    """Audit a refused access in its own transaction, so that it survives the refusal."""
    try:
        with transaction.atomic():
            record(actor, action, outcome=Outcome.DENIED, **kwargs)
    except Exception:  # the refusal must still be answered even if auditing fails
        log.exception("could not audit a denied access")
        raise


@dataclass
class Verification:
    checked: int = 0
    chains: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(batch: int = 5000) -> Verification:
    """Walk every chain in order and report each broken link, edited row or missing row."""
    result = Verification()
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    for chain in sorted(chains):
        result.chains += 1
        expected_seq, prev = 1, GENESIS
        last_seq = 0
        qs = AuditEvent.objects.filter(chain=chain).order_by("seq")
        for event in qs.iterator(chunk_size=batch):
            result.checked += 1
            if event.seq != expected_seq:
                result.problems.append(f"{chain}: rows {expected_seq}..{event.seq - 1} are missing")
                prev = event.prev_hash
            if event.prev_hash != prev:
                result.problems.append(f"{chain} #{event.seq}: link to the previous row is broken")
            fields = hashed_fields(
                **{name: getattr(event, name) for name in HASHED_NAMES},
                at=event.at.astimezone(UTC),
            )
            if chain_hash(event.prev_hash, fields) != event.hash:
                result.problems.append(f"{chain} #{event.seq}: row was altered")
            prev = event.hash
            expected_seq = event.seq + 1
            last_seq = event.seq
        head = heads.get(chain)
        if head is None:
            result.problems.append(f"{chain}: chain head is missing")
        elif head.seq != last_seq or (last_seq and head.hash != prev):
            result.problems.append(
                f"{chain}: rows after #{last_seq} are missing (head is at #{head.seq})"
            )
    return result

"""Pure hashing of audit records: no database, no clock."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
# Columns of an audit row that enter its hash as they are ("at" enters as ISO text).
HASHED_NAMES = (
    "chain",
    "seq",
    "actor_id",
    "actor",
    "organisation_id",
    "action",
    "patient_id",
    "object_type",
    "object_id",
    "outcome",
    "source",
    "detail",
)


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(fields)).encode()).hexdigest()


def hashed_fields(
    *,
    chain: str,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor: str,
    organisation_id: int | None,
    action: str,
    patient_id: int | None,
    object_type: str,
    object_id: str,
    outcome: str,
    source: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "chain": chain,
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor": actor,
        "organisation_id": organisation_id,
        "action": action,
        "patient_id": patient_id,
        "object_type": object_type,
        "object_id": object_id,
        "outcome": outcome,
        "source": source,
        "detail": detail,
    }

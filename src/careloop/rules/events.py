"""What the engine reads (Event) and what it says (Fire, Clear)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event kinds the engine knows, with the canonical unit of `value` (UCUM where one exists).
EVENT_KINDS = {
    "bp": "mm[Hg] (systolic; value2 diastolic)",
    "glucose": "mmol/L",
    "hba1c": "%",
    "heart_rate": "/min",
    "weight": "kg",
    "spo2": "%",
    "temperature": "Cel",
    "steps": "count per day",
    "sleep": "h",
    "dose": "1 taken, 0 not taken",
    "adr": "severity 1 mild, 2 moderate, 3 severe, 4 life-threatening",
    "questionnaire": "total score",
    "symptom": "severity 0..10",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One reading, intake or report of one patient, already in canonical units."""

    patient_id: int
    kind: str
    at: int  # effective time, epoch seconds UTC
    day: int  # local calendar date ordinal (date.toordinal()) in the patient's zone
    hour: int  # local hour 0..23
    value: float
    value2: float | None = None  # bp diastolic
    context: str = ""  # glucose timing, dose outcome, questionnaire instrument, symptom code
    items: tuple[float, ...] = ()  # questionnaire item scores in order
    ref: int = 0  # id of the stored row, copied into Fire.ref
    source: str = ""  # patient | staff | device | his for readings; "" otherwise


@dataclass(frozen=True, slots=True)
class Fire:
    """A rule fired for a patient: raise an alert (or a task) unless `key` was seen before."""

    rule: str
    patient_id: int
    at: int  # effective time of the triggering event (the sweep's `now` for absence)
    key: str  # deterministic and unique per fire; the caller's idempotency key
    severity: str
    priority: str  # FHIR Task.priority
    route: str
    sla: int  # seconds
    action: str  # "alert" or "task"
    stage: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    ref: int = 0


@dataclass(frozen=True, slots=True)
class Clear:
    """What a rule fired about is over (auto-resolve): close its open alerts for the patient."""

    rule: str
    patient_id: int
    at: int
    stage: str = ""

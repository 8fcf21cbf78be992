"""Builders for rule-engine tests: events at patient-local wall-clock times, one-rule sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from careloop.rules import Clear, Event, Fire, RuleSet

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600
DAY = 86400


def local(
    kind: str,
    when: datetime,
    value: float,
    value2: float | None = None,
    *,
    tz: ZoneInfo = SHANGHAI,
    patient: int = 1,
    context: str = "",
    items: tuple[float, ...] = (),
    ref: int = 0,
    source: str = "staff",
) -> Event:
    """An event at local wall-clock `when` (naive or aware) in `tz`, as the caller builds it."""
    aware = when if when.tzinfo else when.replace(tzinfo=tz)
    aware = aware.astimezone(tz)
    return Event(
        patient_id=patient,
        kind=kind,
        at=int(aware.timestamp()),
        day=aware.date().toordinal(),
        hour=aware.hour,
        value=value,
        value2=value2,
        context=context,
        items=items,
        ref=ref,
        source=source,
    )


def rules(*definitions: dict[str, Any]) -> RuleSet:
    return RuleSet.compile(definitions)


def rule(**fields: Any) -> RuleSet:
    """A rule set of one rule with defaults for the fields a test does not care about."""
    definition: dict[str, Any] = {
        "code": "r",
        "severity": "high",
        "text": {"en": "fired", "zh-hans": "触发"},
    }
    definition.update(fields)
    return RuleSet.compile([definition])


def fires(outputs: list[Fire | Clear]) -> list[Fire]:
    return [o for o in outputs if isinstance(o, Fire)]


def clears(outputs: list[Fire | Clear]) -> list[Clear]:
    return [o for o in outputs if isinstance(o, Clear)]


def run(ruleset: RuleSet, events: list[Event], personal: Any = None) -> list[Fire | Clear]:
    return ruleset.replay(events, personal)[1]

"""Pure scheduling logic: plan activities → local wall-clock times → UTC instants.

Nothing here touches the database; time and facts come in as arguments.

Daylight-saving policy (documented in docs/reminders.md): a recurrence keeps its local wall-clock
time. A time that falls in a spring-forward gap (e.g. 02:30 on the day New York skips from 02:00
to 03:00) is sent once, shifted forward by the length of the gap (03:30 local). A time that occurs
twice on a fall-back day (01:30 in New York) is sent once, at its first occurrence (the
daylight-time instant). Each occurrence is keyed by its local date and time, so a day can never
produce two.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

# Local dosing times per prescription frequency (overridable per patient). qn avoids the
# default quiet hours (from 21:00) so a bedtime dose is not deferred to the next morning.
DOSE_TIMES: dict[str, tuple[str, ...]] = {
    "qd": ("08:00",),
    "bid": ("08:00", "20:00"),
    "tid": ("08:00", "14:00", "20:00"),
    "qid": ("08:00", "12:00", "16:00", "20:00"),
    "qn": ("20:30",),
    "qod": ("08:00",),
    "qw": ("08:00",),
}
# prn (as needed) and st (at once) have no schedule to remind of.
UNSCHEDULED_FREQUENCIES = frozenset({"prn", "st", "ud"})
ANCHORS = ("enrolment", "discharge", "last_visit")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_PER_ACTIVITY_DAY = 12


class ScheduleError(ValueError):
    """A schedule that cannot be expanded; the message says which part and why."""


def parse_time(value: str) -> time:
    match = _TIME.match(str(value).strip())
    if not match:
        raise ScheduleError(f"{value!r} is not a local time HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone by name. Cached: ZoneInfo keeps only a few zones alive, and a batch of
    reminders spans many, so an uncached lookup re-reads the zone database each time."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{name!r} is not an IANA time zone") from exc


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant of a local wall-clock time, by the policy in the module docstring."""
    if local.tzinfo is not None:
        raise ScheduleError("local times are naive wall-clock times")
    first = local.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    # In a gap, fold=0 reads the wall time with the offset before the change, which is exactly
    # "shifted forward by the gap". In a fold, fold=0 is the first (earlier) instant.
    return instant


def is_gap(local: datetime, tz: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local


def local_of(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


@dataclass(frozen=True)
class Planned:
    """One planned reminder: its local wall time, a key part unique within the activity, data."""

    local: datetime
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prescription:
    id: int
    name: str
    dose: str
    unit: str
    frequency: str
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Facts:
    """What applicability and anchors need to know about a patient."""

    age: int
    sex: str = "unknown"
    icd10_codes: frozenset[str] = frozenset()
    stage: str = ""
    discharge: date | None = None
    last_visit: date | None = None


def validate_schedule(schedule: Mapping[str, Any], *, kind: str) -> None:
    """Refuse a schedule that cannot be expanded; message names the field."""
    if not isinstance(schedule, Mapping):
        raise ScheduleError("schedule must be an object")
    if schedule.get("prescriptions"):
        if kind != "medication":
            raise ScheduleError("only medication activities follow prescriptions")
        return
    if "rrule" in schedule:
        rule = str(schedule["rrule"])
        if "DTSTART" in rule.upper() or "\n" in rule:
            raise ScheduleError("rrule: give the RRULE part only (no DTSTART)")
        try:
            rrulestr(rule, dtstart=datetime(2026, 1, 1))  # noqa: DTZ001 - wall-clock maths
        except (ValueError, TypeError) as exc:
            raise ScheduleError(f"rrule: {exc}") from exc
        for t in schedule.get("times", []) or []:
            parse_time(t)
        return
    if "offsets_days" in schedule:
        offsets = schedule["offsets_days"]
        if not isinstance(offsets, list) or not offsets:
            raise ScheduleError("offsets_days must be a non-empty list of days")
        for value in offsets:
            if not isinstance(value, int) or not -365 <= value <= 3650:
                raise ScheduleError(f"offsets_days: {value!r} is not a whole number of days")
        parse_time(schedule.get("time", "09:00"))
        if schedule.get("anchor", "enrolment") not in ANCHORS:
            raise ScheduleError(f"anchor must be one of {', '.join(ANCHORS)}")
        return
    raise ScheduleError("schedule needs rrule, offsets_days or prescriptions")


def applies(applicability: Mapping[str, Any], facts: Facts) -> bool:
    """Whether an activity (or a template) applies to a patient."""
    if not applicability:
        return True
    low, high = applicability.get("min_age"), applicability.get("max_age")
    if low is not None and facts.age < int(low):
        return False
    if high is not None and facts.age > int(high):
        return False
    sexes = applicability.get("sex")
    if sexes and facts.sex not in sexes:
        return False
    stages = applicability.get("stages")
    if stages and facts.stage not in stages:
        return False
    prefixes = applicability.get("conditions")
    if prefixes and not any(code_matches(c, prefixes) for c in facts.icd10_codes):
        return False
    return True


def code_matches(code: str, prefixes: Iterable[str]) -> bool:
    """ICD-10 prefix match on the code without its dot: E11 matches E11.9 and E119."""
    plain = code.replace(".", "").upper()
    return any(plain.startswith(p.replace(".", "").upper()) for p in prefixes if p)


def _window_days(start: datetime, end: datetime) -> Iterable[date]:
    day = start.date()
    while day <= end.date():
        yield day
        day += timedelta(days=1)


def _dose_days(freq: str, day: date, origin: date) -> bool:
    if freq == "qod":
        return (day - origin).days % 2 == 0
    if freq == "qw":
        return (day - origin).days % 7 == 0
    return True


def expand_prescriptions(
    prescriptions: Sequence[Prescription],
    *,
    start: datetime,
    end: datetime,
    dose_times: Mapping[str, Sequence[str]],
    origin: date,
) -> list[Planned]:
    """Dose reminders for active prescriptions in [start, end) local wall time."""
    planned = []
    for rx in prescriptions:
        if rx.frequency in UNSCHEDULED_FREQUENCIES:
            continue
        times = [
            parse_time(t) for t in dose_times.get(rx.frequency, DOSE_TIMES.get(rx.frequency, ()))
        ]
        first = rx.start or origin
        for day in _window_days(start, end):
            if day < first or (rx.end and day > rx.end):
                continue
            if not _dose_days(rx.frequency, day, first):
                continue
            for t in times[:MAX_PER_ACTIVITY_DAY]:
                local = datetime.combine(day, t)
                if start <= local < end:
                    planned.append(
                        Planned(
                            local,
                            f"rx{rx.id}:{local:%Y-%m-%dT%H:%M}",
                            {
                                "medication_id": rx.id,
                                "medication": rx.name,
                                "dose": f"{rx.dose} {rx.unit}".strip(),
                            },
                        )
                    )
    return planned


def expand(
    schedule: Mapping[str, Any],
    *,
    start: datetime,
    end: datetime,
    enrolled_on: date,
    anchors: Mapping[str, date | None],
) -> list[Planned]:
    """Local wall-clock times of a (non-prescription) schedule in [start, end)."""
    if "offsets_days" in schedule:
        anchor_name = schedule.get("anchor", "enrolment")
        anchor = enrolled_on if anchor_name == "enrolment" else anchors.get(anchor_name)
        if anchor is None:
            return []
        at = parse_time(schedule.get("time", "09:00"))
        out = []
        for offset in schedule["offsets_days"]:
            local = datetime.combine(anchor + timedelta(days=int(offset)), at)
            if start <= local < end:
                out.append(Planned(local, f"d{int(offset):+d}:{local:%Y-%m-%dT%H:%M}"))
        return out
    if "rrule" in schedule:
        origin_name = schedule.get("anchor", "enrolment")
        origin = (anchors.get(origin_name) if origin_name != "enrolment" else None) or enrolled_on
        origin += timedelta(days=int(schedule.get("start_after_days", 0)))
        times = [parse_time(t) for t in schedule.get("times", []) or []]
        rule = rrulestr(str(schedule["rrule"]), dtstart=datetime.combine(origin, time(0, 0)))
        out = []
        # Dates come from the rule; times from BYHOUR/BYMINUTE in the rule or from "times".
        for when in rule.between(start - timedelta(days=1), end, inc=True):
            moments = [datetime.combine(when.date(), t) for t in times] if times else [when]
            for local in moments[:MAX_PER_ACTIVITY_DAY]:
                if start <= local < end:
                    out.append(Planned(local, f"{local:%Y-%m-%dT%H:%M}"))
        unique = {p.key: p for p in out}
        return sorted(unique.values(), key=lambda p: p.local)
    return []


def in_quiet_hours(local: time, quiet_start: time | None, quiet_end: time | None) -> bool:
    """Whether a local time is inside [start, end), which may wrap past midnight."""
    if quiet_start is None or quiet_end is None or quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:
        return quiet_start <= local < quiet_end
    return local >= quiet_start or local < quiet_end


def next_allowed(
    instant: datetime, tz: ZoneInfo, quiet_start: time | None, quiet_end: time | None
) -> datetime:
    """The instant itself if outside quiet hours, else the first minute after they end."""
    local = local_of(instant, tz)
    if quiet_end is None or not in_quiet_hours(local.time(), quiet_start, quiet_end):
        return instant
    day = local.date()
    if quiet_start is not None and quiet_start > quiet_end and local.time() >= quiet_start:
        day += timedelta(days=1)
    return to_utc(datetime.combine(day, quiet_end), tz)


def end_of_local_day(instant: datetime, tz: ZoneInfo, at: time) -> datetime:
    """Today's ``at`` in the patient's zone, or tomorrow's if it has already passed."""
    local = local_of(instant, tz)
    target = to_utc(datetime.combine(local.date(), at), tz)
    if target <= instant:
        target = to_utc(datetime.combine(local.date() + timedelta(days=1), at), tz)
    return target


_DURATION = re.compile(r"^(\d+)\s*(m|h|d)$")


def parse_delay(value: str) -> timedelta:
    match = _DURATION.match(str(value).strip().lower())
    if not match:
        raise ScheduleError(f"{value!r} is not a delay such as 30m, 2h or 1d")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
    }[unit]


ESCALATION_TASKS = ("call_patient", "family_call", "review", "fix_contact")
ESCALATION_ROLES = ("nurse", "doctor", "family_doctor")


def validate_escalation(ladder: Any, channels: Sequence[str]) -> None:
    if not isinstance(ladder, list):
        raise ScheduleError("escalation must be a list of steps")
    for n, step in enumerate(ladder, start=1):
        if not isinstance(step, Mapping):
            raise ScheduleError(f"escalation step {n} must be an object")
        if step.get("on") == "dead":
            if step.get("task") not in ESCALATION_TASKS:
                raise ScheduleError(f"escalation step {n}: task must be one of {ESCALATION_TASKS}")
            continue
        if ("after" in step) == (step.get("at") == "end_of_day"):
            raise ScheduleError(
                f"escalation step {n}: give either after (e.g. 2h) or at: end_of_day"
            )
        if "after" in step:
            try:
                parse_delay(step["after"])
            except ScheduleError as exc:
                raise ScheduleError(f"escalation step {n}: {exc}") from exc
        if not step.get("channel") and not step.get("task"):
            raise ScheduleError(f"escalation step {n}: give a channel or a task")
        if step.get("channel") and step["channel"] not in channels:
            raise ScheduleError(f"escalation step {n}: unknown channel {step['channel']!r}")
        if step.get("task") and step["task"] not in ESCALATION_TASKS:
            raise ScheduleError(f"escalation step {n}: task must be one of {ESCALATION_TASKS}")
        if step.get("to", "nurse") not in ESCALATION_ROLES:
            raise ScheduleError(f"escalation step {n}: to must be one of {ESCALATION_ROLES}")


def ladder_steps(ladder: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The timed steps of a ladder (dead-letter handlers excluded), in order."""
    return [s for s in ladder if s.get("on") != "dead"]


def dead_letter_task(ladder: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((s for s in ladder if s.get("on") == "dead"), None)


def next_step_at(
    step: Mapping[str, Any], *, sent_at: datetime, tz: ZoneInfo, end_of_day: time
) -> datetime:
    if step.get("at") == "end_of_day":
        return end_of_local_day(sent_at, tz, end_of_day)
    return sent_at + parse_delay(step["after"])


def backoff(tries: int, *, base: float = 30.0, cap: float = 3600.0, rand: float = 1.0) -> timedelta:
    """Exponential backoff with jitter: between half and all of base·2^(tries−1), capped."""
    ceiling = min(cap, base * (2 ** max(0, tries - 1)))
    return timedelta(seconds=ceiling * (0.5 + 0.5 * rand))

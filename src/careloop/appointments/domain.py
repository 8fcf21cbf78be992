"""Pure logic of appointments: weekly patterns → slots, reminder times, the queue's front.

Nothing here touches the database; time and facts come in as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _

WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)  # ISO: 1 = Monday
MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 240
MAX_CAPACITY = 200
MAX_SESSIONS = 6
_SESSION = re.compile(
    r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*[-–—~～至]\s*([01]?\d|2[0-4]):([0-5]\d)\s*$"
)

# Reminders of a booked appointment (patient-local wall-clock times).
DAY_BEFORE_AT = time(18, 0)
MORNING_OF_AT = time(7, 30)
MORNING_LEAD = timedelta(hours=2)


class PatternError(ValueError):
    """A weekly pattern that cannot be used; ``field`` names the input at fault."""

    def __init__(self, field: str, message: object) -> None:
        super().__init__(str(message))
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Session:
    start: time
    end: time

    def as_dict(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


@dataclass(frozen=True)
class Pattern:
    weekdays: frozenset[int]
    sessions: tuple[Session, ...]
    slot_minutes: int
    capacity: int


@dataclass(frozen=True)
class PlannedSlot:
    local_date: date
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC


def _clock(hours: str, minutes: str) -> time:
    h = int(hours)
    return time(23, 59) if h == 24 else time(h, int(minutes))


def parse_sessions(text: str) -> tuple[Session, ...]:
    """'08:00-11:30, 13:30-16:30' → sessions; refuses unreadable, empty or overlapping ones."""
    parts = [p for p in re.split(r"[,，;；\n]+", text or "") if p.strip()]
    if not parts:
        raise PatternError("sessions", _("Enter at least one session, e.g. 08:00-11:30."))
    if len(parts) > MAX_SESSIONS:
        raise PatternError("sessions", _("At most 6 sessions a day."))
    sessions = []
    for part in parts:
        match = _SESSION.match(part)
        if not match:
            raise PatternError("sessions", _("Write each session as start-end, e.g. 08:00-11:30."))
        start = _clock(match.group(1), match.group(2))
        end = _clock(match.group(3), match.group(4))
        if end <= start:
            raise PatternError("sessions", _("A session must end after it starts."))
        sessions.append(Session(start, end))
    sessions.sort(key=lambda s: s.start)
    for earlier, later in zip(sessions, sessions[1:], strict=False):
        if later.start < earlier.end:
            raise PatternError("sessions", _("Sessions must not overlap."))
    return tuple(sessions)


def sessions_text(sessions: Iterable[dict[str, str]]) -> str:
    return ", ".join(f"{s['start']}-{s['end']}" for s in sessions)


def pattern_of(
    weekdays: Iterable[int], sessions: Sequence[Session], slot_minutes: int, capacity: int
) -> Pattern:
    """A checked pattern: weekdays 1..7, sessions at least one slot long, sane sizes."""
    days = frozenset(int(d) for d in weekdays)
    if not days or not days <= set(WEEKDAYS):
        raise PatternError("weekdays", _("Choose at least one weekday."))
    if not MIN_SLOT_MINUTES <= slot_minutes <= MAX_SLOT_MINUTES:
        raise PatternError("slot_minutes", _("A slot lasts between 5 and 240 minutes."))
    if not 1 <= capacity <= MAX_CAPACITY:
        raise PatternError("capacity", _("A slot has between 1 and 200 places."))
    for s in sessions:
        length = (s.end.hour * 60 + s.end.minute) - (s.start.hour * 60 + s.start.minute)
        if length < slot_minutes:
            raise PatternError("sessions", _("Each session must be at least one slot long."))
    return Pattern(days, tuple(sessions), slot_minutes, capacity)


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time (a time in a DST gap moves forward by the gap)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def plan_slots(pattern: Pattern, first: date, last: date, tz: ZoneInfo) -> list[PlannedSlot]:
    """Every slot of the pattern from ``first`` to ``last`` inclusive, in order."""
    out: list[PlannedSlot] = []
    step = timedelta(minutes=pattern.slot_minutes)
    day = first
    while day <= last:
        if day.isoweekday() in pattern.weekdays:
            for session in pattern.sessions:
                start = datetime.combine(day, session.start)
                end = datetime.combine(day, session.end)
                while start + step <= end:
                    out.append(
                        PlannedSlot(
                            local_date=day,
                            starts_at=local_instant(day, start.time(), tz),
                            ends_at=local_instant(day, (start + step).time(), tz),
                        )
                    )
                    start += step
        day += timedelta(days=1)
    return out


def reminder_times(starts_at: datetime, tz: ZoneInfo, now: datetime) -> list[tuple[str, datetime]]:
    """When to remind of an appointment: 18:00 the evening before (patient-local), and 07:30 on
    the day, or two hours before when the slot starts before 09:30. Moments already past are
    left out."""
    local_day = starts_at.astimezone(tz).date()
    day_before = local_instant(local_day - timedelta(days=1), DAY_BEFORE_AT, tz)
    morning = min(local_instant(local_day, MORNING_OF_AT, tz), starts_at - MORNING_LEAD)
    return [
        (label, due)
        for label, due in (("day_before", day_before), ("morning", morning))
        if due > now
    ]


def near_turn(waiting: Sequence[int], positions: int) -> list[int]:
    """The waiting patients whose turn is near: at most ``positions`` places from the front."""
    return list(waiting[: max(0, positions)])


def days_overdue(scheduled: date, today: date) -> int:
    return (today - scheduled).days


def sessions_from(data: Iterable[dict[str, str]]) -> tuple[Session, ...]:
    """Stored sessions ({"start": "08:00", "end": "11:30"}) as Session values."""
    return tuple(
        Session(time.fromisoformat(s["start"]), time.fromisoformat(s["end"])) for s in data
    )


# --- high-priority overdue (metrics.md, "Overdue and return to care") -------------------------

HIGH_PRIORITY_MIN_DAYS = 30  # overdue less than this is never high priority
BP_CRISIS = (180, 110)  # mm[Hg], systolic or diastolic at or above
BP_HIGH_AFTER_EVENT = (140, 90)  # the same, after a heart attack or stroke
# The highest blood-sugar band (Simple's overdue-list bands; the same cut-offs as the ADA
# Standards of Care's hyperglycaemic-crisis work-up): fasting ≥ 200 mg/dL (11.1 mmol/L), random
# or post-prandial ≥ 300 mg/dL (16.7 mmol/L), HbA1c ≥ 9.0 %. Compared in mg/dL so that a
# reading sent in mg/dL is judged on the number the device showed.
GLUCOSE_TOP_MG_DL = {"fasting": 200.0, "random": 300.0, "postprandial": 300.0}
HBA1C_TOP_PERCENT = 9.0
# Prior heart attack or stroke, by ICD-10 category (WHO ICD-10, chapter IX "Diseases of the
# circulatory system"): I21 acute and I22 subsequent myocardial infarction, I25.2 old myocardial
# infarction; I60–I64 stroke (subarachnoid, intracerebral and other non-traumatic intracranial
# haemorrhage, cerebral infarction, stroke not specified); I69 sequelae of cerebrovascular
# disease. Chinese national extensions (GB/T 14396, e.g. I21.901) share these prefixes.
CARDIOVASCULAR_EVENT_CODES = ("I21", "I22", "I252", "I60", "I61", "I62", "I63", "I64", "I69")


def is_cardiovascular_event(icd10_code: str) -> bool:
    """Whether an ICD-10 code records a heart attack or a stroke."""
    code = icd10_code.strip().upper().replace(".", "")
    return code.startswith(CARDIOVASCULAR_EVENT_CODES)


def high_priority(
    *,
    days_overdue: int,
    bp: tuple[float, float | None] | None = None,
    sugar: tuple[str, float] | None = None,
    prior_event: bool = False,
) -> bool:
    """Whether an overdue patient is high priority (metrics.md).

    ``bp`` is the last blood pressure (systolic, diastolic); ``sugar`` the last blood-sugar
    measure as (kind, value): "fasting" / "random" / "postprandial" in mg/dL or "hba1c" in %
    (a glucose without a fasting or meal context is judged as random: the higher cut-off, so
    an unlabelled after-meal reading raises no false flag).
    """
    if days_overdue < HIGH_PRIORITY_MIN_DAYS:
        return False
    if bp is not None:
        systolic, diastolic = bp[0], bp[1] if bp[1] is not None else 0.0
        if systolic >= BP_CRISIS[0] or diastolic >= BP_CRISIS[1]:
            return True
        if prior_event and (
            systolic >= BP_HIGH_AFTER_EVENT[0] or diastolic >= BP_HIGH_AFTER_EVENT[1]
        ):
            return True
    if sugar is not None:
        kind, value = sugar
        if kind == "hba1c":
            return value >= HBA1C_TOP_PERCENT
        return value >= GLUCOSE_TOP_MG_DL.get(kind, GLUCOSE_TOP_MG_DL["random"])
    return False

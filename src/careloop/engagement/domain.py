"""Pure rules of engagement: points, caps, streaks, badges and the personal-data check.

Nothing here touches the database; services.py applies these rules inside its transactions.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext_lazy as _

from careloop.kit.identifiers import normalise_phone, resident_id_problem
from careloop.portal import events

# --- points -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Points for one kind of event, and the most points that kind can earn in one local day."""

    points: int
    daily_cap: int


# Used for an organisation that has not set its own rule for a kind.
DEFAULT_RULES: dict[str, Rule] = {
    events.DOSE_TAKEN: Rule(points=2, daily_cap=12),
    events.READING: Rule(points=3, daily_cap=9),
    events.QUESTIONNAIRE: Rule(points=10, daily_cap=20),
    events.CONTENT_READ: Rule(points=1, daily_cap=5),
    events.CHECK_IN: Rule(points=1, daily_cap=1),
}

EVENT_LABELS = {
    events.DOSE_TAKEN: _("Dose taken"),
    events.READING: _("Reading entered"),
    events.QUESTIONNAIRE: _("Questionnaire completed"),
    events.CONTENT_READ: _("Article read"),
    events.CHECK_IN: _("Daily check-in"),
}

# Ledger entries that are not patient events.
STREAK_BONUS = "streak_bonus"
REDEMPTION = "redemption"
REFUND = "refund"
LEDGER_LABELS = {
    **EVENT_LABELS,
    STREAK_BONUS: _("Streak bonus"),
    REDEMPTION: _("Reward redeemed"),
    REFUND: _("Redemption cancelled, points returned"),
}

# Consecutive check-in days that pay a one-off bonus within one unbroken streak.
STREAK_BONUSES: dict[int, int] = {7: 10, 30: 50}


def award(rule: Rule, earned_today: int) -> int:
    """Points for one more event when ``earned_today`` points of its kind were paid today."""
    if rule.points <= 0:
        return 0
    if rule.daily_cap <= 0:
        return rule.points
    return max(0, min(rule.points, rule.daily_cap - earned_today))


# --- days and streaks -------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def local_day(moment: datetime, time_zone: str) -> date:
    """The calendar day a moment falls on where the patient lives."""
    return moment.astimezone(zone(time_zone)).date()


@dataclass(frozen=True)
class Streak:
    current: int
    longest: int
    started: date | None  # first day of the current streak


def streak(days: Iterable[date], today: date) -> Streak:
    """Current and longest run of consecutive check-in days.

    The current streak is alive while the last check-in was today or yesterday (today's may
    still come); a missed day ends it.
    """
    ordered = sorted(set(days))
    longest = 0
    run = 0
    previous: date | None = None
    start: date | None = None
    for day in ordered:
        if previous is not None and day - previous == timedelta(days=1):
            run += 1
        else:
            run = 1
            start = day
        longest = max(longest, run)
        previous = day
    if previous is None or today - previous > timedelta(days=1):
        return Streak(current=0, longest=longest, started=None)
    return Streak(current=run, longest=longest, started=start)


def streak_bonus_due(current: Streak) -> list[tuple[int, int, str]]:
    """(length, points, ledger ref) of every bonus the current streak has earned."""
    if current.started is None:
        return []
    return [
        (length, points, f"streak{length}:{current.started.isoformat()}")
        for length, points in sorted(STREAK_BONUSES.items())
        if current.current >= length
    ]


# --- badges -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    code: str
    icon: str
    name: object
    description: object
    measure: str  # an event kind (count of its events) or "streak" (longest streak)
    threshold: int


BADGES: tuple[Badge, ...] = (
    Badge("first-reading", "📈", _("First reading"), _("You entered your first reading."),
          events.READING, 1),
    Badge("first-check-in", "✅", _("First check-in"), _("You checked in for the first time."),
          events.CHECK_IN, 1),
    Badge("streak-7", "🔥", _("7-day streak"), _("You checked in 7 days in a row."),
          "streak", 7),
    Badge("streak-30", "🏆", _("30-day streak"), _("You checked in 30 days in a row."),
          "streak", 30),
    Badge("questionnaires-10", "📝", _("10 questionnaires"), _("You answered 10 questionnaires."),
          events.QUESTIONNAIRE, 10),
    Badge("doses-50", "💊", _("50 doses taken"), _("You confirmed 50 doses."),
          events.DOSE_TAKEN, 50),
    Badge("reader-10", "📚", _("Keen reader"), _("You read 10 articles."),
          events.CONTENT_READ, 10),
)  # fmt: skip
BADGES_BY_CODE = {b.code: b for b in BADGES}


def badges_earned(counts: dict[str, int], longest_streak: int) -> list[str]:
    """Codes of every badge the figures qualify for."""
    earned = []
    for badge in BADGES:
        value = longest_streak if badge.measure == "streak" else counts.get(badge.measure, 0)
        if value >= badge.threshold:
            earned.append(badge.code)
    return earned


# --- redemption codes -------------------------------------------------------------------------

_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


def redemption_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


# --- personal data in community text ----------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+\s*(?:@|＠)\s*[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Runs of digits with the separators people type inside phone and ID numbers.
_DIGIT_RUN = re.compile(r"(?:\+?\d[\d\s\-–—()（）.]{5,}\d[xX]?)")
_FULLWIDTH = str.maketrans("０１２３４５６７８９＋－Ｘｘ", "0123456789+-Xx")


def personal_data_problems(text: str) -> list[str]:
    """Which kinds of personal data the text seems to contain: "phone", "national_id", "email"."""
    found: list[str] = []
    plain = (text or "").translate(_FULLWIDTH)
    if _EMAIL.search(plain):
        found.append("email")
    for match in _DIGIT_RUN.finditer(plain):
        raw = match.group(0)
        digits = re.sub(r"[^\dxX+]", "", raw).upper()
        bare = digits.lstrip("+")
        if (len(bare) == 18 and resident_id_problem(bare) is None) or (
            len(bare) == 18 and bare[:17].isdigit()
        ):
            if "national_id" not in found:
                found.append("national_id")
            continue
        if len(bare) == 15 and bare.isdigit():  # first-generation ID numbers
            if "national_id" not in found:
                found.append("national_id")
            continue
        if normalise_phone(raw.strip()) is not None or _looks_like_phone(bare):
            if "phone" not in found:
                found.append("phone")
    return found


def _looks_like_phone(digits: str) -> bool:
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return bool(re.fullmatch(r"1[3-9]\d{9}", digits) or re.fullmatch(r"0\d{9,11}", digits))


PERSONAL_DATA_LABELS = {
    "phone": _("a phone number"),
    "national_id": _("an ID card number"),
    "email": _("an e-mail address"),
}

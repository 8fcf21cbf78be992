"""The pure rules of appointments: patterns, slots, reminder times, the front of the queue."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from careloop.appointments import domain

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


class TestSessions:
    def test_sessions_are_read_in_order_with_chinese_or_latin_separators(self) -> None:
        sessions = domain.parse_sessions("13:30-16:30，8:00～11:30")
        assert [(s.start, s.end) for s in sessions] == [
            (time(8, 0), time(11, 30)),
            (time(13, 30), time(16, 30)),
        ]

    @pytest.mark.parametrize(
        "text",
        ["", "8-11", "11:00-08:00", "08:00-12:00, 11:00-14:00", "25:00-26:00"],
    )
    def test_unusable_sessions_are_refused_and_named(self, text: str) -> None:
        with pytest.raises(domain.PatternError) as err:
            domain.parse_sessions(text)
        assert err.value.field == "sessions"

    def test_pattern_limits(self) -> None:
        morning = domain.parse_sessions("08:00-08:20")
        with pytest.raises(domain.PatternError) as err:
            domain.pattern_of([1], morning, 30, 1)
        assert err.value.field == "sessions"  # shorter than one slot
        with pytest.raises(domain.PatternError) as err:
            domain.pattern_of([], morning, 10, 1)
        assert err.value.field == "weekdays"
        with pytest.raises(domain.PatternError) as err:
            domain.pattern_of([8], morning, 10, 1)
        assert err.value.field == "weekdays"
        with pytest.raises(domain.PatternError) as err:
            domain.pattern_of([1], morning, 10, 0)
        assert err.value.field == "capacity"
        with pytest.raises(domain.PatternError) as err:
            domain.pattern_of([1], morning, 2, 1)
        assert err.value.field == "slot_minutes"


class TestPlanSlots:
    def test_weekday_sessions_are_cut_into_whole_slots_in_utc(self) -> None:
        pattern = domain.pattern_of(
            [1, 3], domain.parse_sessions("08:00-10:10, 14:00-15:00"), 30, 2
        )
        # Sunday 8 March to Sunday 15 March 2026: Monday 9 and Wednesday 11 are clinic days.
        slots = domain.plan_slots(pattern, date(2026, 3, 8), date(2026, 3, 15), SHANGHAI)
        assert {s.local_date for s in slots} == {date(2026, 3, 9), date(2026, 3, 11)}
        monday = [s for s in slots if s.local_date == date(2026, 3, 9)]
        # 08:00-10:10 holds four whole 30-minute slots (the last 10 minutes are left over).
        assert [s.starts_at.astimezone(SHANGHAI).strftime("%H:%M") for s in monday] == [
            "08:00",
            "08:30",
            "09:00",
            "09:30",
            "14:00",
            "14:30",
        ]
        assert monday[0].starts_at == datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
        assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in slots)

    def test_local_clinic_times_hold_across_a_dst_change(self) -> None:
        pattern = domain.pattern_of(range(1, 8), domain.parse_sessions("09:00-10:00"), 60, 1)
        # New York moves its clocks on Sunday 8 March 2026.
        slots = domain.plan_slots(pattern, date(2026, 3, 7), date(2026, 3, 9), NEW_YORK)
        assert [s.starts_at for s in slots] == [
            at(NEW_YORK, 2026, 3, 7, 9, 0),
            at(NEW_YORK, 2026, 3, 8, 9, 0),
            at(NEW_YORK, 2026, 3, 9, 9, 0),
        ]
        assert slots[0].starts_at.hour == 14 and slots[1].starts_at.hour == 13


class TestReminderTimes:
    NOW = at(SHANGHAI, 2026, 3, 1, 12, 0)

    def test_evening_before_and_half_past_seven_on_the_day(self) -> None:
        times = dict(domain.reminder_times(at(SHANGHAI, 2026, 3, 10, 14, 0), SHANGHAI, self.NOW))
        assert times == {
            "day_before": at(SHANGHAI, 2026, 3, 9, 18, 0),
            "morning": at(SHANGHAI, 2026, 3, 10, 7, 30),
        }

    def test_an_early_slot_is_reminded_two_hours_before(self) -> None:
        times = dict(domain.reminder_times(at(SHANGHAI, 2026, 3, 10, 8, 30), SHANGHAI, self.NOW))
        assert times["morning"] == at(SHANGHAI, 2026, 3, 10, 6, 30)

    def test_times_follow_the_patients_zone(self) -> None:
        starts = at(NEW_YORK, 2026, 3, 10, 11, 0)
        times = dict(domain.reminder_times(starts, NEW_YORK, self.NOW))
        assert times["day_before"] == at(NEW_YORK, 2026, 3, 9, 18, 0)
        assert times["morning"] == at(NEW_YORK, 2026, 3, 10, 7, 30)

    def test_moments_already_past_are_left_out(self) -> None:
        now = at(SHANGHAI, 2026, 3, 10, 7, 0)
        times = domain.reminder_times(at(SHANGHAI, 2026, 3, 10, 14, 0), SHANGHAI, now)
        assert times == [("morning", at(SHANGHAI, 2026, 3, 10, 7, 30))]
        late = at(SHANGHAI, 2026, 3, 10, 9, 0)
        assert domain.reminder_times(at(SHANGHAI, 2026, 3, 10, 14, 0), SHANGHAI, late) == []


class TestQueueFront:
    def test_the_first_n_waiting_are_near(self) -> None:
        assert domain.near_turn([11, 12, 13, 14, 15], 3) == [11, 12, 13]
        assert domain.near_turn([11], 3) == [11]
        assert domain.near_turn([11, 12], 0) == []

    def test_days_overdue(self) -> None:
        assert domain.days_overdue(date(2026, 3, 1), date(2026, 3, 9)) == 8

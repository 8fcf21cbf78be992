"""Pure scheduling rules: local wall-clock times, DST gaps and folds, quiet hours, ladders."""
# ruff: noqa: DTZ001 - naive datetimes here are patient-local wall-clock times, by design

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from careloop.careplans import domain

NY = ZoneInfo("America/New_York")


def daily(at: str, start: datetime, end: datetime, *, enrolled: date) -> list[datetime]:
    planned = domain.expand(
        {"rrule": "FREQ=DAILY", "times": [at]},
        start=start,
        end=end,
        enrolled_on=enrolled,
        anchors={},
    )
    return [p.local for p in planned]


class TestDstSpringForward:
    """2026-03-08: New York skips from 02:00 to 03:00."""

    def test_0230_daily_is_planned_once_on_the_gap_day(self) -> None:
        locals_ = daily(
            "02:30", datetime(2026, 3, 7), datetime(2026, 3, 10), enrolled=date(2026, 3, 1)
        )
        assert [d.day for d in locals_] == [7, 8, 9]

    def test_gap_time_is_sent_shifted_forward_by_the_gap(self) -> None:
        instant = domain.to_utc(datetime(2026, 3, 8, 2, 30), NY)
        assert instant == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
        assert instant.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
        assert domain.is_gap(datetime(2026, 3, 8, 2, 30), NY)

    def test_days_around_keep_wall_clock(self) -> None:
        assert domain.to_utc(datetime(2026, 3, 7, 2, 30), NY) == datetime(
            2026, 3, 7, 7, 30, tzinfo=UTC
        )
        assert domain.to_utc(datetime(2026, 3, 9, 2, 30), NY) == datetime(
            2026, 3, 9, 6, 30, tzinfo=UTC
        )


class TestDstFallBack:
    """2026-11-01: New York repeats 01:00–02:00."""

    def test_0130_is_planned_once_and_sent_at_first_occurrence(self) -> None:
        locals_ = daily(
            "01:30", datetime(2026, 10, 31), datetime(2026, 11, 3), enrolled=date(2026, 10, 1)
        )
        assert [d.day for d in locals_] == [31, 1, 2]
        instant = domain.to_utc(datetime(2026, 11, 1, 1, 30), NY)
        assert instant == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
        assert instant.astimezone(NY).strftime("%Z") == "EDT"
        assert not domain.is_gap(datetime(2026, 11, 1, 1, 30), NY)


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("Asia/Shanghai", datetime(2026, 6, 1, 8, 0), datetime(2026, 6, 1, 0, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 6, 1, 8, 0), datetime(2026, 6, 1, 2, 30, tzinfo=UTC)),
        # Lord Howe moves by 30 minutes: UTC+11 in summer, UTC+10:30 in winter.
        (
            "Australia/Lord_Howe",
            datetime(2026, 1, 15, 8, 0),
            datetime(2026, 1, 14, 21, 0, tzinfo=UTC),
        ),
        (
            "Australia/Lord_Howe",
            datetime(2026, 7, 15, 8, 0),
            datetime(2026, 7, 14, 21, 30, tzinfo=UTC),
        ),
        # 2026-10-04 02:00 → 02:30 at Lord Howe: 02:15 does not exist, is sent at 02:45.
        (
            "Australia/Lord_Howe",
            datetime(2026, 10, 4, 2, 15),
            datetime(2026, 10, 3, 15, 45, tzinfo=UTC),
        ),
    ],
)
def test_zones(zone: str, local: datetime, utc: datetime) -> None:
    assert domain.to_utc(local, ZoneInfo(zone)) == utc


def test_lord_howe_fall_back_sends_once_at_first_instant() -> None:
    # 2026-04-05 02:00 → 01:30: 01:45 happens twice; the first is at UTC+11.
    tz = ZoneInfo("Australia/Lord_Howe")
    assert domain.to_utc(datetime(2026, 4, 5, 1, 45), tz) == datetime(
        2026, 4, 4, 14, 45, tzinfo=UTC
    )


class TestQuietHours:
    q = (time(21, 0), time(8, 0))
    tz = ZoneInfo("Asia/Shanghai")

    def test_inside_wrapping_window(self) -> None:
        assert domain.in_quiet_hours(time(22, 0), *self.q)
        assert domain.in_quiet_hours(time(7, 59), *self.q)
        assert not domain.in_quiet_hours(time(8, 0), *self.q)
        assert not domain.in_quiet_hours(time(20, 59), *self.q)

    def test_defers_late_evening_to_next_morning(self) -> None:
        at = datetime(2026, 6, 1, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
        assert domain.next_allowed(at, self.tz, *self.q) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)

    def test_defers_early_morning_to_same_morning(self) -> None:
        at = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)  # 06:00 on 2 June in Shanghai
        assert domain.next_allowed(at, self.tz, *self.q) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)

    def test_allowed_time_unchanged(self) -> None:
        at = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00
        assert domain.next_allowed(at, self.tz, *self.q) == at

    def test_daytime_window(self) -> None:
        assert domain.in_quiet_hours(time(13, 0), time(12, 0), time(14, 0))
        assert not domain.in_quiet_hours(time(14, 0), time(12, 0), time(14, 0))


class TestPrescriptions:
    def rx(self, freq: str, **kw: object) -> domain.Prescription:
        return domain.Prescription(id=7, name="氨氯地平", dose="5", unit="mg", frequency=freq, **kw)  # type: ignore[arg-type]

    def expand(self, *rx: domain.Prescription, times: dict | None = None) -> list[str]:
        planned = domain.expand_prescriptions(
            rx,
            start=datetime(2026, 6, 1),
            end=datetime(2026, 6, 3),
            dose_times=times or {},
            origin=date(2026, 6, 1),
        )
        return [f"{p.local:%d %H:%M}" for p in planned]

    def test_frequencies_map_to_local_times(self) -> None:
        assert self.expand(self.rx("qd")) == ["01 08:00", "02 08:00"]
        assert self.expand(self.rx("bid")) == ["01 08:00", "01 20:00", "02 08:00", "02 20:00"]
        assert self.expand(self.rx("tid"))[:3] == ["01 08:00", "01 14:00", "01 20:00"]

    def test_patient_override(self) -> None:
        assert self.expand(self.rx("bid"), times={"bid": ["07:30", "19:30"]})[:2] == [
            "01 07:30",
            "01 19:30",
        ]

    def test_as_needed_has_no_reminders(self) -> None:
        assert self.expand(self.rx("prn")) == []

    def test_ended_prescription_stops(self) -> None:
        assert self.expand(self.rx("qd", end=date(2026, 6, 1))) == ["01 08:00"]

    def test_every_other_day(self) -> None:
        planned = domain.expand_prescriptions(
            [self.rx("qod")],
            start=datetime(2026, 6, 1),
            end=datetime(2026, 6, 6),
            dose_times={},
            origin=date(2026, 6, 1),
        )
        assert [p.local.day for p in planned] == [1, 3, 5]


def test_discharge_offsets() -> None:
    planned = domain.expand(
        {"anchor": "discharge", "offsets_days": [1, 3, 7, 14, 30], "time": "10:00"},
        start=datetime(2026, 6, 1),
        end=datetime(2026, 8, 1),
        enrolled_on=date(2026, 6, 1),
        anchors={"discharge": date(2026, 6, 1)},
    )
    assert [p.local.date() for p in planned] == [
        date(2026, 6, 2),
        date(2026, 6, 4),
        date(2026, 6, 8),
        date(2026, 6, 15),
        date(2026, 7, 1),
    ]
    assert all(p.local.time() == time(10, 0) for p in planned)


def test_no_anchor_no_occurrences() -> None:
    assert (
        domain.expand(
            {"anchor": "discharge", "offsets_days": [1], "time": "10:00"},
            start=datetime(2026, 6, 1),
            end=datetime(2026, 8, 1),
            enrolled_on=date(2026, 6, 1),
            anchors={},
        )
        == []
    )


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"}, "DTSTART"),
        ({"rrule": "FREQ=DAILY", "times": ["25:00"]}, "HH:MM"),
        ({"offsets_days": []}, "offsets_days"),
        ({"offsets_days": [1], "anchor": "birthday"}, "anchor"),
        ({}, "needs"),
        ({"prescriptions": True}, "only medication"),
    ],
)
def test_invalid_schedules_name_the_problem(schedule: dict, message: str) -> None:
    with pytest.raises(domain.ScheduleError, match=message):
        domain.validate_schedule(schedule, kind="measurement")


def test_escalation_validation() -> None:
    domain.validate_escalation(
        [{"after": "2h", "channel": "voice"}, {"at": "end_of_day", "task": "call_patient"}],
        ["voice", "sms"],
    )
    with pytest.raises(domain.ScheduleError, match="step 1"):
        domain.validate_escalation([{"after": "soon", "channel": "voice"}], ["voice"])
    with pytest.raises(domain.ScheduleError, match="unknown channel"):
        domain.validate_escalation([{"after": "2h", "channel": "pigeon"}], ["voice"])


def test_end_of_day_is_local() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    sent = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # 08:00 local
    assert domain.end_of_local_day(sent, tz, time(20, 0)) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_backoff_grows_with_jitter_and_cap() -> None:
    assert domain.backoff(1, rand=0.0) == timedelta(seconds=15)
    assert domain.backoff(1, rand=1.0) == timedelta(seconds=30)
    assert domain.backoff(3, rand=1.0) == timedelta(seconds=120)
    assert domain.backoff(30, rand=1.0) == timedelta(seconds=3600)


def test_applicability() -> None:
    facts = domain.Facts(age=70, sex="female", icd10_codes=frozenset({"I10.x00"}))
    assert domain.applies({"conditions": ["I10"]}, facts)
    assert not domain.applies({"conditions": ["E11"]}, facts)
    assert not domain.applies({"max_age": 65}, facts)
    assert domain.applies({"min_age": 65, "sex": ["female"]}, facts)

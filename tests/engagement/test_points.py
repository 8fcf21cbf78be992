"""Points, daily caps, check-in streaks across time zones, streak bonuses and badges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from careloop.engagement import domain, services
from careloop.engagement import models as em
from careloop.portal import events
from tests.engagement.conftest import SHANGHAI_NOON, actor_of, event

pytestmark = pytest.mark.django_db


class TestLedger:
    def test_an_event_delivered_twice_pays_once(self, patient: Any, delivered: Any) -> None:
        for _ in range(2):
            with delivered():
                events.emit(
                    events.DOSE_TAKEN, patient_id=patient.pk,
                    organisation_id=patient.organisation_id, ref="occurrence:42",
                )  # fmt: skip
        rows = em.PointEntry.objects.filter(patient=patient)
        assert [(r.kind, r.ref, r.points) for r in rows] == [("dose_taken", "occurrence:42", 2)]
        assert services.balance(patient.pk) == 2

    def test_the_listener_is_registered(self) -> None:
        assert services.on_patient_event in events._listeners

    def test_the_same_ref_of_another_kind_or_patient_pays_again(
        self, patient: Any, other: Any
    ) -> None:
        services.pay(event(patient, events.READING, "observation:1"))
        services.pay(event(patient, events.QUESTIONNAIRE, "observation:1"))
        services.pay(event(other, events.READING, "observation:1"))
        assert services.balance(patient.pk) == 13
        assert services.balance(other.pk) == 3

    def test_default_points_per_kind(self, patient: Any) -> None:
        paid = {
            kind: services.pay(event(patient, kind, f"{kind}:1")).points  # type: ignore[union-attr]
            for kind in events.KINDS
        }
        assert paid == {
            "dose_taken": 2, "reading": 3, "questionnaire": 10, "content_read": 1, "check_in": 1,
        }  # fmt: skip

    def test_an_organisation_sets_its_own_points(self, patient: Any, world: Any) -> None:
        em.PointRule.objects.create(
            organisation=world.org, kind=events.READING, points=5, daily_cap=100
        )
        assert services.pay(event(patient, events.READING, "r:1")).points == 5  # type: ignore[union-attr]

    def test_an_event_for_a_patient_of_another_organisation_is_refused(
        self, patient: Any, world: Any
    ) -> None:
        forged = events.PatientEvent(events.READING, patient.pk, world.other_org.pk, "r:1")
        with pytest.raises(Exception):  # noqa: B017 - NotFound; nothing is written
            services.pay(forged)
        assert not em.PointEntry.objects.exists()

    def test_entries_are_append_only(self, patient: Any) -> None:
        entry = services.pay(event(patient, events.READING, "r:1"))
        assert entry is not None
        entry.points = 300
        with pytest.raises(RuntimeError):
            entry.save()
        with pytest.raises(RuntimeError):
            entry.delete()


class TestDailyCaps:
    def test_content_reads_stop_paying_at_the_cap_and_pay_again_the_next_day(
        self, patient: Any, frozen: Any
    ) -> None:
        frozen.set(SHANGHAI_NOON)
        for i in range(8):
            services.pay(event(patient, events.CONTENT_READ, f"content:{i}"))
        assert services.balance(patient.pk) == 5  # 1 point each, at most 5 a day
        # Every read is still recorded once (a later redelivery pays nothing either).
        assert em.PointEntry.objects.filter(patient=patient).count() == 8
        services.pay(event(patient, events.CONTENT_READ, "content:7"))
        assert em.PointEntry.objects.filter(patient=patient).count() == 8
        frozen.advance(days=1)
        services.pay(event(patient, events.CONTENT_READ, "content:8"))
        assert services.balance(patient.pk) == 6

    def test_a_cap_that_is_not_a_multiple_pays_the_remainder(self, patient: Any) -> None:
        rule = domain.Rule(points=10, daily_cap=25)
        assert [domain.award(rule, done) for done in (0, 10, 20, 25)] == [10, 10, 5, 0]
        assert domain.award(domain.Rule(points=3, daily_cap=0), 10_000) == 3

    def test_the_day_is_the_patients_local_day(self, make_patient: Any, frozen: Any) -> None:
        york = make_patient(time_zone="America/New_York")
        # 23:30 and 00:30 in Shanghai are one afternoon in New York: one day, one cap.
        frozen.set(datetime(2026, 3, 9, 15, 30, tzinfo=UTC))
        for i in range(5):
            services.pay(event(york, events.CONTENT_READ, f"a:{i}"))
        frozen.set(datetime(2026, 3, 9, 16, 30, tzinfo=UTC))
        services.pay(event(york, events.CONTENT_READ, "b"))
        assert services.balance(york.pk) == 5


class TestStreaks:
    def test_consecutive_days_and_a_missed_day(self) -> None:
        d = date(2026, 3, 1)
        days = [d, d + timedelta(1), d + timedelta(2), d + timedelta(4), d + timedelta(5)]
        s = domain.streak(days, d + timedelta(5))
        assert (s.current, s.longest, s.started) == (2, 3, d + timedelta(4))
        # Not yet checked in today: yesterday's streak is still alive...
        assert domain.streak(days, d + timedelta(6)).current == 2
        # ...but a whole missed day ends it.
        assert domain.streak(days, d + timedelta(7)).current == 0
        assert domain.streak([], d).current == 0

    def test_check_in_once_per_local_day_in_shanghai(
        self, patient: Any, frozen: Any, delivered: Any
    ) -> None:
        actor = actor_of(patient)
        frozen.set(datetime(2026, 3, 9, 15, 30, tzinfo=UTC))  # 23:30 Shanghai, 9 March
        with delivered():
            assert services.check_in(actor).new
            assert not services.check_in(actor).new  # same day
        frozen.set(datetime(2026, 3, 9, 16, 30, tzinfo=UTC))  # 00:30 Shanghai, 10 March
        with delivered():
            result = services.check_in(actor)
        assert result.new and result.streak.current == 2
        days = sorted(em.CheckIn.objects.filter(patient=patient).values_list("day", flat=True))
        assert days == [date(2026, 3, 9), date(2026, 3, 10)]
        assert services.balance(patient.pk) == 2  # one point per check-in day

    def test_the_same_moments_are_one_day_in_new_york(
        self, make_patient: Any, frozen: Any, delivered: Any
    ) -> None:
        york = make_patient(time_zone="America/New_York")
        actor = actor_of(york)
        frozen.set(datetime(2026, 3, 9, 15, 30, tzinfo=UTC))  # 11:30 New York
        with delivered():
            assert services.check_in(actor).new
        frozen.set(datetime(2026, 3, 9, 16, 30, tzinfo=UTC))  # 12:30 New York
        with delivered():
            assert not services.check_in(actor).new
        assert services.balance(york.pk) == 1

    def test_a_missed_day_restarts_the_streak_and_keeps_the_longest(
        self, patient: Any, frozen: Any
    ) -> None:
        actor = actor_of(patient)
        frozen.set(SHANGHAI_NOON)
        for _ in range(3):
            services.check_in(actor)
            frozen.advance(days=1)
        frozen.advance(days=1)  # a day missed
        result = services.check_in(actor)
        assert (result.streak.current, result.streak.longest) == (1, 3)
        wallet = em.Wallet.objects.get(patient=patient)
        assert (wallet.current_streak, wallet.longest_streak) == (1, 3)

    def test_seven_days_pay_the_bonus_once_and_earn_the_badge(
        self, patient: Any, frozen: Any, delivered: Any
    ) -> None:
        actor = actor_of(patient)
        frozen.set(SHANGHAI_NOON)
        bonuses = []
        for _ in range(8):
            with delivered():
                bonuses.append(services.check_in(actor).bonus)
                services.check_in(actor)  # a second tap the same day changes nothing
            frozen.advance(days=1)
        assert bonuses == [0, 0, 0, 0, 0, 0, 10, 0]
        assert services.balance(patient.pk) == 8 + 10
        codes = set(em.BadgeAward.objects.filter(patient=patient).values_list("code", flat=True))
        assert codes == {"first-check-in", "streak-7"}

    def test_a_new_streak_earns_its_own_bonus(self) -> None:
        d = date(2026, 3, 1)
        first = domain.streak([d + timedelta(i) for i in range(7)], d + timedelta(6))
        later = domain.streak(
            [d + timedelta(i) for i in range(7)] + [d + timedelta(10 + i) for i in range(7)],
            d + timedelta(16),
        )
        assert domain.streak_bonus_due(first)[0][2] != domain.streak_bonus_due(later)[0][2]
        thirty = domain.streak([d + timedelta(i) for i in range(30)], d + timedelta(29))
        assert [b[:2] for b in domain.streak_bonus_due(thirty)] == [(7, 10), (30, 50)]


class TestBadges:
    def test_first_reading_badge_is_awarded_once(self, patient: Any) -> None:
        services.pay(event(patient, events.READING, "r:1"))
        services.pay(event(patient, events.READING, "r:2"))
        rows = list(em.BadgeAward.objects.filter(patient=patient).values_list("code", flat=True))
        assert rows == ["first-reading"]

    def test_ten_questionnaires_and_fifty_doses(self, patient: Any) -> None:
        for i in range(10):
            services.pay(event(patient, events.QUESTIONNAIRE, f"q:{i}"))
        for i in range(50):
            services.pay(event(patient, events.DOSE_TAKEN, f"d:{i}"))
        codes = set(em.BadgeAward.objects.filter(patient=patient).values_list("code", flat=True))
        assert {"questionnaires-10", "doses-50"} <= codes
        # Badges are earned by events, whatever the daily cap paid for them.
        assert "first-reading" not in codes

    def test_badges_are_defined_as_data(self) -> None:
        assert domain.badges_earned({events.READING: 1}, longest_streak=30) == [
            "first-reading", "streak-7", "streak-30",
        ]  # fmt: skip
        assert len({b.code for b in domain.BADGES}) == len(domain.BADGES)

"""The operations figures, computed on a hand-built set of reminders and delivery attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from careloop.kit.errors import Forbidden
from careloop.reminders import selectors
from tests.reminders.factories import attempt, occurrence

pytestmark = pytest.mark.django_db

# Noon in Shanghai (the organisation's zone): "today" runs 2026-03-09 16:00 to 03-10 16:00 UTC.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def data(world: Any, make_patient: Any) -> dict[str, Any]:
    cardio = make_patient("nurse.cardiology")
    endo = make_patient("nurse.endocrinology")
    o = {
        "sched_3h": occurrence(cardio, NOW - 3 * H, "scheduled"),
        "retry_1h": occurrence(cardio, NOW - H, "retrying"),
        "failed": occurrence(cardio, NOW - H / 2, "failed"),
        "sent": occurrence(cardio, NOW - 5 * H, "sent"),
        "acked": occurrence(cardio, NOW - 2 * H, "acknowledged"),
        "later": occurrence(cardio, NOW + 2 * H, "scheduled"),
        "dead_yesterday": occurrence(cardio, NOW - D, "dead", reason="retries_exhausted"),
        "dead_today": occurrence(cardio, NOW - 6 * H, "dead", reason="invalid_address"),
        "sched_20h": occurrence(cardio, NOW - 20 * H, "scheduled"),  # yesterday, local
        "tomorrow": occurrence(cardio, NOW + D, "scheduled"),
        "sending": occurrence(cardio, NOW - H, "sending"),
        "endo_old": occurrence(endo, NOW - 2 * D, "scheduled"),
    }
    sent = o["sent"]
    for outcome, age in (
        ("accepted", H),
        ("delivered", 2 * H),
        ("transient", 3 * H),
        ("permanent", 3 * D),
        ("pending", H / 6),  # in flight: not counted
        ("delivered", 8 * D),  # outside the week
    ):
        attempt(sent, "sms", outcome, NOW - age)
    attempt(sent, "wechat", "superseded", NOW - 5 * H, in_doubt=True)  # resent after a crash
    attempt(sent, "wechat", "accepted", NOW - 5 * H, in_doubt=True)  # confirmed, not resent
    attempt(sent, "wechat", "accepted", NOW - 2 * D)
    attempt(sent, "wechat", "superseded", NOW - 3 * D, in_doubt=True)
    attempt(o["endo_old"], "voice", "permanent", NOW - H, error_code="isv.BUSINESS_LIMIT")
    # Another organisation's reminders never count.
    outsider = make_patient("nurse.other")
    occurrence(outsider, NOW - H, "scheduled")
    attempt(occurrence(outsider, NOW - H, "dead"), "sms", "permanent", NOW - H)
    o["cardio"], o["endo"] = cardio, endo
    return o


class TestFiguresForTheWholeOrganisation:
    def test_queue_and_oldest_unsent(self, world: Any, data: dict[str, Any]) -> None:
        f = selectors.figures(world.actor("admin"), now=NOW)
        # Due and waiting: the scheduled, retrying, failed and sending ones due by now.
        assert f.queue_depth == 6
        assert f.oldest_due_at == data["endo_old"].due_at
        assert f.oldest_age_seconds == 2 * 24 * 3600

    def test_todays_counts_follow_the_organisations_local_day(
        self, world: Any, data: dict[str, Any]
    ) -> None:
        f = selectors.figures(world.actor("admin"), now=NOW)
        assert f.day.isoformat() == "2026-03-10"
        assert {k: v for k, v in f.today.items() if v} == {
            "scheduled": 2,
            "retrying": 1,
            "failed": 1,
            "sent": 1,
            "acknowledged": 1,
            "dead": 1,
            "sending": 1,
        }
        assert f.dead_letters == 2

    def test_send_success_per_channel(self, world: Any, data: dict[str, Any]) -> None:
        f = selectors.figures(world.actor("admin"), now=NOW)
        by = {c.channel: c for c in f.channels}
        assert set(by) == {"sms", "wechat", "voice"}
        sms, wechat, voice = by["sms"], by["wechat"], by["voice"]
        assert (sms.ok_24h, sms.attempts_24h, sms.ok_7d, sms.attempts_7d) == (2, 3, 2, 4)
        assert sms.rate_24h == pytest.approx(2 / 3, abs=1e-4)
        assert sms.rate_7d == 0.5
        assert (wechat.ok_24h, wechat.attempts_24h, wechat.ok_7d, wechat.attempts_7d) == (
            1,
            2,
            2,
            4,
        )
        assert (voice.ok_24h, voice.attempts_24h, voice.rate_24h) == (0, 1, 0.0)

    def test_in_doubt_resends(self, world: Any, data: dict[str, Any]) -> None:
        f = selectors.figures(world.actor("admin"), now=NOW)
        assert (f.in_doubt_resends_24h, f.in_doubt_resends_7d) == (1, 2)

    def test_a_quiet_organisation_has_nothing_to_report(self, world: Any) -> None:
        f = selectors.figures(world.actor("admin"), now=NOW)
        assert (f.queue_depth, f.oldest_due_at, f.dead_letters, f.channels) == (0, None, 0, [])
        assert sum(f.today.values()) == 0


class TestDepartmentScope:
    def test_a_department_head_sees_the_departments_patients_only(
        self, world: Any, data: dict[str, Any]
    ) -> None:
        f = selectors.figures(world.actor("head.cardiology"), now=NOW)
        assert f.queue_depth == 5
        assert f.oldest_due_at == data["sched_20h"].due_at
        assert "voice" not in {c.channel for c in f.channels}
        endo = selectors.figures(world.actor("head.endocrinology"), now=NOW)
        assert (endo.queue_depth, endo.dead_letters) == (1, 0)

    def test_dead_letters_list_names_the_last_error(self, world: Any, data: dict[str, Any]) -> None:
        attempt(data["dead_today"], "sms", "permanent", NOW - 6 * H, error_code="bad_number")
        attempt(data["dead_today"], "voice", "permanent", NOW - 5 * H, error_code="no_answer")
        dead = selectors.dead_letters(world.actor("head.cardiology"))
        assert [d.pk for d in dead] == sorted(
            [data["dead_today"].pk, data["dead_yesterday"].pk], reverse=True
        )
        latest = next(d for d in dead if d.pk == data["dead_today"].pk)
        assert (latest.last_channel, latest.last_error) == ("voice", "no_answer")
        assert selectors.dead_letters(world.actor("head.endocrinology")) == []

    def test_roles_without_operations_are_refused(self, world: Any, data: dict[str, Any]) -> None:
        for username in ("nurse.cardiology", "doctor.cardiology", "auditor"):
            with pytest.raises(Forbidden):
                selectors.figures(world.actor(username), now=NOW)

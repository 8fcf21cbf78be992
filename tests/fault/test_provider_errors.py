"""Provider errors seen by a real worker: 5xx is retried with backoff, a bad number is not."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from careloop.channels.fakes import FakeAliyun
from careloop.kit import clock
from tests.fault.conftest import Scratch, wait_until

pytestmark = pytest.mark.fault

# Fake seconds per real second: the backoff (15 s, 30 s, 60 s at the least) passes in about 2 s.
SPEED = 60


@pytest.fixture
def aliyun() -> Iterator[FakeAliyun]:
    with FakeAliyun() as fake:
        yield fake


def attempts(scratch: Scratch, occurrence: int) -> list[tuple[int, str, str]]:
    return [
        (int(try_no), str(outcome), str(code))
        for try_no, outcome, code in scratch.sql(
            "SELECT try_no, outcome, error_code FROM reminders_attempt "
            "WHERE occurrence_id = %s ORDER BY try_no",
            (occurrence,),
        )
    ]


def occurrence(scratch: Scratch, pk: int) -> tuple[str, str, int]:
    status, reason, tries = scratch.sql(
        "SELECT status, reason, tries FROM reminders_occurrence WHERE id = %s", (pk,)
    )[0]
    return str(status), str(reason), int(tries)


class TestTransientErrors:
    def test_three_5xx_then_success_is_one_send_after_four_attempts(
        self, scratch: Scratch, aliyun: FakeAliyun, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # One clock for the worker, the set-up and the fake provider (which checks request
        # time stamps), running fast so the retries' backoff passes quickly.
        start = datetime.now(UTC).replace(microsecond=0)
        anchor = time.time()
        monkeypatch.setattr(clock, "_fake", clock.FakeClock(start, SPEED, anchor))
        scratch.env.update(
            CARELOOP_FAKE_NOW=start.isoformat(),
            CARELOOP_FAKE_SPEED=str(SPEED),
            CARELOOP_FAKE_ANCHOR=repr(anchor),
            CARELOOP_DISPATCH_LEASE_SECONDS="120",
        )
        world = scratch.scenario(aliyun.config(), "--patients", "1", "--enrolled")
        (pk,) = world["occurrences"]
        aliyun.fail_next(3, status=503)

        workers = scratch.workers()
        worker = workers.start("--interval", "0.1")
        try:
            wait_until(
                lambda: occurrence(scratch, pk)[0] == "sent", timeout=60, what="the fourth try"
            )
        finally:
            workers.stop_all()
        assert worker.returncode == 0, workers.logs()[-3000:]

        assert len([s for s in aliyun.sent if s.ref == f"o{pk}:s0:sms"]) == 1
        assert len(aliyun.sent) == 1
        assert attempts(scratch, pk) == [
            (1, "transient", "http_503"),
            (2, "transient", "http_503"),
            (3, "transient", "http_503"),
            (4, "accepted", ""),
        ]
        assert occurrence(scratch, pk) == ("sent", "", 3)
        # Each wait was longer than the one before (exponential backoff, at least half of
        # 30 s, 60 s and 120 s).
        started = [
            datetime.fromisoformat(str(t)) if isinstance(t, str) else t
            for (t,) in scratch.sql(
                "SELECT started_at FROM reminders_attempt WHERE occurrence_id = %s ORDER BY try_no",
                (pk,),
            )
        ]
        gaps = [(b - a).total_seconds() for a, b in zip(started, started[1:], strict=False)]
        assert gaps[0] >= 15 and gaps[1] >= 30 and gaps[2] >= 60, gaps


class TestInvalidNumber:
    def test_a_refused_number_is_a_dead_letter_and_a_task_and_its_batch_mate_is_sent(
        self, scratch: Scratch, aliyun: FakeAliyun
    ) -> None:
        world = scratch.scenario(aliyun.config(), "--patients", "2", "--enrolled")
        good, bad = world["occurrences"]
        aliyun.fail_numbers({world["phones"][str(bad)]: "isv.MOBILE_NUMBER_ILLEGAL"})

        workers = scratch.workers()
        worker = workers.start("--until-idle")
        try:
            code = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            workers.stop_all()
            raise
        workers.stop_all()
        assert code == 0, workers.logs()[-3000:]

        # The bad number: tried once, never again, dead with its reason.
        assert attempts(scratch, bad) == [(1, "permanent", "isv.MOBILE_NUMBER_ILLEGAL")]
        assert occurrence(scratch, bad) == ("dead", "invalid_address", 0)
        # The plan's ladder says what to do with a dead letter: staff fix the contact details.
        tasks = scratch.sql(
            "SELECT kind, status, occurrence_id FROM alerts_task ORDER BY id",
        )
        assert tasks == [("fix_contact", "open", bad)]
        # The other reminder of the same batch went out, once.
        assert attempts(scratch, good) == [(1, "accepted", "")]
        assert occurrence(scratch, good)[0] == "sent"
        assert [s.to for s in aliyun.sent] == [world["phones"][str(good)]]

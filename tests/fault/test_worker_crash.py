"""A worker killed with SIGKILL in the middle of a batch: nothing lost, nothing sent twice."""

from __future__ import annotations

import time

import pytest

from careloop.bench.reminders import FakeProvider
from tests.fault.conftest import LEASE_SECONDS, Scratch, freeze_when, per_occurrence

pytestmark = pytest.mark.fault

PATIENTS = 600
PER_PATIENT = 5


def count(scratch: Scratch, outcome: str, timeout: float = 30) -> int:
    rows = scratch.sql(
        "SELECT COUNT(*) FROM reminders_attempt WHERE outcome = %s", (outcome,), timeout=timeout
    )
    return int(rows[0][0])


def pending_attempts(scratch: Scratch) -> int:
    return count(scratch, "pending")


def accepted_attempts(scratch: Scratch) -> int:
    return count(scratch, "accepted")


class TestKilledWorker:
    def test_every_reminder_is_sent_exactly_once_after_a_kill_mid_batch(
        self, scratch: Scratch
    ) -> None:
        # The provider is slow, so a batch is in flight most of the time; it runs in its own
        # process and logs every accepted message to a file, so its record survives it all.
        with FakeProvider(scratch.tmp / "sent.jsonl", latency=0.02) as fake:
            world = scratch.scenario(
                fake.config, "--patients", str(PATIENTS), "--per-patient", str(PER_PATIENT)
            )
            total = PATIENTS * PER_PATIENT
            assert len(world["occurrences"]) == total
            workers = scratch.workers()
            victim = workers.start("--interval", "0.2", batch=50)

            # Kill it while messages it handed to the provider are not yet recorded.
            freeze_when(
                victim,
                lambda: (
                    count(scratch, "accepted", 0.2) >= total // 5
                    and count(scratch, "pending", 0.2) > 0
                ),
                timeout=120,
                what="a batch in flight after a fifth of the work",
            )
            workers.kill(victim)
            in_doubt = pending_attempts(scratch)
            sent_before = accepted_attempts(scratch)
            assert 0 < in_doubt and sent_before < total

            # Its claims come back when the lease runs out; two new workers finish the work.
            time.sleep(LEASE_SECONDS + 0.5)
            rest = [workers.start("--until-idle", "--interval", "0.2", batch=50) for _ in range(2)]
            for proc in rest:
                assert proc.wait(timeout=240) == 0, workers.logs()[-3000:]
            workers.stop_all()

            counts, strays = per_occurrence(fake, scratch)

        assert scratch.statuses() == {"sent": total}, workers.logs()[-5000:]
        assert strays == []
        duplicates = {pk: n for pk, n in counts.items() if n > 1}
        missing = set(world["occurrences"]) - set(counts)
        assert duplicates == {}
        assert missing == set()
        # The messages in flight at the kill were looked up at the provider, not blindly resent:
        # each pending attempt is now either confirmed (accepted, in doubt) or superseded.
        assert pending_attempts(scratch) == 0
        confirmed = scratch.sql(
            "SELECT COUNT(*) FROM reminders_attempt WHERE outcome = 'accepted' AND in_doubt"
        )[0][0]
        superseded = scratch.sql(
            "SELECT COUNT(*) FROM reminders_attempt WHERE outcome = 'superseded'"
        )[0][0]
        assert confirmed + superseded == in_doubt
        # One accepted attempt per occurrence, as at the provider.
        assert accepted_attempts(scratch) == total

"""Several workers at once over the same due reminders: each reminder is sent exactly once."""

from __future__ import annotations

import pytest

from careloop.bench.reminders import FakeProvider
from tests.fault.conftest import Scratch, backend, per_occurrence

pytestmark = pytest.mark.fault

PATIENTS = 500
PER_PATIENT = 6


@pytest.mark.parametrize(
    "n",
    [
        2,
        pytest.param(
            4,
            marks=pytest.mark.skipif(
                backend() != "postgres", reason="SQLite serialises writers: two show it"
            ),
        ),
    ],
)
def test_concurrent_workers_send_each_reminder_once(n: int, scratch: Scratch) -> None:
    total = PATIENTS * PER_PATIENT
    with FakeProvider(scratch.tmp / "sent.jsonl", latency=0.05) as fake:
        world = scratch.scenario(
            fake.config, "--patients", str(PATIENTS), "--per-patient", str(PER_PATIENT)
        )
        workers = scratch.workers()
        procs = [workers.start("--until-idle", "--interval", "0.2", batch=50) for _ in range(n)]
        codes = [p.wait(timeout=240) for p in procs]
        workers.stop_all()
        counts, strays = per_occurrence(fake, scratch)

    assert codes == [0] * n, workers.logs()[-3000:]
    assert scratch.statuses() == {"sent": total}
    assert strays == []
    assert {pk: c for pk, c in counts.items() if c > 1} == {}
    assert set(world["occurrences"]) - set(counts) == set()
    # Nothing crashed, so nothing was in doubt: one attempt per reminder, all accepted.
    assert scratch.sql("SELECT outcome, COUNT(*) FROM reminders_attempt GROUP BY outcome") == [
        ("accepted", total)
    ]
    # The work really was shared.
    workers_seen = scratch.sql("SELECT COUNT(DISTINCT worker) FROM reminders_attempt")[0][0]
    assert workers_seen >= 2

"""The database goes away under a running worker: it keeps going, and nothing is lost or doubled.

From the worker's point of view a server restart is its connections being cut and new ones
refused for a while. The test does exactly that to the worker's database (terminating its
backends with ``pg_terminate_backend`` while the database refuses connections) rather than
restarting the shared server, which would also cut every other session on the machine.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql as pgsql

from careloop.bench.reminders import FakeProvider
from tests.fault.conftest import Scratch, backend, per_occurrence, wait_until

pytestmark = pytest.mark.fault

PATIENTS = 600
PER_PATIENT = 5


def outage(scratch: Scratch, seconds: float) -> int:
    """Cut every connection to the worker's database and refuse new ones for ``seconds``."""
    name = pgsql.Identifier(scratch.dbname)
    with psycopg.connect(scratch.server, autocommit=True) as admin:
        admin.execute(pgsql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        try:
            cut = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [scratch.dbname],
            ).fetchone()
            time.sleep(seconds)
        finally:
            admin.execute(pgsql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
    return int(cut[0]) if cut else 0


def sent(scratch: Scratch) -> int:
    return int(scratch.sql("SELECT COUNT(*) FROM reminders_occurrence WHERE status = 'sent'")[0][0])


@pytest.mark.skipif(backend() != "postgres", reason="a database server outage: PostgreSQL only")
class TestDatabaseOutage:
    def test_worker_survives_and_sends_each_reminder_once(self, scratch: Scratch) -> None:
        total = PATIENTS * PER_PATIENT
        with FakeProvider(scratch.tmp / "sent.jsonl", latency=0.02) as fake:
            world = scratch.scenario(
                fake.config, "--patients", str(PATIENTS), "--per-patient", str(PER_PATIENT)
            )
            workers = scratch.workers()
            worker = workers.start("--interval", "0.2", batch=50)

            cuts = 0
            for fraction in (0.2, 0.5):
                wait_until(
                    lambda f=fraction: sent(scratch) >= total * f,  # type: ignore[misc]
                    timeout=120,
                    what=f"{fraction:.0%} sent",
                )
                cuts += outage(scratch, seconds=2.0)
                assert worker.poll() is None, "the worker died with its database connection"

            wait_until(lambda: sent(scratch) == total, timeout=180, what="every reminder sent")
            assert worker.poll() is None
            assert workers.stop_all() == [0]
            counts, strays = per_occurrence(fake, scratch)

        assert cuts >= 2  # the worker's connections really were cut, twice
        logs = workers.logs()
        assert "dispatcher batch failed" in logs  # it noticed, said so, and went on
        assert scratch.statuses() == {"sent": total}
        assert strays == []
        assert {pk: n for pk, n in counts.items() if n > 1} == {}
        assert set(world["occurrences"]) - set(counts) == set()
        assert scratch.sql("SELECT COUNT(*) FROM reminders_attempt WHERE outcome = 'pending'") == [
            (0,)
        ]

"""Periodic jobs that apps register for the worker: ``register(name, every, job)``.

The dispatcher (``careloop worker``, and ``make run``'s in-process worker) calls ``run_due()`` on
every tick; a job runs when ``every`` seconds of real time have passed since it last ran in this
process (and once at start). A job must be idempotent and decide for itself whether there is
work (e.g. "once per local day"), because several workers may run it and a restarted worker runs
it again at once. A failing job is logged and tried again at its next turn; it never stops the
reminders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("careloop.periodic")


@dataclass
class Job:
    name: str
    every: float
    run: Callable[[], object]
    last: float = field(default=0.0)


_jobs: dict[str, Job] = {}


def register(name: str, every: float, job: Callable[[], object]) -> None:
    """Add (or replace) the job called ``name``; ``every`` is in seconds of real time."""
    if every <= 0:
        raise ValueError("every must be positive")
    _jobs[name] = Job(name, float(every), job)


def jobs() -> list[Job]:
    return list(_jobs.values())


def run_due(*, force: bool = False) -> list[str]:
    """Run the jobs whose turn has come; returns the names of those run."""
    ran: list[str] = []
    clock = time.monotonic()
    for job in list(_jobs.values()):
        if not force and job.last and clock - job.last < job.every:
            continue
        job.last = clock
        try:
            job.run()
        except Exception:
            log.exception("periodic job %s failed; will try again", job.name)
        ran.append(job.name)
    return ran

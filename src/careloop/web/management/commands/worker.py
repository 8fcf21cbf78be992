"""careloop worker: send due reminders and run queued jobs until stopped."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run the background worker: the reminder dispatcher and the job queue. "
        "Any number of workers may run at once, on any number of machines."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds to wait when there is no work"
        )
        parser.add_argument(
            "--batch-size", type=int, default=200, help="reminders claimed per batch (1-2000)"
        )
        parser.add_argument(
            "--until-idle", action="store_true", help="exit when no reminder is due"
        )
        parser.add_argument(
            "--no-jobs", action="store_true", help="only send reminders; do not run queued jobs"
        )

    def handle(
        self,
        *args: Any,
        interval: float,
        batch_size: int,
        until_idle: bool,
        no_jobs: bool,
        **opts: Any,
    ) -> None:
        from django.core.management.base import CommandError

        from careloop.reminders.dispatcher import Dispatcher
        from careloop.web.worker import start_worker_thread

        if not 1 <= batch_size <= 2000:
            raise CommandError("--batch-size must be between 1 and 2000")
        if interval <= 0:
            raise CommandError("--interval must be positive")
        dispatcher = Dispatcher(batch=batch_size, interval=interval)

        def stop(signum: int, frame: Any) -> None:
            dispatcher.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if not no_jobs and not until_idle:
            start_worker_thread(interval=interval)
        self.stdout.write(f"careloop worker {dispatcher.worker} sending due reminders")
        total = dispatcher.run(until_idle=until_idle)
        self.stdout.write(
            f"stopped: claimed {total.claimed}, sent {total.sent}, deferred {total.deferred}, "
            f"skipped {total.skipped}, retrying {total.retrying}, dead {total.dead}, "
            f"escalated {total.escalated}, tasks {total.tasks}"
        )

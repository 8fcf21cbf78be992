"""careloop worker: claim and run queued jobs until stopped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the background worker. Any number of workers may run at once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds to wait when there is no work"
        )
        parser.add_argument("--batch", action="store_true", help="exit when the queue is empty")
        parser.add_argument("--max-tasks", type=int, default=None, help="exit after this many jobs")

    def handle(
        self, *args: Any, interval: float, batch: bool, max_tasks: int | None, **opts: Any
    ) -> None:
        from careloop.web.worker import make_worker

        worker = make_worker(interval=interval, max_tasks=max_tasks, batch=batch)
        worker.configure_signals()
        worker.run()

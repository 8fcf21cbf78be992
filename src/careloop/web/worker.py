"""The background worker: runs queued jobs from the database task queue."""

from __future__ import annotations

import logging
import os
import threading
import uuid

log = logging.getLogger("careloop.worker")


def make_worker(interval: float = 1.0, max_tasks: int | None = None, batch: bool = False):  # type: ignore[no-untyped-def]
    from django_tasks_db.management.commands.db_worker import Worker

    return Worker(
        queue_names=["*"],
        interval=interval,
        batch=batch,
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        excluded_queue_names=[],
    )


def start_worker_thread(interval: float = 1.0) -> threading.Thread:
    """Run the worker beside the web server (the embedded default)."""
    worker = make_worker(interval=interval)

    def run() -> None:
        try:
            worker.run()
        except Exception:  # keep the web server up; the error is logged for operators
            log.exception("in-process worker stopped")

    thread = threading.Thread(target=run, name="careloop-worker", daemon=True)
    thread.start()
    log.info("in-process worker started")
    return thread


def start_dispatcher_thread(interval: float = 1.0) -> threading.Thread:
    """Send due reminders beside the web server (the embedded default)."""
    from careloop.reminders.dispatcher import Dispatcher

    dispatcher = Dispatcher(interval=interval)

    def run() -> None:
        try:
            dispatcher.run()
        except Exception:  # keep the web server up; the error is logged for operators
            log.exception("in-process reminder dispatcher stopped")

    thread = threading.Thread(target=run, name="careloop-dispatcher", daemon=True)
    thread.start()
    log.info("in-process reminder dispatcher started")
    return thread

"""careloop serve: the production-grade WSGI server, optionally with the worker in-process."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand

log = logging.getLogger("careloop.serve")


class Command(BaseCommand):
    help = "Start CareLoop's web server (waitress). --with-worker also runs the job worker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")
        parser.add_argument("--threads", type=int, default=8, help="request threads")
        parser.add_argument(
            "--with-worker",
            action="store_true",
            help="run the background worker in this process too",
        )
        parser.add_argument(
            "--fake-providers",
            action="store_true",
            help=(
                "also run local fake SMS/voice providers for channels configured on loopback "
                "(the demo); refused in production mode"
            ),
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        threads: int,
        with_worker: bool,
        fake_providers: bool = False,
        **opts: Any,
    ) -> None:
        from waitress import serve

        from careloop.wsgi import application

        if fake_providers:
            from careloop.channels.fakes.local import start_loopback_fakes

            for line in start_loopback_fakes():
                self.stdout.write(line)
        if with_worker:
            from careloop.web.worker import start_dispatcher_thread, start_worker_thread

            start_worker_thread()
            start_dispatcher_thread()
        self.stdout.write(f"CareLoop listening on http://{host}:{port}/  (Ctrl+C stops it)")
        serve(
            application,
            host=host,
            port=port,
            threads=threads,
            ident="CareLoop",
            max_request_body_size=64 * 1024 * 1024,
        )

"""The machinery every fake provider shares: a loopback HTTP server in a thread, a record of
accepted messages (in memory and optionally as JSON lines in a file), scripted failures and
artificial latency.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from careloop.kit.clock import utc_now

MAX_REQUEST_BYTES = 4 << 20


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class FakeResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, data: Any, status: int = 200, **headers: str) -> FakeResponse:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, headers=dict(headers))


@dataclass(frozen=True)
class Sent:
    """One message the fake accepted."""

    provider: str
    to: str
    ref: str  # the caller reference: OutId, SessionContext, client_msg_id, Message-ID, Topic
    id: str  # the provider's message id
    text: str  # rendered content or decrypted payload
    at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Failure:
    status: int
    code: str


class Recorder:
    """Accepted messages, scripted failures and latency; shared by the HTTP and SMTP fakes."""

    name = "fake"

    def __init__(self, *, log_path: str | Path | None = None, latency: float = 0.0) -> None:
        self.log_path = Path(log_path) if log_path else None
        self.latency = latency
        self.sent: list[Sent] = []
        self.requests: list[FakeRequest] = []
        self._failures: deque[Failure] = deque()
        self._numbers: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- scripting ----------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500, code: str = "") -> None:
        """The next ``count`` send requests fail.

        With ``code``, the answer is the provider's own error for that code (in the HTTP status
        the provider uses for it); without, a bare HTTP ``status`` such as 500 or 503.
        """
        with self._lock:
            self._failures.extend(Failure(status, code) for _ in range(count))

    def fail_numbers(self, mapping: Mapping[str, str]) -> None:
        """Recipients (as the provider sees them) that are refused with the given error code."""
        with self._lock:
            self._numbers.update(mapping)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._numbers.clear()

    def take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def failure_for(self, recipient: str) -> str:
        with self._lock:
            return self._numbers.get(recipient, "")

    # --- records ------------------------------------------------------------------------------

    def record(self, sent: Sent) -> None:
        with self._lock:
            self.sent.append(sent)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(sent.as_json() + "\n")

    def refs(self) -> list[str]:
        with self._lock:
            return [s.ref for s in self.sent]

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.requests.clear()

    @staticmethod
    def now() -> datetime:
        return utc_now()

    def config(self) -> dict[str, Any]:  # pragma: no cover - every fake overrides
        raise NotImplementedError


class FakeServer(Recorder):
    """A fake provider API on 127.0.0.1 in a daemon thread; port 0 picks a free port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__(log_path=log_path, latency=latency)
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake is not running")
        return int(self._server.server_address[1])

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self.send_error(413)
                    return
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = FakeRequest(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(req)
                if fake.latency:
                    time.sleep(fake.latency)
                try:
                    resp = fake.handle(req)
                except Exception:  # a bug in the fake should not hang the client
                    resp = FakeResponse(500, b"fake error", "text/plain")
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.content_type)
                    self.send_header("Content-Length", str(len(resp.body)))
                    for name, value in resp.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, req: FakeRequest) -> FakeResponse:  # pragma: no cover - overridden
        raise NotImplementedError

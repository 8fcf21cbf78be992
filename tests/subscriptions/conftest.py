"""A real HTTP receiver on loopback, and helpers to subscribe through /fhir."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.observations import services as obs_services
from careloop.subscriptions import models as sm
from tests.appointments.conftest import clinic, frozen  # noqa: F401
from tests.fhir.conftest import cardio_patient, endo_patient, fhir  # noqa: F401

BP_CODE = "85354-9"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the loopback server got, and what it answers next (statuses are used in turn, the
    last one repeats)."""

    port: int = 0
    got: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=lambda: [200])
    redirect_to: str = ""
    delay: float = 0.0  # seconds to wait before answering

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self) -> int:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.got.append(Received(self.path, dict(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            status = state.answer()
            try:
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up (the stalled-receiver test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def allow(world: Any, host: str = "127.0.0.1") -> None:
    sm.AllowedHost.objects.get_or_create(organisation=world.org, host=host)


def subscription_body(criteria: str, endpoint: str, **channel: Any) -> dict[str, Any]:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Home blood pressure to the ward system",
        "criteria": criteria,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            **channel,
        },
    }
    body["channel"] = {k: v for k, v in body["channel"].items() if v is not None}  # type: ignore[union-attr]
    return body


def subscribe(client: Any, criteria: str, endpoint: str, **channel: Any) -> dict[str, Any]:
    response = client.post("/fhir/Subscription", subscription_body(criteria, endpoint, **channel))
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def reading(world: Any, patient: Any, username: str = "nurse.cardiology", **item: Any) -> Any:
    values = item or {"code": "bp", "systolic": 150, "diastolic": 95}
    at = utc_now() - timedelta(minutes=5)
    return obs_services.record_one(
        world.actor(username), patient.pk, {"effective": at.isoformat(), **values}
    )


def observations_of(patient: Any) -> Any:
    return om.Observation.objects.filter(patient=patient)

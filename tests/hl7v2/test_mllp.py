"""A real MLLP conversation over loopback with the listener running in a thread."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from careloop.hl7v2 import ack, mllp, services
from careloop.hl7v2 import models as hm
from careloop.patients import models as pm
from tests.hl7v2.helpers import msa

LIMIT = 4096


def _msg(control_id: str, number: str = "M100") -> bytes:
    return (
        f"MSH|^~\\&|HIS|RMYY|CareLoop|CL|20240101120000||ADT^A04^ADT_A01|{control_id}|P|2.5\r"
        f"PID|1||{number}^^^RMYY^MR||Li^Lei||19700101|M\r"
    ).encode()


class Conversation:
    """The client talks from a thread; the test thread applies what the listener receives, so
    the messages land in the test's own database transaction."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.inbox: queue.Queue[tuple[bytes, str, queue.Queue[bytes]]] = queue.Queue()

    def handle(self, raw: bytes, peer: str) -> bytes:
        reply: queue.Queue[bytes] = queue.Queue()
        self.inbox.put((raw, peer, reply))
        return reply.get(timeout=10)

    def run(self, client: Callable[[], None]) -> None:
        problems: list[BaseException] = []

        def talk() -> None:
            try:
                client()
            except BaseException as exc:  # noqa: BLE001 - reported in the test thread
                problems.append(exc)

        thread = threading.Thread(target=talk)
        thread.start()
        while thread.is_alive() or not self.inbox.empty():
            try:
                raw, peer, reply = self.inbox.get(timeout=0.01)
            except queue.Empty:
                continue
            answer, _log = services.receive(raw, self.world.org, channel="mllp", peer=peer)
            reply.put(answer.encode())
        thread.join()
        if problems:
            raise problems[0]


@pytest.fixture
def listener(world: Any) -> Iterator[tuple[tuple[str, int], Conversation]]:
    talk = Conversation(world)
    handle = talk.handle

    def too_large() -> bytes:
        return ack.build("AR", "the message is too large").encode()

    server = mllp.Listener(("127.0.0.1", 0), handle, too_large, max_bytes=LIMIT, idle_timeout=5)
    server.start_in_thread()
    yield (server.server_address[0], server.server_address[1]), talk
    server.shutdown()
    server.server_close()


def _read_frame(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(mllp.END):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(mllp.START) and data.endswith(mllp.END), data
    return data[1:-2]


def test_conversation(listener: Any, world: Any) -> None:
    address, talk = listener
    talk.run(lambda: _conversation(address))
    assert pm.Patient.objects.filter(organisation=world.org).count() == 2
    assert hm.Message.objects.filter(status=hm.Status.REJECTED).count() == 1
    assert hm.Message.objects.count() == 3


def _conversation(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        framed = mllp.frame(_msg("T1"))
        # One frame split over three TCP writes.
        for part in (framed[:5], framed[5:40], framed[40:]):
            sock.sendall(part)
        code, control_id, _ = msa(_read_frame(sock).decode())
        assert (code, control_id) == ("AA", "T1")
        # Two messages in one write on the same connection; answered in order.
        sock.sendall(mllp.frame(_msg("T2", "M200")) + mllp.frame(b"garbage, not HL7"))
        assert msa(_read_frame(sock).decode())[:2] == ("AA", "T2")
        code, _, text = msa(_read_frame(sock).decode())
        assert code == "AR" and "MSH" in text
        # The same message again: the first answer, nothing applied twice.
        sock.sendall(mllp.frame(_msg("T1")))
        assert msa(_read_frame(sock).decode())[:2] == ("AA", "T1")


def test_oversize_frame_is_refused(listener: Any, world: Any) -> None:
    address, talk = listener

    def client() -> None:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(mllp.START + b"MSH|" + b"x" * (LIMIT + 10))
            code, _, text = msa(_read_frame(sock).decode())
            assert code == "AR" and "too large" in text
            assert sock.recv(10) == b""  # the listener closed the connection

    talk.run(client)
    assert not pm.Patient.objects.filter(organisation=world.org).exists()


def test_concurrent_connections(listener: Any, world: Any) -> None:
    address, talk = listener
    talk.run(lambda: _two_at_once(address))
    assert pm.Patient.objects.filter(organisation=world.org).count() == 2


def _two_at_once(address: tuple[str, int]) -> None:
    a = socket.create_connection(address, timeout=5)
    b = socket.create_connection(address, timeout=5)
    try:
        a.sendall(mllp.frame(_msg("C1", "M301"))[:10])  # a half-sent frame holds nobody up
        b.sendall(mllp.frame(_msg("C2", "M302")))
        assert msa(_read_frame(b).decode())[:2] == ("AA", "C2")
        a.sendall(mllp.frame(_msg("C1", "M301"))[10:])
        assert msa(_read_frame(a).decode())[:2] == ("AA", "C1")
    finally:
        a.close()
        b.close()

"""MLLP: HL7 v2 over TCP. Each message travels as 0x0B <message> 0x1C 0x0D; the answer likewise.

One thread per connection; a connection may carry any number of messages; reads may split a
frame anywhere. A frame larger than the limit is answered with AR and the connection closed.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable

from django.db import close_old_connections

START, END = b"\x0b", b"\x1c\x0d"

log = logging.getLogger("careloop.hl7v2")

Handler = Callable[[bytes, str], bytes]


def frame(payload: bytes) -> bytes:
    return START + payload + END


class FrameTooLarge(Exception):
    pass


class Deframer:
    """Collects bytes and yields complete messages; bytes outside a frame are ignored."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.inside = False

    def feed(self, chunk: bytes) -> list[bytes]:
        found: list[bytes] = []
        self.buffer += chunk
        while True:
            if not self.inside:
                at = self.buffer.find(START)
                if at == -1:
                    self.buffer.clear()
                    return found
                del self.buffer[: at + 1]
                self.inside = True
            end = self.buffer.find(END)
            if end == -1:
                if len(self.buffer) > self.limit:
                    raise FrameTooLarge()
                return found
            if end > self.limit:
                raise FrameTooLarge()
            found.append(bytes(self.buffer[:end]))
            del self.buffer[: end + 2]
            self.inside = False


class _Connection(socketserver.BaseRequestHandler):
    server: Listener

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(self.server.idle_timeout)
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        deframer = Deframer(self.server.max_bytes)
        try:
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                try:
                    messages = deframer.feed(chunk)
                except FrameTooLarge:
                    sock.sendall(frame(self.server.too_large()))
                    return
                for message in messages:
                    try:
                        answer = self.server.handler(message, peer)
                    finally:
                        close_old_connections()
                    sock.sendall(frame(answer))
        except OSError as exc:
            log.info("hl7v2 connection %s ended: %s", peer, exc)


class Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        too_large: Callable[[], bytes],
        *,
        max_bytes: int,
        idle_timeout: float = 300.0,
    ) -> None:
        self.handler = handler
        self.too_large = too_large
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        super().__init__(address, _Connection)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="hl7v2-mllp")
        thread.start()
        return thread

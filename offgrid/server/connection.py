"""Connections under limits: a cap on how many are open at once, in all and from one address,
and deadlines for reading each request, so that slow or silent clients cannot hold the server's
threads."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..config import Settings
from .errors import ServiceUnavailable

REFUSAL_SECONDS = 1.0  # how long a connection over the cap gets to send its request


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket until a deadline: a client that trickles bytes is cut off when the
    time is up, not only when it falls silent."""

    def __init__(self, connection: socket.socket):
        self._connection = connection
        self.deadline = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the client took too long to send its request")
        self._connection.settimeout(remaining)
        return self._connection.recv_into(buffer)


class GuardedHandler(BaseHTTPRequestHandler):
    """The request line and headers must arrive within header_timeout of when the server starts
    waiting for them (so an idle keep-alive connection is closed then too), the body within
    body_timeout; each write of the answer may block for at most body_timeout."""

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.server.settings.header_timeout
        super().handle_one_request()

    def reading_body(self) -> None:
        self._reader.deadline = time.monotonic() + self.server.settings.body_timeout

    def answering(self) -> None:
        self.connection.settimeout(self.server.settings.body_timeout)


class GuardedServer(ThreadingHTTPServer):
    """Past max_connections open connections, or max_connections_per_address from one address,
    a new one is answered 503 and closed."""

    def __init__(self, settings: Settings, handler: type[GuardedHandler]):
        self.settings = settings
        self._open = 0
        self._open_by_address: Counter[str] = Counter()
        self._open_lock = threading.Lock()
        super().__init__((settings.host, settings.port), handler)

    def process_request(self, request, client_address) -> None:
        address = client_address[0]
        with self._open_lock:
            accepted = (self._open < self.settings.max_connections and
                        self._open_by_address[address]
                        < self.settings.max_connections_per_address)
            if accepted:
                self._open += 1
                self._open_by_address[address] += 1
        if accepted:
            super().process_request(request, client_address)
        else:
            threading.Thread(target=_refuse, args=(request,), name="refuse", daemon=True).start()

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            address = client_address[0]
            with self._open_lock:
                self._open -= 1
                self._open_by_address[address] -= 1
                if not self._open_by_address[address]:
                    del self._open_by_address[address]


def _refuse(connection: socket.socket) -> None:
    error = ServiceUnavailable("Too many open connections; retry in a moment", retry_after=1,
                               code="too_many_connections")
    body = json.dumps(error.body()).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    try:
        connection.settimeout(REFUSAL_SECONDS)
        try:
            connection.recv(65536)  # read the request, so that closing does not reset the answer
        except TimeoutError:
            pass
        connection.sendall(head.encode() + body)
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        connection.close()

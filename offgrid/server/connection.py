"""Connections under limits and requests read strictly. A cap on how many connections are open
at once, in all and from one address; deadlines for reading each request, so that slow or silent
clients cannot hold the server's threads; and a request line and headers parsed the way strict
proxies parse them, so that no request can be read two ways."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from collections import Counter
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..config import Settings
from .errors import BadRequest, RequestTimeout, ServiceUnavailable
from .proxies import TrustedProxies

REFUSAL_SECONDS = 1.0  # how long a connection over the cap gets to send its request
# How long a refused request's body is drained before closing: time for a client on a fast link
# to finish sending what it had started, little for a hostile one to hold a thread.
LINGER_SECONDS = 2.0

# RFC 9112: a method and a header name are tokens; a target is visible ASCII; a header value
# holds no control character but tab; a line ends with CRLF, or LF alone, never CR alone.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"%s (?P<target>[\x21-\x7e]+) HTTP/(?P<major>[0-9])\.[0-9]\r?\n"
                           % _TOKEN)
_HEADER_LINE = re.compile(rb"%s:[\t\x20-\x7e\x80-\xff]*\r?\n" % _TOKEN)


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
    waiting for them (so an idle keep-alive connection is closed then too), the first byte of
    the body within header_timeout after them and the whole body within body_timeout; each
    write of the answer may block for at most body_timeout.

    A request whose body is left unread (it was refused) ends the connection, since what
    remains of it would be read as the next request; the client may still be sending that body,
    so the connection lingers to take it in before closing, and the client reads the refusal
    rather than a reset."""

    default_request_version = "HTTP/1.0"  # so that every refusal has a status line
    # An answer goes out as headers, then body: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, about 40 ms on every request of a kept-alive
    # connection (what the SDKs use). TCP_NODELAY sends each write at once.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self._drain_on_close = False

    def handle(self) -> None:
        super().handle()
        if self._drain_on_close:
            self._drain()

    def handle_one_request(self) -> None:
        if not self.server.wait_for_next(self.connection):  # closing: no next request here
            self.close_connection = True
            return
        self._reader.deadline = time.monotonic() + self.server.settings.header_timeout
        self._body_unread = True
        self._expects_continue = False
        try:
            super().handle_one_request()
        finally:
            self.server.got_request(self.connection)

    def parse_request(self) -> bool:
        self.server.got_request(self.connection)  # closing now lets this one be answered
        if self.raw_requestline in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore one empty line
            self.raw_requestline = self.rfile.readline(65537)
        refusal = _request_line_problem(self.raw_requestline)
        if refusal:
            self.command, self.request_version = None, self.default_request_version
            self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
            self.send_error(*refusal)
            return False
        header_lines = _LineRecorder(self.rfile)
        self.rfile = header_lines  # for the header lines http.server reads next
        try:
            if not super().parse_request():
                return False
        except TimeoutError:  # the headers did not come in time: no answer, nothing to drain
            self._body_unread = False
            raise
        finally:
            self.rfile = header_lines.source
        problem = _header_problem(header_lines.lines, self.headers,
                                  needs_host=self.request_version != "HTTP/1.0")
        if problem:
            self.send_error(HTTPStatus.BAD_REQUEST, problem)
            return False
        return True

    def handle_expect_100(self) -> bool:
        self._expects_continue = True  # told to go on only once the body is wanted: read_body
        return True

    def read_body(self, size: int) -> bytes:
        """The request's body of `size` bytes; 408 if it is too slow, 400 if it ends early."""
        if size == 0:
            self._body_unread = False
            return b""
        if self._expects_continue:
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        started = time.monotonic()
        settings = self.server.settings
        try:
            self._reader.deadline = started + min(settings.header_timeout, settings.body_timeout)
            self.rfile.peek(1)
            self._reader.deadline = started + settings.body_timeout
            body = self.rfile.read(size)
        except TimeoutError:
            raise RequestTimeout("The request body did not arrive in time") from None
        if len(body) < size:
            raise framing_error(f"The request body ended after {len(body)} of its {size} bytes")
        self._body_unread = False
        return body

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if self._body_unread:  # what is left of this request must not be read as the next one
            self.send_header("Connection", "close")  # which sets close_connection
            self._drain_on_close = True
        elif self.server.closing:  # so that a balancer sends its next request elsewhere
            self.send_header("Connection", "close")

    def answering(self) -> None:
        self.connection.settimeout(self.server.settings.body_timeout)

    def _drain(self) -> None:
        """Tell the client the answer is complete (shut our side), then read and discard what it
        still sends, for LINGER_SECONDS at most: closing a socket with unread data resets the
        connection, and a reset can destroy the answer before the client has read it."""
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass


def framing_error(message: str) -> BadRequest:
    """A request whose end cannot be told for sure: the code http.server's own 400s have."""
    return BadRequest(message, code="bad_request")


def _request_line_problem(line: bytes) -> tuple[HTTPStatus, str] | None:
    found = _REQUEST_LINE.fullmatch(line)
    if found is None:
        return HTTPStatus.BAD_REQUEST, "The request line must be `METHOD target HTTP/1.x`"
    if found["major"] != b"1":
        return HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "Only HTTP/1.0 and HTTP/1.1 are supported"
    try:
        urlsplit(found["target"].decode())
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return HTTPStatus.BAD_REQUEST, "The request target is not a valid URL"
    return None


class _LineRecorder:
    """Passes on the lines read from `source`, keeping them: the email parser that reads
    headers for http.server mends what it cannot read (a bare CR ends a line, a line without a
    colon starts the body), so the lines as sent are checked instead."""

    def __init__(self, source: io.BufferedReader):
        self.source = source
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line = self.source.readline(limit)
        self.lines.append(line)
        return line


def _header_problem(lines: list[bytes], headers: Message, needs_host: bool) -> str | None:
    """What makes these header lines ambiguous to read, if anything."""
    *fields, end = lines
    if end not in (b"\r\n", b"\n"):
        return "The request ended before its headers did"
    if not all(_HEADER_LINE.fullmatch(line) for line in fields):
        return ("Each header line must be `Name: value`, with no space before the colon, no "
                "control characters and no folded lines")
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1 or (needs_host and not hosts):
        return "An HTTP/1.1 request must have exactly one Host header"
    return None


class GuardedServer(ThreadingHTTPServer):
    """Past max_connections open connections, or max_connections_per_address from one address
    (a trusted proxy's excepted: it carries many clients), a new one is answered 503 and
    closed. Once closing, it closes the connections that wait for a next request, and every
    other one after its answer: a load balancer keeping connections open for later requests
    then sends them to another replica, rather than here to be refused."""

    def __init__(self, settings: Settings, handler: type[GuardedHandler], port: int):
        self.settings = settings
        self.proxies = TrustedProxies(settings.trusted_proxy_networks())
        self.closing = False
        self._waiting: set[socket.socket] = set()  # connections between two requests
        self._open = 0
        self._open_by_address: Counter[str] = Counter()
        self._open_lock = threading.Lock()
        super().__init__((settings.host, port), handler)

    def process_request(self, request, client_address) -> None:
        address = client_address[0]
        with self._open_lock:
            accepted = (self._open < self.settings.max_connections and (
                self._open_by_address[address] < self.settings.max_connections_per_address
                or self.proxies.trusts(address)))
            if accepted:
                self._open += 1
                self._open_by_address[address] += 1
        if accepted:
            super().process_request(request, client_address)
        else:
            threading.Thread(target=_refuse, args=(request,), name="refuse", daemon=True).start()

    def wait_for_next(self, connection: socket.socket) -> bool:
        """Count `connection` as waiting for a next request; False when closing."""
        with self._open_lock:
            if not self.closing:
                self._waiting.add(connection)
            return not self.closing

    def got_request(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._waiting.discard(connection)

    def close_waiting(self) -> None:
        """Closing: end the connections that wait for a next request (their threads see the
        end at once); the others end after their answers."""
        with self._open_lock:
            self.closing = True
            for connection in self._waiting:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:  # the client left already
                    pass

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

"""Request and Response on top of http.server: body limits, JSON, and Server-Sent Events written
with chunked transfer encoding so the connection stays open for the next request."""

from __future__ import annotations

import json
import re
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .connection import GuardedHandler, framing_error
from .errors import ApiError, BadRequest, LengthRequired, PayloadTooLarge


class ClientGone(Exception):
    """The client closed the connection while its request was being answered."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    connection: socket.socket
    id: str = ""
    route: str = "unmatched"  # the route pattern it matched, for logs and metrics
    address: str = ""  # the client's IP address
    caller: Any = None  # who is asking: set by the auth gate before the handler runs
    tokens_used: int = 0  # what the request cost, added up by the handler as it generates
    tokens_charged: int = 0  # how much of that has been counted against the caller's quota

    @classmethod
    def read(cls, handler: GuardedHandler, max_body: int, request_id: str
             ) -> "Request":
        url = urlsplit(handler.path)
        return cls(method=handler.command, path=url.path or "/", query=dict(parse_qsl(url.query)),
                   headers=handler.headers, body=_read_body(handler, max_body),
                   connection=handler.connection, id=request_id,
                   address=handler.client_address[0])

    def json(self) -> dict:
        """The body as a JSON object, or a 400 saying what is wrong with it."""
        if not self.body:
            raise BadRequest("The request body is empty; send a JSON object")
        try:
            value = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequest(f"The request body is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadRequest("The request body must be a JSON object")
        return value

    def client_gone(self) -> bool:
        """True once the client has closed its end of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


def _read_body(handler: GuardedHandler, max_body: int) -> bytes:
    """The body its one Content-Length header announces. Anything else a reader could take
    another way (a second length, a length beside Transfer-Encoding, digits int() would read but
    a proxy would not) is refused: the connection then closes rather than guess where the next
    request starts."""
    lengths = handler.headers.get_all("Content-Length") or []
    if "Transfer-Encoding" in handler.headers:
        if lengths:
            raise framing_error("Send either Content-Length or Transfer-Encoding, not both")
        raise LengthRequired("Send the request body with a Content-Length header")
    if len(lengths) > 1:
        raise framing_error("Send one Content-Length header, not several")
    length = lengths[0].strip(" \t") if lengths else "0"
    if not _DIGITS.fullmatch(length):
        raise framing_error(f"Invalid Content-Length header: {length!r}")
    if len(length) > 18 or int(length) > max_body:  # int() refuses thousands of digits
        raise PayloadTooLarge(f"The request body is over the limit of {max_body} bytes")
    return handler.read_body(int(length))


_DIGITS = re.compile("[0-9]+")  # not \d, nor int(): they take other digits, "_" and signs


class Response:
    """JSON, or text when `body` is a string."""

    def __init__(self, body=None, status: int = 200, headers: dict[str, str] | None = None,
                 content_type: str = "application/json"):
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        if isinstance(body, str):
            self.body = body.encode()
        else:
            self.body = b"" if body is None else json.dumps(body).encode()
        # Called just before the answer's last bytes are written: once a client has the whole
        # answer, what it cost is already counted.
        self.before_end: Callable[[], None] = lambda: None

    @classmethod
    def error(cls, error: ApiError) -> "Response":
        return cls(error.body(), error.status, error.headers)

    def send(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(self.status)
        if self.body:
            handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(self.body)))
        for name, value in self.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        self.before_end()
        if handler.command != "HEAD":
            handler.wfile.write(self.body)


class EventStream(Response):
    """An SSE response: each item of `events` (a JSON-able value) becomes one `data:` event, and
    `data: [DONE]` ends the stream. If the client goes away, `events` is closed, so a generator
    can clean up in its `finally`."""

    def __init__(self, events: Iterator, headers: dict[str, str] | None = None):
        super().__init__(None, 200, headers)
        self.events = events

    def send(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in self.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        try:
            for event in self.events:
                _write_chunk(handler, b"data: " + json.dumps(event).encode() + b"\n\n")
            self.before_end()
            _write_chunk(handler, b"data: [DONE]\n\n")
            handler.wfile.write(b"0\r\n\r\n")
        finally:
            self.events.close()


def _write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()

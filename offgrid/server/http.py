"""Request and Response on top of http.server: body limits, JSON, and streams (Server-Sent
Events, NDJSON) written with chunked transfer encoding so the connection stays open for the
next request."""

from __future__ import annotations

import email.policy
import json
import math
import re
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
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
    meter: Any = None  # counts the tokens it uses, against the caller's quotas: set by the gate

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
        value = parse_json(self.body)
        if not isinstance(value, dict):
            raise BadRequest("The request body must be a JSON object")
        return value

    def form(self) -> dict[str, "FormField"]:
        """A multipart/form-data body, by field name; a 400 when it is not one."""
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise BadRequest("Send the file as multipart/form-data", code="invalid_request")
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
            + self.body)
        if not message.is_multipart():
            raise BadRequest("The multipart body has no parts; is its boundary right?",
                             code="invalid_request")
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[name] = FormField(part.get_filename(), part.get_content_type(),
                                         part.get_payload(decode=True) or b"")
        return fields

    def client_gone(self) -> bool:
        """True once the client has closed its end of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


MAX_JSON_DEPTH = 64  # objects and arrays inside one another; deeper bodies are refused


def parse_json(body: bytes):
    """A JSON value that every later step can use as it is: finite numbers only (`NaN`,
    `Infinity` and `1e999` are not JSON numbers a client means), text that encodes as UTF-8
    (JSON's `\\ud800` escapes can spell lone surrogates, which llama.cpp's C strings cannot hold),
    and nesting no deeper than MAX_JSON_DEPTH; else a 400 naming the field."""
    try:
        value = json.loads(body, parse_constant=_not_a_number, parse_float=_finite)
    except RecursionError:
        raise BadRequest(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:  # bad JSON or UTF-8, an integer of thousands of digits, NaN
        raise BadRequest(f"The request body is not valid JSON: {error}") from None
    _check_structure(value)
    return value


def _not_a_number(constant: str):
    raise ValueError(f"{constant} is not a number JSON allows")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large a number")
    return number


def _check_structure(value) -> None:
    """Walk the parsed body without recursion: its depth, and every key and string in it."""
    pending = [(value, (), 1)] if isinstance(value, (dict, list)) else []
    while pending:
        node, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"The request body nests deeper than {MAX_JSON_DEPTH} levels",
                             code="invalid_value", param=field_name(path[:1]))
        for key, item in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(key, str) and not _encodable(key):
                raise _not_unicode(path + (key,))
            if isinstance(item, str):
                if not _encodable(item):
                    raise _not_unicode(path + (key,))
            elif isinstance(item, (dict, list)):
                pending.append((item, path + (key,), depth + 1))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _not_unicode(path: tuple) -> BadRequest:
    name = field_name(path)
    return BadRequest(f"Invalid value for '{name}': the text holds a lone UTF-16 surrogate "
                      "(\\ud800-\\udfff), which is not a character", code="invalid_value",
                      param=name)


def field_name(path: tuple) -> str | None:
    """("messages", 0, "content") -> "messages[0].content", as OpenAI names parameters."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name.encode("utf-8", "backslashreplace").decode("utf-8") or None


@dataclass(frozen=True)
class FormField:
    """One part of a multipart/form-data body."""
    filename: str | None
    content_type: str
    data: bytes


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
        if handler.command != "HEAD":
            handler.wfile.write(self.body)


@dataclass(frozen=True)
class NamedEvent:
    """An SSE event with an `event:` line before its data, as Anthropic's Messages and OpenAI's
    Responses streams send them."""
    name: str
    data: Any


class _Stream(Response):
    """A response written as it is made, with chunked transfer encoding: each item of `events`
    (a JSON-able value) is framed by `frame`, and `ending` closes the body. If the client goes
    away, `events` is closed, so a generator can clean up in its `finally`."""
    media_type = ""

    def __init__(self, events: Iterator, headers: dict[str, str] | None = None):
        super().__init__(None, 200, headers)
        self.events = events

    def frame(self, event) -> bytes:
        raise NotImplementedError

    def ending(self) -> bytes:
        return b""

    def send(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", self.media_type)
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("X-Accel-Buffering", "no")  # nginx passes each event on at once
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in self.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        try:
            for event in self.events:
                _write_chunk(handler, self.frame(event))
            if self.ending():
                _write_chunk(handler, self.ending())
            handler.wfile.write(b"0\r\n\r\n")
        finally:
            self.events.close()


class EventStream(_Stream):
    """Server-Sent Events: each event one `data:` line (a NamedEvent with its `event:` line
    first), and `data: [DONE]` ends the stream unless `end_marker` is off (a stream whose last
    event says it is the last)."""
    media_type = "text/event-stream"

    def __init__(self, events: Iterator, headers: dict[str, str] | None = None,
                 end_marker: bool = True):
        super().__init__(events, headers)
        self.end_marker = end_marker

    def frame(self, event) -> bytes:
        if isinstance(event, NamedEvent):
            return b"event: %s\ndata: %s\n\n" % (event.name.encode(),
                                                  json.dumps(event.data).encode())
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    def ending(self) -> bytes:
        return b"data: [DONE]\n\n" if self.end_marker else b""


class NdjsonStream(_Stream):
    """Newline-delimited JSON, as Ollama streams: one object a line, the last one saying so."""
    media_type = "application/x-ndjson"

    def frame(self, event) -> bytes:
        return json.dumps(event).encode() + b"\n"


def _write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()

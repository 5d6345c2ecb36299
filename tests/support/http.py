"""Talking to a server under test: JSON requests and streams through urllib, the API's error
shape, and raw bytes on a socket for what urllib would never send."""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from support.models import CHAT_MODEL


def request(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 120):
    """(status, headers, parsed JSON body or raw text)."""
    data = body if isinstance(body, bytes) else (
        json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, _parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, _parse(error.read())


def _parse(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def get(url: str, **kwargs):
    return request("GET", url, **kwargs)


def post(url: str, body, **kwargs):
    return request("POST", url, body, **kwargs)


def stream(url: str, body: dict, timeout: float = 120, headers: dict | None = None) -> list:
    """POST with stream=true; the parsed `data:` events, ending with the string "[DONE]"."""
    req = urllib.request.Request(url, data=json.dumps({**body, "stream": True}).encode(),
                                 method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    events = []
    with urllib.request.urlopen(req, timeout=timeout) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat_body(content: str, **params) -> dict:
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": content}], **params}


def assert_error(status: int, body, expected_status: int, code: str | None = None,
                 param: str | None = None) -> dict:
    """The one error shape of the API, with the expected status, code and param."""
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


# -- a stream the test can hang up on --------------------------------------------------------------

def open_stream(url: str, path: str, body: dict, headers: dict | None = None,
                timeout: float = 120) -> tuple[http.client.HTTPConnection,
                                               http.client.HTTPResponse]:
    """POST `body` with stream=true to `path` of the server at `url`; the connection and the
    response, whose lines the test reads as it likes."""
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(url).port, timeout=timeout)
    connection.request("POST", path, json.dumps({**body, "stream": True}),
                       {"Content-Type": "application/json", **(headers or {})})
    return connection, connection.getresponse()


def hang_up(connection: http.client.HTTPConnection) -> None:
    """Close the connection at once, as a client that goes away does."""
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()


# -- raw bytes ------------------------------------------------------------------------------------

def connect(url: str, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    """A socket to the server at `url`, from `source`, one of loopback's 127.0.0.0/8."""
    return socket.create_connection(("127.0.0.1", urlsplit(url).port), timeout=timeout,
                                    source_address=(source, 0))


def exchange(url: str, data: bytes, source: str = "127.0.0.1", timeout: float = 10) -> bytes:
    """Send bytes on a fresh connection; everything the server answers before closing it."""
    with connect(url, source, timeout) as sock:
        sock.sendall(data)
        return sock.makefile("rb").read()


STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [A-Za-z -]+\r\n")


def answers(reply: bytes) -> list[tuple[int, dict, object]]:
    """Each answer in `reply`, as (status, headers, JSON body); each must have a status line
    and a Content-Length."""
    found = []
    while reply:
        head, _, rest = reply.partition(b"\r\n\r\n")
        status_line = STATUS_LINE.match(head + b"\r\n")
        assert status_line, reply
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        size = int(headers["Content-Length"])
        found.append((int(status_line[1]), headers, json.loads(rest[:size])))
        reply = rest[size:]
    return found

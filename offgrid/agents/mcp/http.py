"""An MCP server reached over streamable HTTP (MCP 2025-03-26 and later).

Every message is a POST of JSON to the server's one URL, accepting `application/json` and
`text/event-stream` both (a server built on the official SDKs refuses a client that does not
name both, with 406). A request's reply comes back as a JSON body or on an SSE stream, where
the server may first send its own requests and notifications; each request is POSTed from a
thread of its own so that a slow reply never holds up another. Notifications and replies to the
server's requests are answered 202, at once.

initialize's response may carry an `Mcp-Session-Id`, sent back on every later request with
`MCP-Protocol-Version`; a 404 to a request that carried it means the server forgot the session
(it restarted, or the session timed out), and the session initializes again. The configured
headers go with every request. Replies are read bounded: a body or event over MAX_BODY_BYTES
is refused.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from urllib.parse import urlsplit

from .errors import McpClosed, McpError, McpProtocolError, McpSessionExpired
from .session import Peer, Transport

ACCEPT = "application/json, text/event-stream"
MAX_BODY_BYTES = 16 << 20
CONNECT_TIMEOUT_S = 30.0
# The session times each request out itself and hangs up on it; this only bounds a read that
# nobody waits for any more.
READ_TIMEOUT_S = 3600.0
CLOSE_TIMEOUT_S = 2.0
MAX_ERROR_BYTES = 64 << 10
ERROR_EXCERPT_CHARS = 300


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an MCP server's, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs are supported"
    if not parts.hostname:
        return "the URL names no host"
    if parts.username is not None or parts.password is not None:
        return "put credentials in headers, not in the URL"
    return None


class HttpTransport(Transport):
    def __init__(self, url: str, headers: dict[str, str] | None = None):
        problem = url_problem(url)
        if problem:
            raise ValueError(problem)
        parts = urlsplit(url)
        self._url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = dict(headers or {})
        self._peer: Peer | None = None
        self._protocol_version: str | None = None
        self._lock = threading.Lock()
        self._open: dict[int, http.client.HTTPConnection] = {}  # requests waiting for replies
        self._abandoned: set[int] = set()
        self._closed = False

    def open(self, peer: Peer) -> None:
        self._peer = peer  # nothing to connect to before the first POST

    def negotiated(self, protocol_version: str) -> None:
        self._protocol_version = protocol_version

    def send(self, message: dict) -> None:
        if self._closed:
            raise McpClosed("the session was closed")
        if "method" in message and "id" in message:
            threading.Thread(target=self._request, args=(message,), daemon=True,
                             name=f"mcp-http-{message['id']}").start()
        else:
            self._post(message, None)

    def abandon(self, request_id: int) -> None:
        with self._lock:
            self._abandoned.add(request_id)
            connection = self._open.get(request_id)
        if connection is not None:
            _hang_up(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._open.values())
        for connection in connections:
            _hang_up(connection)
        if self.session_id is not None:  # the specification asks clients to end sessions
            try:
                connection = self._connect(CLOSE_TIMEOUT_S)
                connection.request("DELETE", self._path, headers=self._request_headers(False))
                connection.getresponse().read(MAX_BODY_BYTES)
                connection.close()
            except (McpError, OSError, http.client.HTTPException):
                pass  # gone already
            self.session_id = None

    # -- one POST -----------------------------------------------------------------------------

    def _request(self, message: dict) -> None:
        request_id = message["id"]
        try:
            answered = self._post(message, request_id)
        except McpError as error:
            answered, failure = False, error
        else:
            failure = McpProtocolError(f"{message['method']}: the server ended its reply "
                                       "without answering")
        with self._lock:
            abandoned = request_id in self._abandoned or self._closed
            self._abandoned.discard(request_id)
        if answered or abandoned:
            return
        if isinstance(failure, McpClosed) and not isinstance(failure, McpSessionExpired):
            self._peer.lost(failure)
        else:
            self._peer.request_failed(request_id, failure)

    def _post(self, message: dict, request_id: int | None) -> bool:
        """POST one message; whether the reply to `request_id` came back."""
        initialize = message.get("method") == "initialize"
        headers = self._request_headers(initialize)
        connection = self._connect(CONNECT_TIMEOUT_S)
        if request_id is not None:
            with self._lock:
                self._open[request_id] = connection
        try:
            connection.request("POST", self._path, json.dumps(message).encode(), headers)
            connection.sock.settimeout(READ_TIMEOUT_S)
            response = connection.getresponse()
            if initialize:
                self.session_id = response.getheader("Mcp-Session-Id")
            return self._read_reply(response, headers.get("Mcp-Session-Id"), request_id)
        except (OSError, http.client.HTTPException) as error:
            raise McpClosed(f"cannot reach {self._url}: {error}") from None
        finally:
            connection.close()
            if request_id is not None:
                with self._lock:
                    self._open.pop(request_id, None)

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=timeout)
        try:
            connection.connect()
        except OSError as error:
            raise McpClosed(f"cannot reach {self._url}: {error}") from None
        return connection

    def _request_headers(self, initialize: bool) -> dict[str, str]:
        headers = {**self._headers, "Content-Type": "application/json", "Accept": ACCEPT}
        if not initialize:  # initialize starts a session: it carries none
            if self.session_id is not None:
                headers["Mcp-Session-Id"] = self.session_id
            if self._protocol_version is not None:
                headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    def _read_reply(self, response: http.client.HTTPResponse, session_id: str | None,
                    request_id: int | None) -> bool:
        if response.status == 404 and session_id is not None:
            raise McpSessionExpired(session_id)
        if response.status == 202:
            return False
        if not 200 <= response.status < 300:
            return self._read_refusal(response, request_id)
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "text/event-stream":
            return self._read_events(response, request_id)
        if kind == "application/json":
            body = response.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise McpProtocolError(f"a reply of more than {MAX_BODY_BYTES} bytes")
            message = _json(body)
            self._peer.receive(message)
            return _answers(message, request_id)
        if request_id is None:
            return False  # a notification's acknowledgement, whatever its type
        raise McpProtocolError(f"a reply of type {kind or 'none'!r}, neither JSON nor SSE")

    def _read_refusal(self, response: http.client.HTTPResponse, request_id: int | None) -> bool:
        """An HTTP error status: a JSON-RPC error for the request goes to the peer like any
        reply (the official SDKs send one with their 400s), anything else is an McpError."""
        body = response.read(MAX_ERROR_BYTES)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            message = None
        if _answers(message, request_id):
            self._peer.receive(message)
            return True
        excerpt = body[:ERROR_EXCERPT_CHARS].decode(errors="replace").strip()
        raise McpError(f"HTTP {response.status} {response.reason} from {self._url}: {excerpt}")

    def _read_events(self, response: http.client.HTTPResponse, request_id: int | None) -> bool:
        """Hand each event's message to the peer, until the one that answers `request_id`."""
        data: list[bytes] = []
        size = 0
        while True:
            line = response.readline(MAX_BODY_BYTES + 1)
            if not line:
                return False
            size += len(line)
            if size > MAX_BODY_BYTES:
                raise McpProtocolError(f"an event of more than {MAX_BODY_BYTES} bytes")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif not line:  # an event ends: its data lines together are one message
                payload = b"\n".join(data)
                if payload.strip():  # not a resumable stream's empty priming event
                    message = _json(payload)
                    self._peer.receive(message)
                    if _answers(message, request_id):
                        return True
                data, size = [], 0
            # event:, id:, retry: and comments carry nothing a client without resumption needs


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise McpProtocolError("a reply that is not JSON") from None


def _answers(message: object, request_id: int | None) -> bool:
    messages = message if isinstance(message, list) else [message]
    return request_id is not None and any(
        isinstance(each, dict) and each.get("id") == request_id and "method" not in each
        for each in messages)


def _hang_up(connection: http.client.HTTPConnection) -> None:
    try:
        if connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

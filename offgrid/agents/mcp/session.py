"""A JSON-RPC 2.0 session with one MCP server, over a transport (stdio.py, http.py).

Requests get increasing ids and wait for the reply of the same id, each with its own timeout;
one that times out or is cancelled by the caller is given up, and the server is told so with
`notifications/cancelled`. Whatever else the server sends is handled here too: its requests
(`ping` is answered, anything else refused with -32601, since OffGrid offers the server no
capabilities), its logs (the last few kept for the status) and its notifications (skipped, but
for the tool list changing). When the transport loses the connection every waiting request
fails at once.

On top of that: `initialize` (offering 2025-11-25, accepting what the server negotiates down
to), `tools/list` across pages, and `tools/call` mapped into the ToolResult agents read.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..tools import ToolResult
from .errors import (
    McpCancelled,
    McpClosed,
    McpError,
    McpProtocolError,
    McpRemoteError,
    McpSessionExpired,
    McpTimeout,
)

PROTOCOL_VERSION = "2025-11-25"  # what OffGrid offers
# What a server may negotiate down to: the revisions whose tools and transports we speak.
SUPPORTED_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
METHOD_NOT_FOUND = -32601
CANCEL_POLL_S = 0.1  # how often a waiting request looks at the caller's `cancelled` event
LOGS_KEPT = 10
LOG_CHARS = 500
MAX_PAGES = 100  # tools/list pages followed, against a server whose cursor never ends


class Peer(ABC):
    """What a transport reports to its session."""

    @abstractmethod
    def receive(self, message: object) -> None:
        """A JSON value the server sent: a message, or a batch of them."""

    @abstractmethod
    def request_failed(self, request_id: int, error: McpError) -> None:
        """That request will get no reply (an HTTP error, a stream that ended without one)."""

    @abstractmethod
    def lost(self, error: McpError) -> None:
        """The connection is gone: nothing more will come."""


class Transport(ABC):
    """Carries JSON-RPC messages between a session and one server."""

    session_id: str | None = None  # streamable HTTP's Mcp-Session-Id; stdio has none

    @abstractmethod
    def open(self, peer: Peer) -> None:
        """Connect; from now on what the server sends goes to `peer`. Raises McpClosed if the
        server cannot be reached or started."""

    @abstractmethod
    def send(self, message: dict) -> None:
        """Send one message; a request's reply comes to the peer. Raises McpClosed if the
        message cannot be sent."""

    @abstractmethod
    def abandon(self, request_id: int) -> None:
        """The session stopped waiting for that request's reply."""

    @abstractmethod
    def negotiated(self, protocol_version: str) -> None:
        """initialize settled on this protocol version."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect, and stop what was started. The peer hears nothing more."""


@dataclass
class _Pending:
    method: str
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: McpError | None = None

    def settle(self, result: dict | None = None, error: McpError | None = None) -> None:
        if not self.done.is_set():  # the first answer counts
            self.result, self.error = result, error
            self.done.set()


class McpSession(Peer):
    """One connection's JSON-RPC traffic; thread-safe, requests may be made from any thread."""

    def __init__(self, transport: Transport, *, client_version: str,
                 on_lost: Callable[[McpError], None] | None = None,
                 on_tools_changed: Callable[[], None] | None = None):
        self._transport = transport
        self._client_version = client_version
        self._on_lost = on_lost  # called before the waiting requests fail
        self._on_tools_changed = on_tools_changed
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._initializing = threading.Lock()
        self._ended: McpError | None = None
        self._logs: deque[dict] = deque(maxlen=LOGS_KEPT)
        self.protocol_version: str | None = None
        self.server_info: dict = {}
        self.capabilities: dict = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Connect and initialize; on failure everything started is stopped again."""
        try:
            self._transport.open(self)
            self.initialize(timeout)
        except BaseException:
            self.close()
            raise

    def initialize(self, timeout: float) -> None:
        result = self._request_once("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "offgrid", "version": self._client_version}},
            time.monotonic() + timeout, None)
        version = result.get("protocolVersion")
        if version not in SUPPORTED_VERSIONS:
            raise McpProtocolError(f"the server speaks MCP {version!r}; OffGrid speaks "
                                   f"{', '.join(SUPPORTED_VERSIONS)}")
        self.protocol_version = version
        self.server_info = _object(result.get("serverInfo"))
        self.capabilities = _object(result.get("capabilities"))
        self._transport.negotiated(version)
        self.notify("notifications/initialized")

    def close(self) -> None:
        self._end(McpClosed("the session was closed"), report=False)
        self._transport.close()

    def recent_logs(self) -> list[dict]:
        """The server's last log messages: level, logger, data (cut short)."""
        with self._lock:
            return list(self._logs)

    @property
    def ended(self) -> McpError | None:
        """Why the session ended, once it has."""
        return self._ended

    # -- requests -----------------------------------------------------------------------------

    def request(self, method: str, params: dict | None, timeout: float,
                cancelled: threading.Event | None = None) -> dict:
        """The result of `method`, or McpRemoteError, McpTimeout, McpCancelled, McpClosed.
        An HTTP server that forgot our session is initialized again, once, and asked again."""
        deadline = time.monotonic() + timeout
        try:
            return self._request_once(method, params, deadline, cancelled)
        except McpSessionExpired as expired:
            self._initialize_again(expired.session_id, deadline)
            return self._request_once(method, params, deadline, cancelled)

    def notify(self, method: str, params: dict | None = None) -> None:
        self._transport.send(_message(method=method, params=params))

    def list_tools(self, timeout: float) -> list[dict]:
        """Every tool of the server, following `nextCursor`; entries without a name dropped.
        A server that offers no tools capability (only resources, say) is not asked."""
        if "tools" not in self.capabilities:
            return []
        deadline = time.monotonic() + timeout
        tools, cursor, seen = [], None, set()
        for _ in range(MAX_PAGES):
            page = self.request("tools/list", {"cursor": cursor} if cursor else None,
                                max(deadline - time.monotonic(), 0))
            listed = page.get("tools")
            listed = listed if isinstance(listed, list) else []
            tools += [tool for tool in listed
                      if isinstance(tool, dict) and isinstance(tool.get("name"), str)]
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen:
                break
            seen.add(cursor)
        return tools

    def call_tool(self, name: str, arguments: dict, timeout: float,
                  cancelled: threading.Event | None = None) -> ToolResult:
        return tool_result(self.request("tools/call", {"name": name, "arguments": arguments},
                                        timeout, cancelled))

    def _request_once(self, method: str, params: dict | None, deadline: float,
                      cancelled: threading.Event | None) -> dict:
        request_id, pending = next(self._ids), _Pending(method)
        with self._lock:
            if self._ended is not None:
                raise McpClosed(str(self._ended))
            self._pending[request_id] = pending
        try:
            self._transport.send(_message(id=request_id, method=method, params=params))
            self._wait(pending, deadline, cancelled)
        except (McpTimeout, McpCancelled) as gave_up:
            self._give_up(request_id, method, str(gave_up))
            raise
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _wait(self, pending: _Pending, deadline: float,
              cancelled: threading.Event | None) -> None:
        # An Event has no callbacks: with a `cancelled` to watch, wake up now and then.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise McpTimeout(f"{pending.method}: no reply in time")
            if pending.done.wait(min(remaining, CANCEL_POLL_S) if cancelled else remaining):
                return
            if cancelled is not None and cancelled.is_set():
                raise McpCancelled(f"{pending.method}: cancelled")

    def _give_up(self, request_id: int, method: str, reason: str) -> None:
        self._transport.abandon(request_id)
        if method == "initialize":  # the one request the protocol forbids cancelling
            return
        try:
            self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason})
        except McpError:
            pass  # the connection is going anyway

    def _initialize_again(self, expired_session: str, deadline: float) -> None:
        with self._initializing:  # concurrent requests that hit the 404 initialize once
            if self._transport.session_id == expired_session:
                self.initialize(max(deadline - time.monotonic(), 0))

    # -- what the server sends -----------------------------------------------------------------

    def receive(self, message: object) -> None:
        if isinstance(message, list):
            for each in message:
                self.receive(each)
        elif isinstance(message, dict):
            method = message.get("method")
            if isinstance(method, str):
                if "id" in message:
                    self._answer(message["id"], method)
                else:
                    self._notified(method, message.get("params"))
            elif "id" in message:
                self._resolve(message)

    def request_failed(self, request_id: int, error: McpError) -> None:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is not None:
            pending.settle(error=error)

    def lost(self, error: McpError) -> None:
        self._end(error, report=True)

    def _end(self, error: McpError, report: bool) -> None:
        with self._lock:
            if self._ended is not None:
                return
            self._ended = error
            waiting = list(self._pending.values())
        if report and self._on_lost is not None:
            self._on_lost(error)
        for pending in waiting:
            pending.settle(error=McpClosed(str(error)))

    def _answer(self, request_id: object, method: str) -> None:
        if method == "ping":
            reply = _message(id=request_id, result={})
        else:
            reply = _message(id=request_id, error={"code": METHOD_NOT_FOUND,
                                                   "message": f"Method not found: {method}"})
        try:
            self._transport.send(reply)
        except McpError:
            pass  # the transport reports the lost connection on its own

    def _notified(self, method: str, params: object) -> None:
        params = _object(params)
        if method == "notifications/message":
            data = params.get("data")
            with self._lock:
                self._logs.append({"level": str(params.get("level", "")),
                                   "logger": str(params.get("logger") or ""),
                                   "data": (data if isinstance(data, str)
                                            else json.dumps(data))[:LOG_CHARS]})
        elif method == "notifications/tools/list_changed" and self._on_tools_changed:
            self._on_tools_changed()

    def _resolve(self, message: dict) -> None:
        request_id = message["id"]
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return  # not an id of ours
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return  # a late reply to a request given up
        error, result = message.get("error"), message.get("result")
        if isinstance(error, dict):
            pending.settle(error=McpRemoteError(pending.method, _int(error.get("code")),
                                                str(error.get("message", "")),
                                                error.get("data")))
        elif isinstance(result, dict):
            pending.settle(result=result)
        else:
            pending.settle(error=McpProtocolError(f"{pending.method}: a reply with no result"))


# -- tools/call's result, as agents read it -------------------------------------------------------

def tool_result(result: dict) -> ToolResult:
    """The text the model reads: text content joined, other content described; with no text
    content, the structured content as JSON. The content items and structured content are
    kept as they came."""
    content = tuple(item for item in result.get("content") or () if isinstance(item, dict))
    structured = result.get("structuredContent")
    parts = [_describe(item) for item in content]
    if structured is not None and not any(item.get("type") == "text" for item in content):
        parts.append(json.dumps(structured, ensure_ascii=False))
    return ToolResult("\n".join(parts), is_error=result.get("isError") is True,
                      content=content, structured=structured)


def _describe(item: dict) -> str:
    kind = item.get("type")
    if kind == "text":
        return str(item.get("text", ""))
    if kind in ("image", "audio"):
        return f"[{kind}: {item.get('mimeType', 'of unknown type')}, {_size(item.get('data'))}]"
    if kind == "resource":
        resource = _object(item.get("resource"))
        uri = resource.get("uri", "")
        if isinstance(resource.get("text"), str):
            return f"[resource: {uri}]\n{resource['text']}"
        return (f"[resource: {uri}, {resource.get('mimeType', 'of unknown type')}, "
                f"{_size(resource.get('blob'))}]")
    if kind == "resource_link":
        name = f" ({item['name']})" if item.get("name") else ""
        return f"[resource link: {item.get('uri', '')}{name}, " \
               f"{item.get('mimeType', 'of unknown type')}]"
    return f"[{kind} content]"


def _size(data: object) -> str:
    try:
        if not isinstance(data, str):
            return "no data"
        return f"{len(base64.b64decode(''.join(data.split()), validate=True))} bytes"
    except (binascii.Error, ValueError):
        return "undecodable data"


def _message(**fields) -> dict:
    return {"jsonrpc": "2.0", **{name: value for name, value in fields.items()
                                 if value is not None or name == "id"}}


def _object(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

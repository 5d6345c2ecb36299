"""The MCP servers OffGrid connects to: those kept in the database, each connected by a thread
of its own (so a slow or broken one delays neither startup nor the others), restarted with
backoff when its connection is lost, and its tools offered to agents as `server__tool`.

A server's status says how it is doing (connecting, connected, crashed, failed, stopped),
with its tool count, its last error, the last lines of its stderr and its last log messages;
never the values of its `env` or `headers`, which may be credentials: a status names them only,
and any of those values found in what the server wrote is masked.

A call to the tool of a server that is down, or that fails, times out or is cancelled, comes
back as a ToolResult with is_error, for the model to read, never as an exception.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time

from ... import __version__
from ...engine import grammar
from ...engine.errors import InvalidGrammar
from ...store import agents as agents_store
from ...store.errors import Conflict, InvalidValue, Missing
from ..tools import MCP_SEPARATOR, Tool, ToolContext, ToolResult
from .errors import McpCancelled, McpError, McpTimeout
from .http import HttpTransport, url_problem
from .session import McpSession, Transport
from .stdio import StdioTransport, Tail

SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
NOT_IN_TOOL_NAMES = re.compile(r"[^A-Za-z0-9_-]")
TOOL_NAME_CHARS = 64
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
CONNECT_TIMEOUT_S = 30.0  # to start, initialize and list the tools
CALL_TIMEOUT_S = 60.0
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0
STABLE_S = 60.0  # connected this long, a server that crashes is restarted at once again
MIN_MASKED_CHARS = 4  # shorter env and header values are too common to mask
MASK = "***"

log = logging.getLogger("offgrid.mcp")


class McpManager:
    """The stored MCP servers' connections, and the face the API and the toolbox use."""

    def __init__(self, db, *, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self._db = db
        self._connect_timeout_s = connect_timeout_s
        self._servers: dict[str, ServerConnection] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect, in the background, to every stored server not connected yet."""
        for server in agents_store.mcp_servers(self._db):
            with self._lock:
                if server.name in self._servers:
                    continue
                connection = self._keep(server)
            connection.start()

    def add(self, server: agents_store.McpServer) -> dict:
        """Keep the server and connect to it in the background; its status."""
        check(server)
        with self._lock:
            if server.name in self._servers:
                raise Conflict(f"There is already an MCP server named {server.name!r}",
                               "mcp_server_exists")
            agents_store.add_mcp_server(self._db, server)  # Conflict if another process did
            connection = self._keep(server)
        connection.start()
        return connection.status()

    def _keep(self, server: agents_store.McpServer) -> ServerConnection:
        """(Under the lock.) The server's connection, not started yet."""
        self._servers[server.name] = ServerConnection(server, self._connect_timeout_s)
        return self._servers[server.name]

    def remove(self, name: str) -> None:
        """Forget the server and stop it."""
        with self._lock:
            connection = self._servers.pop(name, None)
            if not agents_store.remove_mcp_server(self._db, name) and connection is None:
                raise Missing(f"There is no MCP server named {name!r}")
        if connection is not None:
            connection.stop()

    def test(self, server: agents_store.McpServer, timeout: float | None = None) -> dict:
        """Connect, list the tools and disconnect, keeping nothing: whether it works."""
        check(server)
        timeout = self._connect_timeout_s if timeout is None else timeout
        stderr = Tail()
        session = McpSession(transport(server, stderr), client_version=__version__)
        mask = Mask(server)
        try:
            session.open(timeout)
            tools = tool_names(server.name, session.list_tools(timeout))
        except McpError as error:
            return {"ok": False, "tools": [], "error": mask(str(error)),
                    "stderr": mask.lines(stderr.lines())}
        finally:
            session.close()
        return {"ok": True, "error": None, "stderr": mask.lines(stderr.lines()),
                "server": session.server_info, "protocol_version": session.protocol_version,
                "tools": [{"name": name, "description": _description(remote),
                           "parameters": _parameters(remote)} for name, remote in tools]}

    def statuses(self) -> list[dict]:
        with self._lock:
            connections = list(self._servers.values())
        return [connection.status() for connection in connections]

    def status(self, name: str) -> dict:
        with self._lock:
            connection = self._servers.get(name)
        if connection is None:
            raise Missing(f"There is no MCP server named {name!r}")
        return connection.status()

    def tools(self) -> list[Tool]:
        """Every server's tools, as last listed (a server being restarted keeps its own: a
        call meanwhile says the server is down)."""
        with self._lock:
            connections = list(self._servers.values())
        return [tool for connection in connections for tool in connection.tools()]

    def close(self) -> None:
        """Stop every server, all at once; their statuses stay, as stopped."""
        with self._lock:
            connections = list(self._servers.values())
        stopping = [threading.Thread(target=connection.stop) for connection in connections]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


class ServerConnection:
    """One server: its connection, restarted when lost, until stopped."""

    def __init__(self, server: agents_store.McpServer, connect_timeout_s: float):
        self.server = server
        self._connect_timeout_s = connect_timeout_s
        self._mask = Mask(server)
        self._stderr = Tail()  # kept across restarts: the crash's last words stay readable
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ended = threading.Event()  # the current connection was lost (or stopping)
        self._thread = threading.Thread(target=self._run, name=f"mcp-{server.name}",
                                        daemon=True)
        self._state = "connecting"
        self._last_error: str | None = None
        self._session: McpSession | None = None
        self._transport: Transport | None = None
        self._tools: list[McpTool] = []
        self._attempts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:  # after this, no new connection is made
            self._stopping.set()
            session = self._session
        self._ended.set()
        if session is not None:
            session.close()  # ends a connection being made, too
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            self._state, self._tools = "stopped", []

    def tools(self) -> list[McpTool]:
        with self._lock:
            return list(self._tools)

    def status(self) -> dict:
        server = self.server
        with self._lock:
            session, transport = self._session, self._transport
            status = {"name": server.name, "transport": server.transport,
                      "status": self._state, "tools": len(self._tools),
                      "last_error": self._last_error, "restarts": max(self._attempts - 1, 0)}
        if server.transport == "stdio":
            status.update(command=server.command, args=list(server.args), cwd=server.cwd,
                          env=sorted(server.env),
                          exit_code=transport.exit_code if transport else None)
        else:
            status.update(url=server.url, headers=sorted(server.headers))
        status["stderr"] = self._mask.lines(self._stderr.lines())
        status["server"] = dict(session.server_info) if session else {}
        status["protocol_version"] = session.protocol_version if session else None
        status["logs"] = [{**log, "data": self._mask(log["data"])}
                          for log in (session.recent_logs() if session else [])]
        return status

    def call(self, tool: str, arguments: dict, timeout: float,
             cancelled: threading.Event) -> ToolResult:
        with self._lock:
            session = self._session if self._state == "connected" else None
            state, last_error = self._state, self._last_error
        name = self.server.name
        if session is None:
            why = f": {last_error}" if last_error else ""
            return ToolResult(f"The MCP server {name!r} is {state}{why}. Try again later.",
                              is_error=True)
        try:
            return session.call_tool(tool, arguments, timeout, cancelled)
        except McpTimeout:
            return ToolResult(f"The tool {tool!r} of MCP server {name!r} did not answer within "
                              f"{timeout:.3g} s; the call was cancelled.", is_error=True)
        except McpCancelled:
            return ToolResult("The call was cancelled.", is_error=True)
        except McpError as error:
            return ToolResult(f"The tool {tool!r} of MCP server {name!r} failed: "
                              f"{self._mask(str(error))}", is_error=True)

    # -- the connection's thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            check(self.server)  # one stored before a rule came in
        except InvalidValue as error:
            with self._lock:
                self._state, self._last_error = "failed", str(error)
            return
        backoff = Backoff()
        while not self._stopping.is_set():
            started = time.monotonic()
            self._connect_and_wait()
            if self._stopping.is_set():
                break
            delay = backoff.after(time.monotonic() - started)
            if self._state == "crashed":
                self._stderr.add(f"[offgrid] the server crashed; starting it again in {delay:g} s")
            if self._stopping.wait(delay):
                break

    def _connect_and_wait(self) -> None:
        """One connection, from start to loss (or stop)."""
        carrier = transport(self.server, self._stderr)
        session = McpSession(carrier, client_version=__version__,
                             on_lost=lambda error: self._lost(session, error),
                             on_tools_changed=self._tools_changed)
        with self._lock:
            if self._stopping.is_set():
                return
            self._ended.clear()
            self._state, self._attempts = "connecting", self._attempts + 1
            self._session, self._transport = session, carrier
        try:
            session.open(self._connect_timeout_s)
            tools = _tools(self, session.list_tools(self._connect_timeout_s))
        except McpError as error:
            session.close()
            with self._lock:
                self._state, self._last_error = "failed", self._mask(str(error))
            log.warning("MCP server %r failed: %s", self.server.name, self._last_error)
            return
        with self._lock:
            self._state, self._tools = "connected", tools
        log.info("MCP server %r connected: %d tools", self.server.name, len(tools))
        self._ended.wait()
        session.close()

    def _lost(self, session: McpSession, error: McpError) -> None:
        """From the transport's thread, before the calls waiting on the server fail."""
        with self._lock:
            if session is not self._session:
                return
            if self._state == "connected":
                self._state = "crashed"
                log.warning("MCP server %r crashed: %s", self.server.name, self._mask(str(error)))
            self._last_error = self._mask(str(error))
        self._ended.set()

    def _tools_changed(self) -> None:
        # From the transport's thread, which must go on reading: the reply to tools/list
        # comes through it.
        threading.Thread(target=self._list_tools_again, daemon=True).start()

    def _list_tools_again(self) -> None:
        with self._lock:
            session = self._session
        try:
            tools = _tools(self, session.list_tools(self._connect_timeout_s))
        except McpError:
            return  # a lost connection is reported on its own; the old list stays till then
        with self._lock:
            if self._session is session and self._state == "connected":
                self._tools = tools


class Backoff:
    """How long to wait before connecting again: 1 s, 2 s, 4 s ... at most a minute, and 1 s
    again after a connection that lasted a minute."""

    def __init__(self):
        self._next = FIRST_RESTART_DELAY_S

    def after(self, lasted_s: float) -> float:
        if lasted_s >= STABLE_S:
            self._next = FIRST_RESTART_DELAY_S
        delay, self._next = self._next, min(self._next * 2, MAX_RESTART_DELAY_S)
        return delay


class McpTool(Tool):
    """A tool of an MCP server, as agents see it."""

    admins_only = True  # it reaches whatever the server reaches
    timeout_s = CALL_TIMEOUT_S

    def __init__(self, connection: ServerConnection, name: str, remote: dict):
        self.name = name
        self.remote_name = remote["name"]
        self.server = connection.server.name
        self.description = _description(remote)
        self.parameters = _parameters(remote)
        self._connection = connection

    def call(self, arguments: dict, context: ToolContext) -> ToolResult:
        timeout = min(self.timeout_s, context.deadline - time.monotonic())
        if timeout <= 0:
            return ToolResult("No time was left for the call.", is_error=True)
        return self._connection.call(self.remote_name, arguments, timeout, context.cancelled)


# -- servers ------------------------------------------------------------------------------------

def check(server: agents_store.McpServer) -> None:
    """Refuse, with InvalidValue naming the field, what could not be an MCP server."""
    if not SERVER_NAME.fullmatch(server.name) or MCP_SEPARATOR in server.name \
            or server.name.endswith("_"):
        raise InvalidValue("name", "An MCP server's name is 1 to 32 letters, digits, '_' and "
                           "'-', with no '__' and not ending in '_' (its tools are named "
                           "server__tool)")
    if (server.command is None) == (server.url is None):
        raise InvalidValue("command", "Give an MCP server either a command (stdio) or a url "
                           "(streamable HTTP)")
    if server.command is not None:
        if not isinstance(server.command, str) or not server.command:
            raise InvalidValue("command", "The command must be a program's name or path")
        if not all(isinstance(arg, str) for arg in server.args):
            raise InvalidValue("args", "Each argument must be a string")
        if not all(isinstance(name, str) and name and "=" not in name and "\0" not in name
                   and isinstance(value, str) and "\0" not in value
                   for name, value in server.env.items()):
            raise InvalidValue("env", "Environment variables are names (no '=') with string "
                               "values")
    else:
        problem = url_problem(server.url) if isinstance(server.url, str) else "not a string"
        if problem:
            raise InvalidValue("url", f"Not an MCP server's URL: {problem}")
        if not all(isinstance(name, str) and HEADER_NAME.fullmatch(name)
                   and isinstance(value, str) and not re.search(r"[\r\n\0]", value)
                   for name, value in server.headers.items()):
            raise InvalidValue("headers", "Headers are HTTP header names with one-line values")


def transport(server: agents_store.McpServer, stderr: Tail) -> Transport:
    if server.transport == "stdio":
        return StdioTransport(server.command, server.args, server.env, server.cwd, stderr)
    return HttpTransport(server.url, server.headers)


class Mask:
    """Masks a server's env and header values (and their words: `Bearer <token>`) in text."""

    def __init__(self, server: agents_store.McpServer):
        values = [*server.env.values(), *server.headers.values()]
        secrets = {part for value in values for part in (value, *value.split())}
        # Longest first, so that a value is masked whole before any of its words.
        self._secrets = sorted((s for s in secrets if len(s) >= MIN_MASKED_CHARS),
                               key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def lines(self, lines: list[str]) -> list[str]:
        return [self(line) for line in lines]


# -- tools --------------------------------------------------------------------------------------

def tool_names(server: str, remote_tools: list[dict]) -> list[tuple[str, dict]]:
    """Each tool's OffGrid name, `server__tool`, in the characters OffGrid's tool names allow;
    one too long, or taken already, ends in a hash of the tool's own name instead."""
    named, taken, seen = [], set(), set()
    for remote in remote_tools:
        if remote["name"] in seen:  # listed twice by the server: the first counts
            continue
        seen.add(remote["name"])
        name = f"{server}{MCP_SEPARATOR}{NOT_IN_TOOL_NAMES.sub('_', remote['name'])}"
        if len(name) > TOOL_NAME_CHARS or name in taken:
            digest = hashlib.sha256(remote["name"].encode()).hexdigest()[:8]
            name = f"{name[:TOOL_NAME_CHARS - len(digest) - 1]}-{digest}"
        taken.add(name)
        named.append((name, remote))
    return named


def _tools(connection: ServerConnection, remote_tools: list[dict]) -> list[McpTool]:
    return [McpTool(connection, name, remote)
            for name, remote in tool_names(connection.server.name, remote_tools)]


def _description(remote: dict) -> str:
    for key in ("description", "title"):
        if isinstance(remote.get(key), str) and remote[key]:
            return remote[key]
    return ""


def _parameters(remote: dict) -> dict:
    """The tool's inputSchema; any JSON object where there is none, or where it is one the
    agent's grammar cannot be made from (the server still checks the arguments it gets)."""
    schema = remote.get("inputSchema")
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    try:
        grammar.json_schema(schema)
    except InvalidGrammar as error:
        log.warning("the input schema of MCP tool %r is taken as any object: %s",
                    remote.get("name"), error)
        return {"type": "object"}
    return schema

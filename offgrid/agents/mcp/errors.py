"""What can go wrong talking to an MCP server. The manager turns each into a status or a
tool result the model reads; none of them reaches a client of the API as an exception."""

from __future__ import annotations


class McpError(Exception):
    """Talking to an MCP server failed."""


class McpRemoteError(McpError):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: object = None):
        super().__init__(f"{method}: error {code}: {message}")
        self.code = code
        self.remote_message = message
        self.data = data


class McpTimeout(McpError):
    """No reply in time; the server was told to cancel the request."""


class McpCancelled(McpError):
    """The caller gave up on the request; the server was told to cancel it."""


class McpClosed(McpError):
    """The connection is gone or could not be made: the process exited, the stream ended, the
    URL is unreachable."""


class McpSessionExpired(McpClosed):
    """An HTTP server no longer knows our session (404): initialize again."""

    def __init__(self, session_id: str):
        super().__init__(f"the server forgot session {session_id}")
        self.session_id = session_id


class McpProtocolError(McpError):
    """The server spoke something other than MCP: a reply we cannot read, an oversized line,
    a protocol version we do not speak."""

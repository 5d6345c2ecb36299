"""What the agents keep: which tools are on (a change by an admin outlives a restart), and the
MCP servers to connect to. The values of an MCP server's `env` and `headers` may be credentials
for that server: the database file is the server's own (see db.py), and the API never shows
them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .db import Database, IntegrityError, Row
from .errors import Conflict


@dataclass(frozen=True)
class McpServer:
    """How to reach an MCP server: a program spoken to over stdio, or a streamable-HTTP URL."""
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"


def tool_settings(db: Database) -> dict[str, bool]:
    """Tool name -> on or off, for the tools whose setting was ever changed."""
    return {row["name"]: bool(row["enabled"])
            for row in db.read("SELECT name, enabled FROM tool_settings")}


def set_tool_enabled(db: Database, name: str, enabled: bool, actor: str) -> None:
    with db.write() as connection:
        connection.execute(
            "INSERT INTO tool_settings (name, enabled, changed_at, changed_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, "
            "changed_at = excluded.changed_at, changed_by = excluded.changed_by",
            (name, int(enabled), time.time(), actor))


def mcp_servers(db: Database) -> list[McpServer]:
    return [_server(row) for row in db.read("SELECT * FROM mcp_servers ORDER BY created_at")]


def add_mcp_server(db: Database, server: McpServer) -> None:
    with db.write() as connection:
        try:
            connection.execute(
                "INSERT INTO mcp_servers (name, command, args, env, cwd, url, headers, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (server.name, server.command, json.dumps(list(server.args)),
                 json.dumps(server.env), server.cwd, server.url, json.dumps(server.headers),
                 time.time()))
        except IntegrityError:
            raise Conflict(f"There is already an MCP server named {server.name!r}",
                           "mcp_server_exists") from None


def remove_mcp_server(db: Database, name: str) -> bool:
    """False if there was none of that name."""
    with db.write() as connection:
        return connection.execute("DELETE FROM mcp_servers WHERE name = ?",
                                  (name,)).rowcount > 0


def _server(row: Row) -> McpServer:
    return McpServer(row["name"], row["command"], tuple(json.loads(row["args"])),
                     json.loads(row["env"]), row["cwd"], row["url"], json.loads(row["headers"]))

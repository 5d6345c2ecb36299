"""What a tool is to an agent: a name, a description, a JSON Schema of its arguments, and a call
that gets validated arguments and gives back text for the model to read. The toolbox holds the
built-in tools and the MCP servers' tools (named `server__tool`, never in place of a built-in)
and which of them are on (an admin's change is kept in the database)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from ..store import agents as agents_store

MCP_SEPARATOR = "__"  # server__tool


@dataclass(frozen=True)
class ToolResult:
    text: str  # what the model reads back
    is_error: bool = False  # the call failed; `text` says why
    content: tuple[dict, ...] = ()  # an MCP server's content items (text, image, resource)
    structured: object | None = None  # an MCP server's structuredContent


@dataclass
class ToolContext:
    """What a call may use besides its arguments."""
    workspace: Path  # the caller's own folder for file tools
    reader: object  # the caller, as the knowledge base tells callers apart (kb.Reader)
    cancelled: threading.Event = field(default_factory=threading.Event)  # the run was dropped
    deadline: float = float("inf")  # time.monotonic() by which the call must have ended


class Tool(ABC):
    name: str
    description: str
    parameters: dict  # JSON Schema of the arguments; the agent's grammar enforces it
    enabled_by_default: bool = True
    admins_only: bool = False  # only an admin may turn it on (it reaches the machine or network)
    timeout_s: float = 30.0

    @abstractmethod
    def call(self, arguments: dict, context: ToolContext) -> ToolResult:
        """Run the tool. A failure the model should read about is a ToolResult with is_error;
        an exception is a bug (the loop reports it as an error step all the same)."""

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters}


class NoSuchTool(LookupError):
    def __init__(self, name: str):
        super().__init__(f"There is no tool named {name!r}")
        self.name = name


class Toolbox:
    """The tools an agent may be given, and which of them are on."""

    def __init__(self, db, builtins: list[Tool], mcp=None):
        self._db = db
        self._builtins = {tool.name: tool for tool in builtins}
        self._mcp = mcp  # has .tools(): the connected MCP servers' tools

    def tools(self) -> list[Tool]:
        """Every tool, built-ins first; an MCP tool never takes a built-in's name."""
        found = dict(self._builtins)
        for tool in self._mcp.tools() if self._mcp is not None else []:
            found.setdefault(tool.name, tool)
        return list(found.values())

    def get(self, name: str) -> Tool:
        for tool in self.tools():
            if tool.name == name:
                return tool
        raise NoSuchTool(name)

    def is_enabled(self, tool: Tool) -> bool:
        return agents_store.tool_settings(self._db).get(tool.name, tool.enabled_by_default)

    def enabled(self) -> list[Tool]:
        settings = agents_store.tool_settings(self._db)
        return [t for t in self.tools() if settings.get(t.name, t.enabled_by_default)]

    def set_enabled(self, name: str, enabled: bool, actor: str) -> Tool:
        tool = self.get(name)
        agents_store.set_tool_enabled(self._db, tool.name, enabled, actor)
        return tool

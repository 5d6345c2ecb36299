"""The agents' built-in tools as the unit tests call them: as the agent loop does, and a refusal
checked to be an error result the model can read."""

from __future__ import annotations

from pathlib import Path

from offgrid.agents.builtin import builtin_tools
from offgrid.agents.tools import ToolContext, ToolResult
from offgrid.config import Settings

ALL = builtin_tools(Settings())
TOOLS = {tool.name: tool for tool in ALL}


def call(name: str, workspace: Path | None = None, tools: dict = TOOLS, **arguments
         ) -> ToolResult:
    return tools[name].call(arguments, ToolContext(workspace or Path("/nonexistent"), None))


def refused(result: ToolResult, *words: str) -> str:
    assert result.is_error, result
    assert "Traceback" not in result.text
    for word in words:
        assert word in result.text, result.text
    return result.text

"""What the agents refuse: a tool that does not exist or is off. The server turns each into its
HTTP error in one place (server/errors.py); a tool's own failure is never one of these but a
ToolResult the model reads."""

from __future__ import annotations


class AgentError(Exception):
    """An agent request that cannot be done as asked."""


class NoSuchTool(AgentError, LookupError):
    def __init__(self, name: str):
        super().__init__(f"There is no tool named {name!r}; GET /v1/agents/tools?all=true "
                         "lists them")
        self.name = name


class ToolDisabled(AgentError):
    def __init__(self, name: str):
        super().__init__(f"The tool {name!r} is off; an admin can turn it on with PATCH "
                         f"/v1/agents/tools {{\"name\": \"{name}\", \"enabled\": true}}")
        self.name = name

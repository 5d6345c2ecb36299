"""Agents over HTTP: a task run with tools (one answer, or its steps as they happen), the tools
and whether each is on, one tool called directly to try it without a model, and the MCP servers
whose tools join the built-in ones."""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass

from ...agents.builtin import workspace_folder
from ...agents.loop import STYLES, AgentRun, AgentTask, Done, Status, StepTaken, Token
from ...agents.tools import Tool, ToolContext, call_tool
from ...engine.sampling import SamplingParams
from ...store import agents as agents_store
from ...store.agents import McpServer
from .. import fields
from ..errors import ApiError, NotFound, translate
from ..fields import invalid
from ..http import ClientGone, EventStream, Request, Response

log = logging.getLogger("offgrid.agents")

MAX_STEPS = 50
MAX_TIMEOUT_S = 3600.0
MAX_TASK_CHARS = 100_000
TOOL_CHOICES = ("auto", "required")  # required: the first step calls a tool


# -- a run ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentRunRequest:
    model: str | None  # None: the server's default model
    task: AgentTask
    tools: list[str] | None  # names; None: every tool that is on
    stream: bool

    @classmethod
    def parse(cls, body: dict) -> "AgentRunRequest":
        text = body.get("prompt", body.get("task"))
        if text is None:
            raise fields.missing("prompt")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TASK_CHARS:
            raise invalid("prompt", f"the task, 1 to {MAX_TASK_CHARS} characters", text)
        defaults = AgentTask(text)
        task = AgentTask(
            text, style=fields.choice(body, "style", STYLES),
            max_steps=fields.integer(body, "max_steps", defaults.max_steps, 1, MAX_STEPS),
            timeout_s=fields.number(body, "timeout_s", defaults.timeout_s, 1.0, MAX_TIMEOUT_S),
            system_prompt=fields.optional_string(body, "system_prompt") or None,
            call_first=fields.choice(body, "tool_choice", TOOL_CHOICES) == "required",
            sampling=SamplingParams(
                temperature=fields.number(body, "temperature", defaults.sampling.temperature,
                                          0.0, 2.0),
                seed=fields.integer(body, "seed", None, 0, 2**32 - 1)))
        return cls(fields.optional_string(body, "model") or None, task, _tool_names(body),
                   fields.boolean(body, "stream", False))


def _tool_names(body: dict) -> list[str] | None:
    names = body.get("tools")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise invalid("tools", "an array of tool names", names)
    return names


def run(app, request: Request) -> Response:
    asked = AgentRunRequest.parse(request.json())
    model = asked.model or app.default_model
    if model is None:
        raise fields.missing("model")
    scheduler = app.registry.get(model).generator()
    agent = AgentRun(scheduler, app.toolbox.chosen(asked.tools), asked.task,
                     tool_context(app, request), request.meter, request.client_gone)
    if asked.stream:
        return EventStream(_events(agent, model), end_marker=False)
    done = next((e for e in agent if isinstance(e, Done)), None)
    if done is None:
        raise ClientGone()
    return Response({"object": "agent.run", "task_id": agent.id, "model": model,
                     "style": asked.task.style, **_done_json(done)})


def tool_context(app, request: Request) -> ToolContext:
    user = request.caller.user
    return ToolContext(workspace_folder(app.settings, user.id if user else None),
                       app.gate.reader(request.caller))


def _events(agent: AgentRun, model: str):
    """The run as SSE events: status, token, step ... and done last, also after an error."""
    yield {"type": "status", "message": "started", "task_id": agent.id, "model": model}
    try:
        for event in agent:
            if isinstance(event, Status):
                yield {"type": "status", "message": event.message}
            elif isinstance(event, Token):
                yield {"type": "token", "content": event.text}
            elif isinstance(event, StepTaken):
                yield {"type": "step", "step": event.step.as_dict()}
            elif isinstance(event, Done):
                yield {"type": "done", "task_id": agent.id, **_done_json(event)}
    except Exception as error:  # the run cannot go on; the stream says so and ends
        api_error = error if isinstance(error, ApiError) else translate(error)
        if api_error.status >= 500:
            log.error("agent run %s failed: %r", agent.id, error)
        yield {"type": "error", **api_error.body()}
        yield {"type": "done", "task_id": agent.id, "output": "", "steps": [],
               "usage": _usage(0, 0), "finish_reason": "error"}


def _done_json(done: Done) -> dict:
    return {"output": done.output, "steps": [step.as_dict() for step in done.steps],
            "usage": _usage(done.prompt_tokens, done.completion_tokens),
            "finish_reason": done.finish_reason}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


# -- the tools ------------------------------------------------------------------------------------

def list_tools(app, request: Request) -> Response:
    every = request.query.get("all", "false").lower() in ("true", "1", "yes")
    tools = app.toolbox.tools() if every else app.toolbox.enabled()
    return Response({"object": "list", "tools": [tool_json(app, t) for t in tools]})


def set_tool(app, request: Request) -> Response:
    """PATCH {"name", "enabled"}: a tool on or off, for every run from now on."""
    body = request.json()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise invalid("enabled", "true or false", enabled) if enabled is not None else (
            fields.missing("enabled"))
    tool = app.toolbox.set_enabled(fields.string(body, "name"), enabled, request.caller.actor)
    log.info("%s turned the tool %s %s", request.caller.actor, tool.name,
             "on" if enabled else "off")
    return Response(tool_json(app, tool))


def call(app, request: Request) -> Response:
    """POST {"name", "arguments"}: one call of a tool that is on, as an agent would make it."""
    body = request.json()
    tool = app.toolbox.chosen([fields.string(body, "name")])[0]
    arguments = fields.obj(body, "arguments")
    started = time.monotonic()
    context = tool_context(app, request)
    context.deadline = started + tool.timeout_s
    result = call_tool(tool, arguments, context, request.client_gone)
    if result is None:
        raise ClientGone()
    return Response({"name": tool.name, "result": result.text, "is_error": result.is_error,
                     "content": list(result.content), "structured_content": result.structured,
                     "duration_ms": round((time.monotonic() - started) * 1000, 1)})


def tool_json(app, tool: Tool) -> dict:
    return {**tool.describe(), "enabled": app.toolbox.is_enabled(tool),
            "source": "builtin" if tool.server is None else "mcp", "server": tool.server,
            "admins_only": tool.admins_only, "timeout_s": tool.timeout_s}


# -- MCP servers ----------------------------------------------------------------------------------

def list_mcp_servers(app, request: Request) -> Response:
    return Response({"object": "list", "servers": app.mcp.statuses()})


def add_mcp_server(app, request: Request) -> Response:
    """POST {"name", "command", "args", "env", "cwd"} or {"name", "url", "headers"}: kept, and
    connected in the background from now on."""
    server = mcp_server(request.json())
    status = app.mcp.add(server)
    log.info("%s added the MCP server %s", request.caller.actor, server.name)
    return Response(status, status=201)


def test_mcp_server(app, request: Request) -> Response:
    """POST a server as for adding it (or {"name"} of one kept): connect, list its tools,
    disconnect; nothing is kept."""
    body = request.json()
    if set(body) == {"name"}:
        server = next((s for s in agents_store.mcp_servers(app.db) if s.name == body["name"]),
                      None)
        if server is None:
            raise NotFound(f"There is no MCP server named {body['name']!r}",
                           code="mcp_server_not_found")
    else:
        server = mcp_server({"name": "test", **body})
    return Response(app.mcp.test(server))


def remove_mcp_server(app, request: Request, name: str) -> Response:
    app.mcp.remove(name)
    log.info("%s removed the MCP server %s", request.caller.actor, name)
    return Response({"name": name, "object": "mcp_server", "deleted": True})


def mcp_server(body: dict) -> McpServer:
    """The server a body describes. As the seed system takes it, a `url` that is not an
    http(s) URL is a command line ("npx -y @modelcontextprotocol/server-memory"): split into
    its words like a shell would, but never run by one."""
    url, command = fields.optional_string(body, "url"), fields.optional_string(body, "command")
    args = _strings(body, "args")
    if url is not None and command is None and "://" not in url:
        try:
            command, *args = shlex.split(url) or [""]
        except ValueError as error:
            raise invalid("url", f"a URL or a command line ({error})", url) from None
        url = None
    return McpServer(fields.string(body, "name"), command, tuple(args),
                     _string_map(body, "env"), fields.optional_string(body, "cwd"), url,
                     _string_map(body, "headers"))


def _strings(body: dict, name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(name, "an array of strings", value)
    return value


def _string_map(body: dict, name: str) -> dict[str, str]:
    value = fields.obj(body, name)
    if not all(isinstance(item, str) for item in value.values()):
        raise invalid(name, "an object of string values", value)
    return value

"""`offgrid agent "task"` works a task through with the running server's tools, each step shown
as it happens; `offgrid tools` lists the tools and turns them on or off; `offgrid mcp add | list
| test | rm` manages the MCP servers whose tools join them."""

from __future__ import annotations

import argparse
import json
import sys

from ..client import Client
from . import terminal
from .remote import on_server

RESULT_CHARS = 300  # of a tool's result, what the terminal shows


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add `agent`, `tools` and `mcp` to the main parser; `common` holds the flags every
    command takes."""
    agent = commands.add_parser("agent", parents=[common],
                                help="work a task through with tools, step by step")
    agent.add_argument("task")
    agent.add_argument("--model", help="the model (default: the server's)")
    agent.add_argument("--style", choices=("native", "react"), default="native")
    agent.add_argument("--max-steps", dest="max_steps", type=int, default=10)
    agent.add_argument("--tools", help="the tools it may use, by name, comma-separated "
                                       "(default: all that are on)")
    agent.add_argument("--tool-choice", dest="tool_choice", choices=("required", "auto"),
                       default="required", help="required (the default): the first step "
                       "calls a tool, as small models otherwise answer from memory")
    agent.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run")
    agent.set_defaults(command=on_server(_agent))

    tools = commands.add_parser("tools", parents=[common], help="the agents' tools")
    tools.set_defaults(command=on_server(_tools))
    actions = tools.add_subparsers(title="actions")
    for action, enabled in (("on", True), ("off", False)):
        switch = actions.add_parser(action, help=f"turn a tool {action}")
        switch.add_argument("name")
        switch.set_defaults(command=on_server(_switch), enabled=enabled)

    mcp = commands.add_parser("mcp", parents=[common],
                              help="MCP servers: their tools join the agents' own")
    mcp.set_defaults(command=lambda args, settings: mcp.print_help() or 2)
    actions = mcp.add_subparsers(title="actions")
    add = actions.add_parser("add", help="add a server: NAME -- COMMAND [ARGS...], or NAME "
                                         "--url URL")
    _server_arguments(add)
    add.set_defaults(command=on_server(_mcp_add))
    actions.add_parser("list", help="the servers and how each is doing").set_defaults(
        command=on_server(_mcp_list))
    test = actions.add_parser("test", help="connect to a server and list its tools, keeping "
                                           "nothing: NAME (one added), or NAME -- COMMAND ...")
    _server_arguments(test)
    test.set_defaults(command=on_server(_mcp_test))
    remove = actions.add_parser("rm", help="remove a server")
    remove.add_argument("name")
    remove.set_defaults(command=on_server(_mcp_remove))


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    # What follows the name, as it is: its options, then `--` and the program, whose own
    # options (npx -y) argparse must not read.
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="[OPTIONS] -- COMMAND ...",
                        help="the program that serves MCP over stdio, and its arguments")
    _server_options(parser)


def _server_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", help="a streamable-HTTP MCP server's URL")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--cwd", help="the folder the program runs in")
    return parser


_AFTER_THE_NAME = _server_options(argparse.ArgumentParser(prog="offgrid mcp", add_help=False))


# -- agent ----------------------------------------------------------------------------------------

def _agent(client: Client, args) -> int:
    options = {"style": args.style, "max_steps": args.max_steps, "timeout_s": args.timeout,
               "tool_choice": args.tool_choice}
    if args.tools:
        options["tools"] = [name.strip() for name in args.tools.split(",") if name.strip()]
    events = client.agents.run(args.task, model=args.model, stream=True, **options)
    answering = False
    try:
        for event in events:
            if event["type"] == "token":
                print(event["content"], end="", flush=True)
                answering = True
            elif event["type"] == "step" and event["step"]["type"] != "answer":
                _show_step(event["step"])
            elif event["type"] == "error":
                return terminal.fail(event["error"]["message"])
    except KeyboardInterrupt:
        events.close()  # the server stops the run and its tool call
        return terminal.fail("stopped", 130)
    if answering:
        print()
    done = events.done or {}
    usage = done.get("usage", {})
    calls = sum(step["type"] == "tool_call" for step in done.get("steps", []))
    print(f"[{done.get('finish_reason')}: {calls} tool calls, {usage.get('total_tokens', 0)} "
          "tokens]", file=sys.stderr)
    return 0 if done.get("finish_reason") == "stop" else 1


def _show_step(step: dict) -> None:
    """A step on stderr, so that stdout holds only the answer."""
    kind = step["type"]
    if kind == "thought":
        line = f"thought: {step['content']}"
    elif kind == "tool_call":
        line = f"call {step['tool_name']} {json.dumps(step['tool_args'])}"
    elif kind == "tool_result":
        line = f"  -> {_cut(step['tool_result'])} ({step['duration_ms']:.0f} ms)"
    else:
        line = f"  !! {_cut(step['content'])}"
    print(line, file=sys.stderr, flush=True)


def _cut(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS] + " ..."


# -- tools ----------------------------------------------------------------------------------------

def _tools(client: Client, args) -> int:
    for tool in client.agents.tools(all=True):
        state = "on " if tool["enabled"] else "off"
        source = f"  (MCP server {tool['server']})" if tool["server"] else ""
        print(f"{state} {tool['name']:32} {_cut(tool['description'])[:80]}{source}")
    return 0


def _switch(client: Client, args) -> int:
    tool = client.agents.set_tool(args.name, args.enabled)
    print(f"{tool['name']} is {'on' if tool['enabled'] else 'off'}")
    return 0


# -- MCP servers ----------------------------------------------------------------------------------

def _mcp_add(client: Client, args) -> int:
    status = client.agents.mcp.add(args.name, **_described(args))
    print(f"added {status['name']} ({status['transport']}): connecting in the background; "
          "`offgrid mcp list` shows how it is doing")
    return 0


def _mcp_list(client: Client, args) -> int:
    servers = client.agents.mcp.list()
    if not servers:
        print("no MCP servers (add one with `offgrid mcp add NAME -- COMMAND ...`)")
    for server in servers:
        where = server.get("url") or " ".join([server.get("command") or "",
                                               *server.get("args", [])])
        problem = f"  {server['last_error']}" if server["last_error"] else ""
        print(f"{server['name']:16} {server['status']:10} {server['tools']:3} tools  "
              f"{_cut(where)[:60]}{problem}")
    return 0


def _mcp_test(client: Client, args) -> int:
    result = client.agents.mcp.test(name=args.name, **_described(args))
    if not result["ok"]:
        for line in result.get("stderr", [])[-5:]:
            print(f"  stderr: {line}", file=sys.stderr)
        return terminal.fail(f"the server did not work: {result['error']}")
    print(f"ok: {len(result['tools'])} tools")
    for tool in result["tools"]:
        print(f"  {tool['name']:32} {_cut(tool['description'])[:80]}")
    return 0


def _mcp_remove(client: Client, args) -> int:
    client.agents.mcp.remove(args.name)
    print(f"removed {args.name}")
    return 0


def _described(args) -> dict:
    """The server the arguments describe, as the client takes it."""
    rest = args.rest  # argparse drops a `--` that comes right after the name
    if "--" in rest:
        split = rest.index("--")
        options, launch = rest[:split], rest[split + 1:]
    else:
        options, launch = (rest, []) if rest[:1] and rest[0].startswith("-") else ([], rest)
    later = _AFTER_THE_NAME.parse_args(options)
    described = {"env": _pairs(args.env + later.env, "--env"),
                 "headers": _pairs(args.header + later.header, "--header"),
                 "cwd": later.cwd or args.cwd, "url": later.url or args.url}
    if launch:
        described.update(command=launch[0], args=launch[1:])
    return {key: value for key, value in described.items() if value}


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, found, value = item.partition("=")
        if not found or not name:
            raise SystemExit(terminal.fail(f"{flag} takes NAME=VALUE, not {item!r}", 2))
        pairs[name] = value
    return pairs


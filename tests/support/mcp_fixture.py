"""An MCP server for the MCP client's tests, built on the official SDK (the PyPI `mcp` package),
run as a program over stdio or over streamable HTTP:

    python -I tests/support/mcp_fixture.py [--http PORT [--json-response | --resumable]]
                                           [--journal FILE] [--page-size N]
                                           [--flood-stderr LINES] [--mute]

(-I: otherwise its own folder comes first on the import path, and support/http.py hides the
standard library's http from the SDK.)

Its tools answer with each kind of content (text, image, resources, structuredContent, isError)
and misbehave on request: one sleeps until cancelled, one kills the process mid-call, one floods
stderr, one asks the client for something it never offered, one adds a tool to the list.
tools/list always comes in pages.
`--journal` appends each cancellation it receives, and each cancelled call, as a JSON line;
`--flood-stderr` writes that many lines (and one very long line) to stderr before it serves;
`--mute` reads stdin and never answers anything; `--resumable` keeps SSE events for
resumption, and so opens each stream with an empty priming event. Every FIXTURE_* variable of
its environment is printed to stderr at start, so a test can check that statuses keep them out.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import warnings
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http import EventStore
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.message import ServerMessageMetadata

# A 1x1 transparent PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
LONG_NAME = "a_tool_whose_name_is_far_longer_than_what_offgrid_allows_in_total_length"


def schema(**properties: str) -> dict:
    return {"type": "object", "properties": {name: {"type": kind}
                                             for name, kind in properties.items()},
            "required": list(properties)}


TOOLS = [
    types.Tool(name="echo", description="Say the text back.", input_schema=schema(text="string")),
    types.Tool(name="add", description="Add two numbers.",
               input_schema=schema(a="number", b="number"),
               output_schema={"type": "object", "properties": {"sum": {"type": "number"}}}),
    types.Tool(name="image", description="A one-pixel picture.", input_schema=schema()),
    types.Tool(name="resources", description="An embedded resource and a link.",
               input_schema=schema()),
    types.Tool(name="slow", description="Sleep, until cancelled.",
               input_schema=schema(seconds="number")),
    types.Tool(name="wait", description="Wait, until cancelled.", input_schema=schema()),
    types.Tool(name="crash", description="Kill the server mid-call.", input_schema=schema()),
    types.Tool(name="fail", description="Report a failure.", input_schema=schema()),
    types.Tool(name="log", description="Log a message, then answer.", input_schema=schema()),
    types.Tool(name="ping_client", description="Ping the client.", input_schema=schema()),
    types.Tool(name="ask_roots", description="Ask the client for its roots.",
               input_schema=schema()),
    types.Tool(name="flood", description="Write lines to stderr.",
               input_schema=schema(lines="integer")),
    types.Tool(name="env", description="A variable of the environment.",
               input_schema=schema(name="string")),
    types.Tool(name="cwd", description="The working folder.", input_schema=schema()),
    types.Tool(name="header", description="A header of the HTTP request.",
               input_schema=schema(name="string")),
    types.Tool(name="dotted.name/tool", description="Echo, under a name with odd characters.",
               input_schema=schema(text="string")),
    types.Tool(name=LONG_NAME, description="Echo, under a long name.",
               input_schema=schema(text="string")),
    types.Tool(name="grow", description="Add a tool, and say the list changed.",
               input_schema=schema()),
]


def text(value: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=value)])


class Fixture:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.server = Server("offgrid-mcp-fixture", version="1.0",
                             on_list_tools=self.list_tools, on_call_tool=self.call_tool)
        self.server.add_notification_handler("notifications/cancelled",
                                             types.CancelledNotificationParams, self.cancelled)

    def journal(self, entry: dict) -> None:
        if self.args.journal:
            with open(self.args.journal, "a") as out:
                out.write(json.dumps(entry) + "\n")

    async def cancelled(self, ctx, params: types.CancelledNotificationParams) -> None:
        self.journal({"cancelled": params.request_id, "reason": params.reason})

    async def list_tools(self, ctx, params: types.PaginatedRequestParams | None):
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.args.page_size
        return types.ListToolsResult(tools=TOOLS[start:end],
                                     next_cursor=str(end) if end < len(TOOLS) else None)

    async def call_tool(self, ctx, params: types.CallToolRequestParams):
        arguments = params.arguments or {}
        match params.name:
            case name if name in ("echo", "dotted.name/tool", LONG_NAME):
                return text(arguments["text"])
            case "add":
                return types.CallToolResult(
                    content=[], structured_content={"sum": arguments["a"] + arguments["b"]})
            case "image":
                return types.CallToolResult(content=[
                    types.TextContent(type="text", text="a pixel:"),
                    types.ImageContent(type="image", data=base64.b64encode(PIXEL).decode(),
                                       mime_type="image/png")])
            case "resources":
                return types.CallToolResult(content=[
                    types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                        uri="file:///notes.txt", mime_type="text/plain", text="the notes")),
                    types.ResourceLink(type="resource_link", uri="file:///big.bin", name="big",
                                       mime_type="application/octet-stream")])
            case "slow":
                return await self.slow(ctx, arguments["seconds"])
            case "wait":  # whatever arguments a model gives it
                return await self.slow(ctx, 3600)
            case "crash":
                print("fixture: crashing on purpose", file=sys.stderr, flush=True)
                os._exit(3)
            case "fail":
                return types.CallToolResult(
                    content=[types.TextContent(type="text", text="it went wrong")], is_error=True)
            case "log":
                await ctx.session.send_log_message("warning", "a log line", logger="fixture",
                                                   related_request_id=ctx.request_id)
                return text("logged")
            case "ping_client":
                await self.ask(ctx, types.PingRequest())
                return text("pong")
            case "ask_roots":
                try:
                    await self.ask(ctx, types.ListRootsRequest())
                except Exception as error:  # the client's JSON-RPC error, as the SDK raises it
                    return text(f"refused: {error}")
                return text("answered")
            case "flood":
                for number in range(arguments["lines"]):
                    print(f"flood line {number} " + "x" * 200, file=sys.stderr)
                sys.stderr.flush()
                return text("flooded")
            case "env":
                return text(os.environ.get(arguments["name"], ""))
            case "cwd":
                return text(os.getcwd())
            case "header":
                return text(ctx.request.headers.get(arguments["name"], ""))
            case "grow":
                TOOLS.append(types.Tool(name=f"grown_{len(TOOLS)}", description="Grown.",
                                        input_schema=schema()))
                await ctx.session.send_notification(types.ToolListChangedNotification(),
                                                    related_request_id=ctx.request_id)
                return text("grown")
            case name if name.startswith("grown_"):
                return text(name)
        raise ValueError(f"no tool {params.name}")

    async def ask(self, ctx, request) -> None:
        """A request to the client, on the stream of the call it serves (over HTTP, the only
        one open: the client does not listen on a GET stream)."""
        await ctx.session.send_request(request, types.EmptyResult, metadata=ServerMessageMetadata(
            related_request_id=ctx.request_id))

    async def slow(self, ctx, seconds: float) -> types.CallToolResult:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self.journal({"slow": "cancelled", "request": ctx.request_id})
            raise
        return text("slept")

    async def serve_stdio(self) -> None:
        async with stdio_server() as (read_stream, write_stream):
            await self.server.run(read_stream, write_stream,
                                  self.server.create_initialization_options())


class Events(EventStore):
    """SSE events kept in memory, for resumption (which the tests never ask for)."""

    def __init__(self):
        self.events: list[tuple[str, object]] = []

    async def store_event(self, stream_id, message):
        self.events.append((stream_id, message))
        return str(len(self.events))

    async def replay_events_after(self, last_event_id, send_callback):
        return None


def flood_stderr(lines: int) -> None:
    for number in range(lines):
        sys.stderr.write(f"startup flood {number} " + "y" * 100 + "\n")
    sys.stderr.write("z" * (2 << 20) + "\n")  # one line of 2 MiB
    sys.stderr.write("startup flood done\n")
    sys.stderr.flush()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT")
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--resumable", action="store_true")
    parser.add_argument("--journal", type=Path)
    parser.add_argument("--page-size", type=int, default=5)
    parser.add_argument("--flood-stderr", type=int, default=0, metavar="LINES")
    parser.add_argument("--mute", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # Logging and roots are deprecated from 2026-07-28 on; clients of 2025-11-25 still meet them.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    for name, value in sorted(os.environ.items()):
        if name.startswith("FIXTURE_"):
            print(f"fixture: {name}={value}", file=sys.stderr, flush=True)
    if args.flood_stderr:
        flood_stderr(args.flood_stderr)
    if args.mute:
        sys.stdin.read()
        return
    fixture = Fixture(args)
    if args.http is None:
        anyio.run(fixture.serve_stdio)
        return
    import uvicorn
    app = fixture.server.streamable_http_app(json_response=args.json_response,
                                             event_store=Events() if args.resumable else None)
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main()

"""The MCP client against real MCP servers: the fixture built on the official SDK, over stdio
and streamable HTTP, and the npm reference servers (memory, filesystem) run by Node. Each test
drives the manager as the server does: servers added and stored, connected in the background,
their tools called as an agent calls them."""

from __future__ import annotations

import json
import sys
import threading

import psutil
import pytest

from offgrid.agents.mcp.errors import McpClosed, McpProtocolError, McpTimeout
from offgrid.agents.mcp.http import HttpTransport
from offgrid.agents.mcp.manager import McpManager
from offgrid.agents.mcp.session import McpSession
from offgrid.agents.mcp.stdio import STDERR_LINE_BYTES, STDERR_LINES, StdioTransport
from offgrid.agents.tools import Tool, Toolbox, ToolResult
from offgrid.store import agents as agents_store
from offgrid.store.db import Database
from offgrid.store.errors import Conflict, InvalidValue, Missing
from support.mcp import (
    FIXTURE_ARGV,
    HttpFixture,
    context,
    fixture_server,
    gone,
    journal,
    process_tree,
)
from support.servers import free_port
from support.waiting import wait_until


@pytest.fixture
def db(tmp_path):
    return Database(tmp_path / "offgrid.db")


@pytest.fixture
def manager(db):
    manager = McpManager(db, connect_timeout_s=30)
    yield manager
    manager.close()


@pytest.fixture
def http_fixture(request):
    fixture = HttpFixture(*getattr(request, "param", ()))
    yield fixture
    fixture.stop()


def wait_for(manager, name: str, state: str = "connected", timeout: float = 60) -> dict:
    def reached():
        status = manager.status(name)
        if status["status"] == "failed" and state != "failed":
            raise AssertionError(f"{name} failed: {status}")
        return status if status["status"] == state else None
    return wait_until(reached, timeout, message=f"{name} {state}")


def tools(manager) -> dict:
    return {tool.name: tool for tool in manager.tools()}


def call(manager, tool: str, tmp_path, /, within: float = 30, **arguments):
    return tools(manager)[tool].call(arguments, context(tmp_path, within))


# -- stdio --------------------------------------------------------------------------------------

def test_stdio_server_tools_are_listed_across_pages_and_called(manager, tmp_path):
    manager.add(fixture_server("fx", "--page-size", "3", cwd=str(tmp_path)))
    status = wait_for(manager, "fx")
    assert status["transport"] == "stdio" and status["protocol_version"] == "2025-11-25"
    assert status["server"]["name"] == "offgrid-mcp-fixture"
    found = tools(manager)
    assert status["tools"] == len(found) == 18  # six pages of three
    assert {"fx__echo", "fx__add", "fx__image", "fx__dotted_name_tool"} <= set(found)
    long_name = next(name for name in found if name.startswith("fx__a_tool_whose"))
    assert len(long_name) == 64
    assert found["fx__echo"].parameters["properties"] == {"text": {"type": "string"}}
    assert found["fx__echo"].description == "Say the text back."

    echo = call(manager, "fx__echo", tmp_path, text="hello")
    assert (echo.text, echo.is_error) == ("hello", False)
    assert call(manager, "fx__dotted_name_tool", tmp_path, text="odd").text == "odd"
    assert call(manager, long_name, tmp_path, text="long").text == "long"

    added = call(manager, "fx__add", tmp_path, a=2, b=3)
    assert added.structured == {"sum": 5} and json.loads(added.text) == {"sum": 5}

    image = call(manager, "fx__image", tmp_path)
    assert image.text == "a pixel:\n[image: image/png, 70 bytes]"
    assert image.content[1]["type"] == "image" and image.content[1]["data"]

    resources = call(manager, "fx__resources", tmp_path)
    assert resources.text == ("[resource: file:///notes.txt]\nthe notes\n"
                              "[resource link: file:///big.bin (big), application/octet-stream]")

    failed = call(manager, "fx__fail", tmp_path)
    assert (failed.text, failed.is_error) == ("it went wrong", True)

    assert call(manager, "fx__cwd", tmp_path).text == str(tmp_path)


def test_server_requests_are_answered_or_refused_and_logs_kept(manager, tmp_path):
    manager.add(fixture_server("fx"))
    wait_for(manager, "fx")
    assert call(manager, "fx__ping_client", tmp_path).text == "pong"
    refused = call(manager, "fx__ask_roots", tmp_path).text
    assert refused.startswith("refused:") and "roots/list" in refused
    assert call(manager, "fx__log", tmp_path).text == "logged"
    assert manager.status("fx")["logs"] == [
        {"level": "warning", "logger": "fixture", "data": "a log line"}]


def test_a_call_past_its_deadline_is_cancelled_on_the_server(manager, tmp_path):
    notes = tmp_path / "journal.jsonl"
    manager.add(fixture_server("fx", "--journal", str(notes)))
    wait_for(manager, "fx")
    result = call(manager, "fx__slow", tmp_path, within=1, seconds=600)
    assert result.is_error and "did not answer within 1 s" in result.text
    entries = wait_until(lambda: len(journal(notes)) == 2 and journal(notes))
    cancelled = next(entry for entry in entries if "cancelled" in entry)
    assert isinstance(cancelled["cancelled"], int) and "no reply in time" in cancelled["reason"]
    assert {"slow": "cancelled", "request": cancelled["cancelled"]} in entries
    assert call(manager, "fx__echo", tmp_path, text="still here").text == "still here"


def test_a_cancelled_run_cancels_its_call(manager, tmp_path):
    notes = tmp_path / "journal.jsonl"
    manager.add(fixture_server("fx", "--journal", str(notes)))
    wait_for(manager, "fx")
    run = context(tmp_path)
    results = []
    caller = threading.Thread(target=lambda: results.append(
        tools(manager)["fx__slow"].call({"seconds": 600}, run)))
    caller.start()
    run.cancelled.set()
    caller.join(30)
    assert results[0].is_error and results[0].text == "The call was cancelled."
    wait_until(lambda: any(entry.get("reason") == "tools/call: cancelled"
                           for entry in journal(notes)))


def test_a_server_that_crashes_mid_call_is_reported_and_restarted(manager, tmp_path):
    manager.add(fixture_server("fx"))
    wait_for(manager, "fx")
    crashed = call(manager, "fx__crash", tmp_path)
    assert crashed.is_error and "exited with code 3" in crashed.text
    status = manager.status("fx")  # set before the call failed
    assert status["status"] == "crashed" and status["exit_code"] == 3
    assert "exited with code 3" in status["last_error"]
    assert "fixture: crashing on purpose" in status["stderr"]

    down = call(manager, "fx__echo", tmp_path, text="anyone?")
    assert down.is_error and "'fx' is crashed" in down.text
    assert "fx__echo" in tools(manager)  # kept while it restarts

    status = wait_for(manager, "fx")
    assert status["restarts"] == 1 and status["exit_code"] is None
    assert any("starting it again in 1 s" in line for line in status["stderr"])
    assert call(manager, "fx__echo", tmp_path, text="back").text == "back"


def test_a_server_that_never_answers_fails_to_connect(db, tmp_path):
    patient = McpManager(db, connect_timeout_s=1)
    try:
        patient.add(fixture_server("mute", "--mute"))
        status = wait_for(patient, "mute", "failed")
        assert status["last_error"] == "initialize: no reply in time"
        assert status["tools"] == 0 and tools(patient) == {}
        tested = patient.test(fixture_server("mute", "--mute"), timeout=1)
        assert tested["ok"] is False and tested["error"] == "initialize: no reply in time"
    finally:
        patient.close()


def test_a_server_flooding_stderr_keeps_working_with_a_bounded_tail(manager, tmp_path):
    manager.add(fixture_server("flood", "--flood-stderr", "20000"))
    status = wait_for(manager, "flood")
    assert len(status["stderr"]) == STDERR_LINES
    assert status["stderr"][-1] == "startup flood done"
    assert all(len(line) <= STDERR_LINE_BYTES + 10 for line in status["stderr"])
    assert "z" * 900 in status["stderr"][-2] and status["stderr"][-2].endswith("[...]")
    assert call(manager, "flood__flood", tmp_path, lines=20000).text == "flooded"
    assert manager.status("flood")["stderr"][-1].startswith("flood line 19999 ")
    assert call(manager, "flood__echo", tmp_path, text="fine").text == "fine"


def test_a_bad_command_fails_clearly(manager, tmp_path):
    manager.add(agents_store.McpServer("nothing", "/nonexistent/mcp-server"))
    status = wait_for(manager, "nothing", "failed")
    assert status["last_error"] == \
        "cannot start '/nonexistent/mcp-server': No such file or directory"
    manager.add(fixture_server("nowhere", cwd=str(tmp_path / "missing")))
    assert "is not a folder" in wait_for(manager, "nowhere", "failed")["last_error"]
    manager.add(agents_store.McpServer("quits", sys.executable, ("-c", "import sys; "
                                                                  "sys.exit('no config')")))
    status = wait_for(manager, "quits", "failed")
    assert status["last_error"] == "the server exited with code 1"
    assert status["stderr"] == ["no config"]
    assert tools(manager) == {}


def test_env_and_header_values_never_appear_in_statuses(manager, http_fixture, tmp_path):
    secret, token = "s3cret-value-42", "tok-0123456789"
    manager.add(fixture_server("fx", env={"FIXTURE_SECRET": secret}))
    manager.add(http_fixture.server("web", headers={"Authorization": f"Bearer {token}",
                                                    "X-Fixture-Token": token}))
    wait_for(manager, "fx")
    wait_for(manager, "web")
    assert call(manager, "fx__env", tmp_path, name="FIXTURE_SECRET").text == secret
    assert call(manager, "web__header", tmp_path, name="x-fixture-token").text == token
    statuses = json.dumps(manager.statuses())
    assert secret not in statuses and token not in statuses
    fx = manager.status("fx")
    assert fx["env"] == ["FIXTURE_SECRET"] and "fixture: FIXTURE_SECRET=***" in fx["stderr"]
    assert manager.status("web")["headers"] == ["Authorization", "X-Fixture-Token"]


def children() -> list[psutil.Process]:
    """This process's descendants."""
    return psutil.Process().children(recursive=True)


def test_closing_leaves_no_process_behind(manager, tmp_path):
    others = set(children())  # servers other tests' fixtures keep running
    # Like npx: a launcher whose child is the server.
    launcher = ("import subprocess, sys; "
                f"sys.exit(subprocess.call({list(FIXTURE_ARGV)!r}))")
    manager.add(agents_store.McpServer("launched", sys.executable, ("-c", launcher)))
    manager.add(fixture_server("direct"))
    wait_for(manager, "launched")
    wait_for(manager, "direct")
    ours = [process for process in children() if process not in others]
    assert len(ours) >= 3
    manager.close()
    assert gone(ours), [process for process in ours if process.is_running()]


def test_a_server_deaf_to_stdin_and_sigterm_is_killed(tmp_path):
    stubborn = StdioTransport(sys.executable, ("-c", (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', file=sys.stderr, flush=True); sys.stdin.close(); time.sleep(600)")))
    stubborn.open(McpSession(stubborn, client_version="test"))
    wait_until(lambda: stubborn.stderr.lines() == ["ready"])
    processes = process_tree(stubborn.pid)
    stubborn.close()
    assert stubborn.exit_code == -9 and gone(processes)


def test_a_line_over_the_limit_ends_the_connection(tmp_path):
    small = StdioTransport(*FIXTURE_ARGV[:1], FIXTURE_ARGV[1:], max_line_bytes=4096)
    session = McpSession(small, client_version="test")
    session.open(30)
    try:
        with pytest.raises(McpClosed, match="more than 4096 bytes"):
            session.call_tool("echo", {"text": "x" * 5000}, 30)
        assert isinstance(session.ended, McpProtocolError)
    finally:
        session.close()


def test_removing_a_server_stops_it_and_drops_its_tools(manager, db):
    others = set(children())
    manager.add(fixture_server("fx"))
    wait_for(manager, "fx")
    processes = [process for process in children() if process not in others]
    manager.remove("fx")
    assert gone(processes) and tools(manager) == {} and manager.statuses() == []
    assert agents_store.mcp_servers(db) == []
    with pytest.raises(Missing):
        manager.remove("fx")
    with pytest.raises(Missing):
        manager.status("fx")


def test_servers_are_stored_and_connected_at_startup_without_waiting_on_each_other(db,
                                                                                   tmp_path):
    first = McpManager(db, connect_timeout_s=30)
    first.add(fixture_server("fx"))
    first.add(fixture_server("mute", "--mute"))
    first.close()
    assert [server.name for server in agents_store.mcp_servers(db)] == ["fx", "mute"]

    again = McpManager(db, connect_timeout_s=600)
    try:
        again.start()  # returns at once
        assert {status["status"] for status in again.statuses()} == {"connecting"}
        wait_for(again, "fx")
        assert again.status("mute")["status"] == "connecting"  # still waiting for initialize
        assert call(again, "fx__echo", tmp_path, text="up").text == "up"
    finally:
        again.close()  # stops the one still connecting, too
    assert {status["status"] for status in again.statuses()} == {"stopped"}
    assert again.tools() == []


def test_adding_refuses_bad_servers(manager):
    for name in ("", "a" * 33, "has space", "two__parts", "ends_", "dot.ted"):
        with pytest.raises(InvalidValue) as refused:
            manager.add(fixture_server(name))
        assert refused.value.field == "name"
    with pytest.raises(InvalidValue, match="either a command"):
        manager.add(agents_store.McpServer("both", "server", url="http://127.0.0.1/mcp"))
    with pytest.raises(InvalidValue, match="only http"):
        manager.add(agents_store.McpServer("ftp", url="ftp://127.0.0.1/mcp"))
    with pytest.raises(InvalidValue, match="credentials in headers"):
        manager.add(agents_store.McpServer("userinfo", url="http://me:pw@127.0.0.1/mcp"))
    with pytest.raises(InvalidValue) as refused:
        manager.add(agents_store.McpServer("split", url="http://127.0.0.1/mcp",
                                           headers={"X-A": "one\r\nX-B: two"}))
    assert refused.value.field == "headers"
    with pytest.raises(InvalidValue) as refused:
        manager.add(agents_store.McpServer("eq", "server", env={"A=B": "c"}))
    assert refused.value.field == "env"
    manager.add(fixture_server("fx"))
    with pytest.raises(Conflict):
        manager.add(fixture_server("fx"))
    assert [status["name"] for status in manager.statuses()] == ["fx"]


def test_testing_a_server_keeps_nothing(manager, db):
    tested = manager.test(fixture_server("fx"))
    assert tested["ok"] is True and tested["error"] is None
    assert {"name": "fx__echo", "description": "Say the text back.",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                           "required": ["text"]}} in tested["tools"]
    assert agents_store.mcp_servers(db) == [] and manager.statuses() == []
    broken = manager.test(agents_store.McpServer("broken", sys.executable, ("-c", (
        "import sys; print('bad token', file=sys.stderr); sys.exit(2)"))))
    assert broken["ok"] is False and broken["error"] == "the server exited with code 2"
    assert broken["stderr"] == ["bad token"]


class Clock(Tool):
    """A built-in that happens to take an MCP tool's name."""
    name, description, parameters = "fx__echo", "The time.", {"type": "object"}

    def call(self, arguments, context):
        return ToolResult("noon")


def test_mcp_tools_join_the_toolbox_beside_the_built_ins(manager, db, tmp_path):
    manager.add(fixture_server("fx"))
    wait_for(manager, "fx")
    toolbox = Toolbox(db, [Clock()], mcp=manager)
    assert toolbox.get("fx__echo").call({}, context(tmp_path)).text == "noon"
    assert toolbox.get("fx__add").admins_only and toolbox.is_enabled(toolbox.get("fx__add"))
    assert len(toolbox.tools()) == 18  # the built-in, and the fixture's 17 others


def test_a_changed_tool_list_is_listed_again(manager, tmp_path):
    manager.add(fixture_server("fx"))
    wait_for(manager, "fx")
    assert call(manager, "fx__grow", tmp_path).text == "grown"
    wait_until(lambda: "fx__grown_18" in tools(manager))
    assert call(manager, "fx__grown_18", tmp_path).text == "grown_18"


# -- streamable HTTP ----------------------------------------------------------------------------

@pytest.mark.parametrize("http_fixture", [(), ("--json-response",), ("--resumable",)],
                         indirect=True, ids=["sse", "json", "resumable-sse"])
def test_http_server_tools_are_listed_and_called(manager, http_fixture, tmp_path):
    manager.add(http_fixture.server("web", headers={"X-Fixture-Token": "hello there"}))
    status = wait_for(manager, "web")
    assert status["transport"] == "http" and status["url"] == http_fixture.url
    assert status["tools"] == 18
    assert call(manager, "web__echo", tmp_path, text="over http").text == "over http"
    assert call(manager, "web__add", tmp_path, a=1, b=1).structured == {"sum": 2}
    assert call(manager, "web__header", tmp_path, name="x-fixture-token").text == "hello there"
    failed = call(manager, "web__fail", tmp_path)
    assert failed.is_error and failed.text == "it went wrong"


def test_http_server_requests_and_logs_come_on_the_call_stream(manager, http_fixture, tmp_path):
    manager.add(http_fixture.server("web"))
    wait_for(manager, "web")
    assert call(manager, "web__ping_client", tmp_path).text == "pong"
    assert "roots/list" in call(manager, "web__ask_roots", tmp_path).text
    assert call(manager, "web__log", tmp_path).text == "logged"
    assert manager.status("web")["logs"][-1]["data"] == "a log line"


def test_http_timeout_cancels_the_call(tmp_path):
    notes = tmp_path / "journal.jsonl"
    fixture = HttpFixture("--journal", str(notes))
    session = McpSession(HttpTransport(fixture.url), client_version="test")
    try:
        session.open(30)
        with pytest.raises(McpTimeout):
            session.call_tool("slow", {"seconds": 600}, 1)
        wait_until(lambda: any("cancelled" in entry and entry["reason"].endswith("in time")
                               for entry in journal(notes)))
        assert session.call_tool("echo", {"text": "next"}, 30).text == "next"
    finally:
        session.close()
        fixture.stop()


def test_a_forgotten_http_session_is_initialized_again(manager, http_fixture, tmp_path):
    transport = HttpTransport(http_fixture.url)
    session = McpSession(transport, client_version="test")
    manager.add(http_fixture.server("web"))
    try:
        session.open(30)
        wait_for(manager, "web")
        before = transport.session_id
        assert before
        http_fixture.restart()  # a new process: it knows no session
        assert session.call_tool("echo", {"text": "again"}, 30).text == "again"
        assert transport.session_id not in (None, before)
        assert call(manager, "web__echo", tmp_path, text="managed").text == "managed"
        assert manager.status("web")["status"] == "connected"
    finally:
        session.close()


def test_an_unreachable_url_fails_clearly(manager):
    manager.add(agents_store.McpServer("gone", url=f"http://127.0.0.1:{free_port()}/mcp"))
    status = wait_for(manager, "gone", "failed")
    assert status["last_error"].startswith("cannot reach http://127.0.0.1:")


# -- the npm reference servers ------------------------------------------------------------------

def test_the_memory_server_keeps_entities(manager, npm_mcp_servers, tmp_path):
    node, script = npm_mcp_servers["memory"]
    memory_file = tmp_path / "memory.jsonl"
    manager.add(agents_store.McpServer("memory", node, (script,),
                                       env={"MEMORY_FILE_PATH": str(memory_file)}))
    wait_for(manager, "memory")
    created = call(manager, "memory__create_entities", tmp_path, entities=[
        {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}])
    assert not created.is_error, created.text
    graph = call(manager, "memory__read_graph", tmp_path)
    assert graph.structured["entities"] == [
        {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]
    assert "Ada" in memory_file.read_text()


def test_the_filesystem_server_reads_its_folder_only(manager, npm_mcp_servers, tmp_path):
    node, script = npm_mcp_servers["filesystem"]
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("meeting at noon\n")
    manager.add(agents_store.McpServer("files", node, (script, str(shared))))
    wait_for(manager, "files")
    listing = call(manager, "files__list_directory", tmp_path, path=str(shared))
    assert listing.text == "[FILE] notes.txt"
    read = call(manager, "files__read_text_file", tmp_path, path=str(shared / "notes.txt"))
    assert read.text == "meeting at noon\n"
    outside = call(manager, "files__read_text_file", tmp_path, path="/etc/hostname")
    assert outside.is_error and "outside allowed directories" in outside.text

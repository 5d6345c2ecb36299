"""The MCP session's JSON-RPC logic against an in-memory transport, for what a real server
does not do on demand: replies out of order or late, foreign ids, a version we do not speak,
a cursor that never ends. tests/test_mcp.py runs the same paths against real servers."""

from __future__ import annotations

import threading

import pytest

from offgrid.agents.mcp.errors import (
    McpClosed,
    McpProtocolError,
    McpRemoteError,
    McpSessionExpired,
    McpTimeout,
)
from offgrid.agents.mcp.session import McpSession, Transport, tool_result
from support.waiting import wait_until


def initialized(version: str = "2025-11-25"):
    """A server's answer to initialize, and nothing to anything else."""
    def answer(message: dict):
        if message.get("method") == "initialize":
            return {"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": version, "capabilities": {"tools": {}},
                "serverInfo": {"name": "double", "version": "1"}}}
        return None
    return answer


class Wire(Transport):
    """Keeps what the session sends; `answer(message)` gives the reply to deliver, if any."""

    def __init__(self, answer=None):
        self.answer = answer or initialized()
        self.sent: list[dict] = []
        self.abandoned: list[int] = []
        self.version = None
        self.peer = None

    def open(self, peer):
        self.peer = peer

    def send(self, message):
        self.sent.append(message)
        reply = self.answer(message)
        if reply is not None:
            self.peer.receive(reply)

    def abandon(self, request_id):
        self.abandoned.append(request_id)

    def negotiated(self, protocol_version):
        self.version = protocol_version

    def close(self):
        pass

    def requests(self, method: str) -> list[dict]:
        return [message for message in self.sent if message.get("method") == method]


def opened(wire: Wire, **hooks) -> McpSession:
    session = McpSession(wire, client_version="9.9", **hooks)
    session.open(5)
    return session


def in_thread(function, *args):
    """Run `function` in a thread; a list that gets its result or exception."""
    outcome = []

    def run():
        try:
            outcome.append(function(*args))
        except Exception as error:
            outcome.append(error)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_initialize_offers_the_current_version_and_accepts_an_older_one():
    wire = Wire(initialized("2025-06-18"))
    session = opened(wire)
    first, second = wire.sent
    assert first["method"] == "initialize" and first["params"] == {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "offgrid", "version": "9.9"}}
    assert second == {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert session.protocol_version == wire.version == "2025-06-18"
    assert session.server_info == {"name": "double", "version": "1"}


def test_a_version_we_do_not_speak_is_refused():
    with pytest.raises(McpProtocolError, match="2099-01-01"):
        opened(Wire(initialized("2099-01-01")))


def test_replies_find_their_requests_in_any_order():
    wire = Wire()
    session = opened(wire)
    first, first_outcome = in_thread(session.request, "one", None, 5)
    second, second_outcome = in_thread(session.request, "two", None, 5)
    wait_until(lambda: wire.requests("one") and wire.requests("two"))
    one, two = wire.requests("one")[0]["id"], wire.requests("two")[0]["id"]
    wire.peer.receive({"jsonrpc": "2.0", "id": two, "result": {"n": 2}})
    wire.peer.receive({"jsonrpc": "2.0", "id": one, "result": {"n": 1}})
    first.join(5)
    second.join(5)
    assert first_outcome == [{"n": 1}] and second_outcome == [{"n": 2}]


def test_a_timed_out_request_is_cancelled_and_its_late_reply_ignored():
    wire = Wire()
    session = opened(wire)
    with pytest.raises(McpTimeout):
        session.request("tools/call", {"name": "slow"}, 0.2)
    request_id = wire.requests("tools/call")[0]["id"]
    assert wire.requests("notifications/cancelled")[0]["params"] == {
        "requestId": request_id, "reason": "tools/call: no reply in time"}
    assert wire.abandoned == [request_id]
    wire.peer.receive({"jsonrpc": "2.0", "id": request_id, "result": {}})  # late: dropped
    for foreign in (True, "1", [1], None, 10 ** 6):
        wire.peer.receive({"jsonrpc": "2.0", "id": foreign, "result": {}})
    assert session.ended is None


def test_a_timed_out_initialize_is_not_cancelled():
    wire = Wire(lambda message: None)
    with pytest.raises(McpTimeout):
        McpSession(wire, client_version="9.9").open(0.2)
    assert wire.requests("notifications/cancelled") == []


def test_a_json_rpc_error_is_raised_with_its_code():
    wire = Wire()
    session = opened(wire)
    wire.answer = lambda message: {"jsonrpc": "2.0", "id": message["id"], "error": {
        "code": -32602, "message": "Unknown tool", "data": {"tool": "nope"}}}
    with pytest.raises(McpRemoteError) as raised:
        session.request("tools/call", {"name": "nope"}, 5)
    assert (raised.value.code, raised.value.remote_message) == (-32602, "Unknown tool")
    assert raised.value.data == {"tool": "nope"}


def test_server_requests_get_ping_answered_and_the_rest_refused():
    wire = Wire()
    opened(wire)
    wire.peer.receive({"jsonrpc": "2.0", "id": "p1", "method": "ping"})
    wire.peer.receive({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage",
                       "params": {}})
    assert wire.sent[-2:] == [
        {"jsonrpc": "2.0", "id": "p1", "result": {}},
        {"jsonrpc": "2.0", "id": 7, "error": {
            "code": -32601, "message": "Method not found: sampling/createMessage"}}]


def test_logs_are_kept_few_and_short_and_other_notifications_skipped():
    wire = Wire()
    changed = []
    session = opened(wire, on_tools_changed=lambda: changed.append(True))
    for number in range(15):
        wire.peer.receive({"jsonrpc": "2.0", "method": "notifications/message",
                           "params": {"level": "info", "data": {"n": number, "pad": "x" * 999}}})
    wire.peer.receive({"jsonrpc": "2.0", "method": "notifications/progress",
                       "params": {"progressToken": 1, "progress": 1}})
    wire.peer.receive({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    wire.peer.receive("not a message")
    logs = session.recent_logs()
    assert len(logs) == 10 and logs[0]["data"].startswith('{"n": 5,')
    assert all(len(log["data"]) == 500 for log in logs)
    assert changed == [True]


def test_a_lost_connection_fails_waiting_requests_at_once_after_saying_so():
    wire = Wire()
    heard = []
    session = opened(wire, on_lost=lambda error: heard.append(str(error)))
    waiting, outcome = in_thread(session.request, "tools/call", None, 600)
    wait_until(lambda: wire.requests("tools/call"))
    wire.peer.lost(McpClosed("the server exited with code 3"))
    waiting.join(5)
    assert heard == ["the server exited with code 3"]
    assert isinstance(outcome[0], McpClosed) and str(outcome[0]) == heard[0]
    with pytest.raises(McpClosed, match="code 3"):
        session.request("tools/list", None, 5)


def test_tools_are_listed_across_pages_until_the_cursor_ends_or_repeats():
    pages = {None: (["a", "b"], "p2"), "p2": (["c"], "p3"), "p3": (["d"], "p2")}

    def answer(message):
        if message.get("method") != "tools/list":
            return initialized()(message)
        names, cursor = pages[(message.get("params") or {}).get("cursor")]
        return {"jsonrpc": "2.0", "id": message["id"], "result": {
            "tools": [{"name": name, "inputSchema": {"type": "object"}} for name in names]
            + [{"description": "no name"}, "junk"], "nextCursor": cursor}}
    wire = Wire(answer)
    listed = opened(wire).list_tools(5)
    assert [tool["name"] for tool in listed] == ["a", "b", "c", "d"]
    assert len(wire.requests("tools/list")) == 3


def test_a_server_without_the_tools_capability_is_not_asked_for_tools():
    wire = Wire(lambda message: {"jsonrpc": "2.0", "id": message.get("id"), "result": {
        "protocolVersion": "2025-11-25", "capabilities": {"resources": {}},
        "serverInfo": {"name": "resources only"}}})
    assert opened(wire).list_tools(5) == []
    assert wire.requests("tools/list") == []


def test_a_forgotten_session_is_initialized_again_once_and_the_request_retried():
    forgotten = []

    def answer(message):
        if message.get("method") == "initialize":
            wire.session_id = f"s{len(wire.requests('initialize'))}"
        elif message.get("method") == "tools/call" and not forgotten:
            forgotten.append(message["id"])
            wire.peer.request_failed(message["id"], McpSessionExpired(wire.session_id))
            return None
        elif message.get("method") == "tools/call":
            return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": []}}
        return initialized()(message)
    wire = Wire(answer)
    session = opened(wire)
    assert session.call_tool("echo", {}, 5).text == ""
    assert [message.get("method") for message in wire.sent] == [
        "initialize", "notifications/initialized", "tools/call",
        "initialize", "notifications/initialized", "tools/call"]
    assert wire.session_id == "s2"


@pytest.mark.parametrize("result, text", [
    ({"content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
     "one\ntwo"),
    ({"content": [{"type": "image", "data": "AAECAw==", "mimeType": "image/png"}]},
     "[image: image/png, 4 bytes]"),
    ({"content": [{"type": "audio", "data": "%%%", "mimeType": "audio/wav"}]},
     "[audio: audio/wav, undecodable data]"),
    ({"content": [{"type": "resource", "resource": {"uri": "file:///a.bin", "blob": "AAA=",
                                                    "mimeType": "application/zip"}}]},
     "[resource: file:///a.bin, application/zip, 2 bytes]"),
    ({"content": [{"type": "resource_link", "uri": "https://example.org/x"}]},
     "[resource link: https://example.org/x, of unknown type]"),
    ({"content": [{"type": "hologram"}, "junk"]}, "[hologram content]"),
    ({"content": [], "structuredContent": {"sum": 3}}, '{"sum": 3}'),
    ({"content": [{"type": "text", "text": "3"}], "structuredContent": {"sum": 3}}, "3"),
    ({}, ""),
])
def test_tool_results_read_as_text(result, text):
    assert tool_result(result).text == text


def test_tool_results_keep_content_structure_and_error():
    read = tool_result({"content": [{"type": "text", "text": "no"}], "isError": True,
                        "structuredContent": {"why": "no"}})
    assert read.is_error and read.content == ({"type": "text", "text": "no"},)
    assert read.structured == {"why": "no"}
    assert tool_result({"content": [], "isError": "yes"}).is_error is False

"""Agents against real servers and the real test models: runs of the calculator and of MCP tools
in both styles, the guards that end runs (steps, deadline, a failing call repeated), hang-ups
that cancel the run and its tool call, hostile tool input, tools and MCP servers managed over
HTTP and from the command line, kept across a restart, and the same-origin rule."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket

import pytest

from offgrid.agents.builtin.calculator import Calculator
from support import ROOT
from support.cli import offgrid
from support.http import assert_error, get, post, request, stream
from support.mcp import FIXTURE_ARGV, journal
from support.metrics import scrape, value
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.waiting import wait_until

RUN, TOOLS, CALL, MCP = ("/v1/agents/run", "/v1/agents/tools", "/v1/agents/tools/call",
                         "/v1/agents/mcp")
STEP_TYPES = {"thought", "tool_call", "tool_result", "answer", "error"}
FINISH_REASONS = {"stop", "max_steps", "timeout", "repeated_failure", "length"}
EVIL = "http://evil.example"


def run(url: str, prompt: str, **options) -> dict:
    status, _, answer = post(url + RUN, {"prompt": prompt, "temperature": 0, "seed": 7,
                                         **options})
    assert status == 200, answer
    assert answer["finish_reason"] in FINISH_REASONS
    assert all(step["type"] in STEP_TYPES for step in answer["steps"])
    return answer


def add_fixture(url: str, name: str, journal_path) -> None:
    status, _, added = post(url + MCP, {"name": name, "command": FIXTURE_ARGV[0], "args": [
        *FIXTURE_ARGV[1:], "--journal", str(journal_path)]})
    assert status == 201, added
    wait_connected(url, name)


def wait_connected(url: str, name: str) -> dict:
    def connected():
        servers = {s["name"]: s for s in get(url + MCP)[2]["servers"]}
        return servers[name] if servers.get(name, {}).get("status") == "connected" else None
    return wait_until(connected, 60)


@pytest.fixture(scope="module")
def site(start_module_server, tmp_path_factory):
    """A single-user server that lets every origin call its OpenAI endpoints, with the MCP
    fixture server added; and the fixture's journal of cancellations."""
    server = start_module_server("--model", CHAT_MODEL, "--parallel", "2",
                                 env={"OFFGRID_CORS_ORIGINS": "*"})
    journal_path = tmp_path_factory.mktemp("mcp") / "journal.jsonl"
    add_fixture(server.url, "fixture", journal_path)
    server.journal = journal_path
    return server


# -- runs -------------------------------------------------------------------------------------

def test_the_calculator_task_calls_the_calculator_and_reads_the_result(site):
    answer = run(site.url, "What is 17 * 23? Use the calculator.", tools=["calculator"],
                 tool_choice="required")
    call, result, *rest = answer["steps"]
    assert call["type"] == "tool_call" and call["tool_name"] == "calculator"
    assert isinstance(call["tool_args"]["expression"], str)
    assert result["type"] == "tool_result" and " = " in result["tool_result"]
    assert rest, "the model took another step with the result"
    assert answer["task_id"].startswith("agent-") and answer["model"] == CHAT_MODEL
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@pytest.mark.parametrize("model", [CHAT_MODEL, "gemma-3-270m-q4_k_m"])
def test_react_steps_parse_on_small_models(site, model):
    answer = run(site.url, "What is 6 * 7?", model=model, style="react",
                 tools=["calculator"], tool_choice="required", max_steps=3)
    assert answer["style"] == "react"
    assert answer["steps"][0]["type"] == "thought"
    calls = [step for step in answer["steps"] if step["type"] == "tool_call"]
    assert calls, answer["steps"]
    pattern = Calculator.parameters["properties"]["expression"]["pattern"]
    for step in calls:
        assert re.fullmatch(pattern, step["tool_args"]["expression"])
    assert answer["finish_reason"] != "length"


def test_max_steps_ends_a_run(site):
    answer = run(site.url, "What is 2 + 2?", tools=["calculator"], tool_choice="required",
                 max_steps=1)
    assert answer["finish_reason"] == "max_steps"
    assert [step["type"] for step in answer["steps"]] == ["tool_call", "tool_result"]
    assert answer["output"] == ""


def test_the_deadline_ends_a_run_and_cancels_its_tool_call(site):
    answer = run(site.url, "Wait for me.", tools=["fixture__wait"], tool_choice="required",
                 timeout_s=3)
    assert answer["finish_reason"] == "timeout"
    call, failed = answer["steps"][:2]
    assert call["tool_name"] == "fixture__wait" and failed["type"] == "error"
    assert failed["duration_ms"] < 10_000
    wait_until(lambda: any(entry.get("slow") == "cancelled" for entry in journal(site.journal)))


def test_the_same_failing_call_twice_ends_the_run(site):
    answer = run(site.url, "Try it.", tools=["fixture__fail"], tool_choice="required")
    assert answer["finish_reason"] == "repeated_failure"
    errors = [step for step in answer["steps"] if step["type"] == "error"]
    assert len(errors) == 2 and errors[0]["tool_result"] == "it went wrong"


def test_a_server_crashing_mid_call_is_an_error_step_and_comes_back(site):
    answer = run(site.url, "Go.", tools=["fixture__crash"], tool_choice="required",
                 max_steps=1)
    failed = answer["steps"][1]
    assert failed["type"] == "error" and "fixture" in failed["tool_result"]
    assert wait_connected(site.url, "fixture")["restarts"] >= 1
    assert post(site.url + CALL, {"name": "fixture__echo",
                                  "arguments": {"text": "back"}})[2]["result"] == "back"


def test_the_stream_sends_status_tokens_and_steps_in_order_then_done(site):
    events = stream(site.url + RUN, {"prompt": "What is 17 * 23?", "tools": ["calculator"],
                                     "tool_choice": "required", "temperature": 0})
    assert "[DONE]" not in events  # done is the last event
    assert events[0]["type"] == "status" and events[0]["task_id"].startswith("agent-")
    assert events[-1]["type"] == "done" and {e["type"] for e in events[:-1]} <= {
        "status", "token", "step"}
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert [s["type"] for s in steps[:2]] == ["tool_call", "tool_result"]
    assert steps == events[-1]["steps"]
    tokens = "".join(e["content"] for e in events if e["type"] == "token")
    assert tokens.strip() == events[-1]["output"]
    if events[-1]["finish_reason"] == "stop":
        assert steps[-1] == {**steps[-1], "type": "answer", "content": events[-1]["output"]}


def test_a_client_that_hangs_up_cancels_the_run_and_its_tool_call(site):
    before = len(journal(site.journal))
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=60)
    connection.request("POST", RUN, json.dumps({
        "prompt": "Wait.", "tools": ["fixture__wait"], "stream": True,
        "tool_choice": "required"}), {"Content-Type": "application/json"})
    response = connection.getresponse()
    while b'"tool_call"' not in response.readline():
        pass
    connection.sock.shutdown(socket.SHUT_RDWR)  # mid-call: the tool is waiting
    connection.close()
    wait_until(lambda: [e for e in journal(site.journal)[before:]
                        if e.get("slow") == "cancelled"])
    wait_until(lambda: value(scrape(site.url), "offgrid_slots_busy", model=CHAT_MODEL) == 0)
    assert run(site.url, "What is 1 + 1?", tools=["calculator"], tool_choice="required",
               max_steps=1)["finish_reason"] == "max_steps"


def test_runs_refuse_what_they_cannot_do(site):
    for body, status, code, param in [
            ({}, 400, "missing_required_parameter", "prompt"),
            ({"prompt": "x", "style": "chain"}, 400, "invalid_value", "style"),
            ({"prompt": "x", "max_steps": 0}, 400, "invalid_value", "max_steps"),
            ({"prompt": "x", "tools": "calculator"}, 400, "invalid_value", "tools"),
            ({"prompt": "x", "tools": ["nope"]}, 404, "tool_not_found", None),
            ({"prompt": "x", "tools": ["shell"]}, 409, "tool_disabled", None),
            ({"prompt": "x", "model": "no-such-model"}, 404, "model_not_found", "model"),
            ({"prompt": "x", "model": EMBEDDING_MODEL}, 400, "model_not_supported", "model")]:
        answer = post(site.url + RUN, body)
        assert_error(answer[0], answer[2], status, code)
        assert answer[2]["error"]["param"] == param


# -- tools ------------------------------------------------------------------------------------

def test_tools_are_listed_with_the_admins_ones_off(site):
    enabled = {tool["name"]: tool for tool in get(site.url + TOOLS)[2]["tools"]}
    every = {tool["name"]: tool for tool in get(site.url + TOOLS + "?all=true")[2]["tools"]}
    assert {"calculator", "current_time", "read_file", "write_file", "list_files",
            "kb_search", "fixture__echo"} <= set(enabled)
    assert {"shell", "http_get"} & set(enabled) == set()
    assert not every["shell"]["enabled"] and every["shell"]["admins_only"]
    assert every["fixture__echo"]["source"] == "mcp" and every["fixture__echo"]["server"] == \
        "fixture"
    assert every["calculator"]["parameters"]["required"] == ["expression"]


def test_a_hostile_calculator_expression_is_refused_without_running(site, tmp_path):
    marker = tmp_path / "ran"
    for expression in (f"__import__('os').system('touch {marker}')", "9 ** 9 ** 9 ** 9",
                       "(1).__class__", "factorial(10 ** 6)"):
        status, _, answer = post(site.url + CALL, {"name": "calculator",
                                                   "arguments": {"expression": expression}})
        assert status == 200 and answer["is_error"], (expression, answer)
    assert not marker.exists()
    assert post(site.url + CALL, {"name": "calculator", "arguments": {
        "expression": "17 * 23"}})[2]["result"] == "17 * 23 = 391"


def test_file_tools_stay_in_the_workspace(site):
    for path in ("../../etc/passwd", "/etc/passwd"):
        answer = post(site.url + CALL, {"name": "read_file", "arguments": {"path": path}})[2]
        assert answer["is_error"] and "root:" not in answer["result"]
    post(site.url + CALL, {"name": "write_file", "arguments": {"path": "notes/a.txt",
                                                               "content": "shed 3"}})
    assert (site.home / "workspace" / "notes" / "a.txt").read_text() == "shed 3"
    assert post(site.url + CALL, {"name": "read_file", "arguments": {
        "path": "notes/a.txt"}})[2]["result"] == "shed 3"


def test_a_tool_that_is_off_cannot_be_called_or_given(site):
    assert post(site.url + CALL, {"name": "shell", "arguments": {"command": ["id"]}})[0] == 409
    status, _, tool = request("PATCH", site.url + TOOLS, {"name": "calculator",
                                                          "enabled": False})
    assert status == 200 and tool["enabled"] is False
    assert "calculator" not in {t["name"] for t in get(site.url + TOOLS)[2]["tools"]}
    assert post(site.url + RUN, {"prompt": "x", "tools": ["calculator"]})[0] == 409
    request("PATCH", site.url + TOOLS, {"name": "calculator", "enabled": True})
    for body in ({"name": "nope", "enabled": True}, {"name": "calculator"},
                 {"name": "calculator", "enabled": "yes"}):
        assert request("PATCH", site.url + TOOLS, body)[0] in (400, 404)


# -- MCP servers over HTTP --------------------------------------------------------------------

def test_mcp_servers_are_refused_when_they_could_not_be_one(site):
    for body, param in [({"name": "bad name", "command": "x"}, "name"),
                        ({"name": "x"}, "command"),
                        ({"name": "x", "command": "x", "args": "-y"}, "args"),
                        ({"name": "x", "url": "ftp://example.org/mcp"}, "url"),
                        ({"name": "x", "url": "npx 'unclosed"}, "url")]:
        status, _, error = post(site.url + MCP, body)
        assert status == 400 and error["error"]["param"] == param, (body, error)
    status, _, error = post(site.url + MCP, {"name": "fixture", "command": "true"})
    assert_error(status, error, 409, "mcp_server_exists")
    assert request("DELETE", site.url + MCP + "/nope")[0] == 404


def test_an_mcp_server_is_tested_without_being_kept(site):
    status, _, result = post(site.url + MCP + "/test", {
        "url": " ".join([*FIXTURE_ARGV])})  # the seed system's form: a command line as url
    assert status == 200 and result["ok"], result
    assert "test__echo" in {tool["name"] for tool in result["tools"]}
    assert [s["name"] for s in get(site.url + MCP)[2]["servers"]] == ["fixture"]
    failed = post(site.url + MCP + "/test", {"command": "/no/such/program"})[2]
    assert failed["ok"] is False and failed["error"]
    assert post(site.url + MCP + "/test", {"name": "fixture"})[2]["ok"]


def test_the_filesystem_server_from_npm_reads_its_folder_only(site, npm_mcp_servers, tmp_path):
    (tmp_path / "plan.txt").write_text("the generator is in shed 3")
    command, *args = npm_mcp_servers["filesystem"]
    assert post(site.url + MCP, {"name": "files", "command": command,
                                 "args": [*args, str(tmp_path)]})[0] == 201
    wait_connected(site.url, "files")
    read = post(site.url + CALL, {"name": "files__read_text_file",
                                  "arguments": {"path": str(tmp_path / "plan.txt")}})[2]
    assert read["result"] == "the generator is in shed 3" and not read["is_error"]
    outside = post(site.url + CALL, {"name": "files__read_text_file",
                                     "arguments": {"path": "/etc/passwd"}})[2]
    assert outside["is_error"] and "root:" not in outside["result"]
    assert request("DELETE", site.url + MCP + "/files")[2]["deleted"] is True
    assert "files__read_text_file" not in {t["name"] for t in get(site.url + TOOLS)[2]["tools"]}


# -- the same-origin rule ---------------------------------------------------------------------

def test_web_pages_of_other_origins_cannot_run_agents_or_start_programs(site):
    origin = {"Origin": EVIL}
    chat = post(site.url + "/v1/chat/completions", {"model": CHAT_MODEL, "max_tokens": 1,
                                                    "messages": [{"role": "user",
                                                                  "content": "hi"}]},
                headers=origin)
    assert chat[0] == 200 and chat[1]["Access-Control-Allow-Origin"] in ("*", EVIL)
    for method, path, body in [("POST", RUN, {"prompt": "x"}), ("GET", TOOLS, None),
                               ("POST", CALL, {"name": "calculator"}),
                               ("POST", MCP, {"name": "evil", "command": "touch"}),
                               ("DELETE", MCP + "/fixture", None)]:
        status, headers, error = request(method, site.url + path, body, headers=origin)
        assert_error(status, error, 403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in headers
        preflight = request("OPTIONS", site.url + path, headers={
            **origin, "Access-Control-Request-Method": method})
        assert preflight[0] == 403 and "Access-Control-Allow-Origin" not in preflight[1]
    assert [s["name"] for s in get(site.url + MCP)[2]["servers"]] == ["fixture"]
    same = request("GET", site.url + TOOLS, headers={"Origin": site.url})
    assert same[0] == 200


def test_config_reports_agents(site):
    assert get(site.url + "/v1/system/config")[2]["features"]["agent"] is True


# -- as a new user would ----------------------------------------------------------------------

WALKTHROUGH = "### From nothing to an agent that remembers"
NPX_MEMORY = ["npx", "-y", "@modelcontextprotocol/server-memory"]


def walkthrough() -> list[list[list[str]]]:
    """docs/agents.md's walkthrough: its `sh` blocks (before and after the restart), each a list
    of `offgrid ...` commands as argv lists."""
    section = (ROOT / "docs" / "agents.md").read_text().split(WALKTHROUGH, 1)[1]
    section = section.split("\n#", 1)[0]
    return [[shlex.split(line) for line in block.splitlines()]
            for block in re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)]


def run_as_written(argv: list[str], memory_server: list[str], env: dict) -> tuple[str, str]:
    """One command of the walkthrough, npx's download replaced by the installed package: its
    stdout and stderr, once it has succeeded (for `offgrid agent`: once it has ended a run, which
    the starter model may end at max_steps, exit status 1)."""
    assert argv[0] == "offgrid", argv
    if argv[-3:] == NPX_MEMORY:
        argv = argv[:-3] + memory_server
    done = offgrid(*argv[1:], env=env, timeout=300)
    assert done.returncode in ((0, 1) if argv[1] == "agent" else (0,)), (argv, done.stderr)
    return done.stdout, done.stderr


def test_the_docs_walkthrough_then_a_restart_keeps_servers_and_settings(
        start_server, npm_mcp_servers, tmp_path):
    """docs/agents.md, as written: `offgrid mcp add memory -- npx ...`, `offgrid agent
    "remember ..."` shows the calls and their results; after a restart the server and the tool
    settings are there, and the second block runs."""
    before, after = walkthrough()
    assert [argv[:3] for argv in before] == [["offgrid", "mcp", "add"], ["offgrid", "mcp", "list"],
                                             ["offgrid", "tools", "off"], ["offgrid", "agent",
                                             "remember that the generator is in shed 3, then "
                                             "tell me where it is"]]
    home = {"OFFGRID_HOME": str(tmp_path / "home"),
            "MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}  # the server's, so its MCP's
    first = start_server("--model", CHAT_MODEL, env=home)
    env = {"OFFGRID_URL": first.url}
    memory = npm_mcp_servers["memory"]
    added, _ = run_as_written(before[0], memory, env)
    assert "added memory" in added
    wait_connected(first.url, "memory")
    listed, _ = run_as_written(before[1], memory, env)
    assert re.search(r"memory\s+connected\s+9 tools", listed), listed
    assert run_as_written(before[2], memory, env)[0].strip() == "current_time is off"
    _, steps = run_as_written(before[3], memory, env)
    assert re.search(r"^call memory__\w+ \{", steps, re.M), steps
    assert re.search(r"^  (->|!!) ", steps, re.M), steps
    assert re.search(r"^\[\w+: \d+ tool calls, \d+ tokens\]$", steps, re.M), steps

    first.stop()
    second = start_server("--model", CHAT_MODEL, env=home)
    env = {"OFFGRID_URL": second.url}
    wait_connected(second.url, "memory")
    every = {t["name"]: t["enabled"] for t in get(second.url + TOOLS + "?all=true")[2]["tools"]}
    assert every["current_time"] is False and every["memory__read_graph"] is True
    outputs = [run_as_written(argv, memory, env)[0] for argv in after]
    assert [argv[1:3] for argv in after] == [["mcp", "list"], ["tools"], ["tools", "on"],
                                             ["mcp", "test"], ["mcp", "rm"]]
    assert re.search(r"memory\s+connected\s+9 tools", outputs[0]), outputs[0]
    assert re.search(r"^off current_time ", outputs[1], re.M), outputs[1]
    assert re.search(r"^on  memory__read_graph ", outputs[1], re.M), outputs[1]
    assert outputs[2].strip() == "current_time is on"
    assert outputs[3].startswith("ok: 9 tools")
    assert outputs[4].strip() == "removed memory"
    assert get(second.url + MCP)[2]["servers"] == []

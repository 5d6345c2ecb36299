"""The shell tool: real programs run in the workspace with no shell between, no server secrets in
their environment, and nothing left running past the call's deadline or cancellation."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from offgrid.agents.builtin.shell import MAX_OUTPUT_BYTES
from offgrid.agents.tools import ToolContext, ToolResult
from support.builtin_tools import TOOLS, refused
from support.waiting import wait_until


def shell(workspace: Path, command, **context) -> ToolResult:
    return TOOLS["shell"].call({"command": command}, ToolContext(workspace, None, **context))


def test_a_program_runs_in_the_workspace_with_its_exit_code(workspace):
    assert shell(workspace, ["echo", "hi"]).text == "Exit code 0. Output:\nhi\n"
    assert shell(workspace, ["pwd"]).text == f"Exit code 0. Output:\n{workspace}\n"
    failed = shell(workspace, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert failed.is_error and failed.text == "Exit code 3. Output:\nout\nerr\n"
    assert shell(workspace, ["true"]).text == "Exit code 0. Output:\n(none)"


def test_no_shell_expands_anything(workspace):
    result = shell(workspace, ["echo", "$HOME", "*", "`id`", ";", "ls", "|", "cat", ">", "x"])
    assert result.text == "Exit code 0. Output:\n$HOME * `id` ; ls | cat > x\n"
    assert os.listdir(workspace) == []


def test_the_servers_environment_is_not_passed_on(workspace, monkeypatch):
    monkeypatch.setenv("OFFGRID_ADMIN_PASSWORD", "hunter2")
    output = shell(workspace, ["env"]).text
    assert "hunter2" not in output and f"HOME={workspace}\n" in output


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie no longer does: it waits for a parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_out_of_time_is_killed_with_what_it_started(workspace):
    started = time.monotonic()
    result = shell(workspace, ["sh", "-c", "sleep 30 & echo $!; wait"],
                   deadline=time.monotonic() + 1)
    refused(result, "ran longer than 1.0 s and was stopped")
    assert time.monotonic() - started < 25  # not the 30 s of sleep
    sleeper = int(result.text.splitlines()[-1])
    wait_until(lambda: not alive(sleeper), message="the program's child is killed")


def test_what_a_program_leaves_running_ends_with_the_call(workspace):
    result = shell(workspace, ["sh", "-c", "sleep 30 & echo $!"])
    assert not result.is_error, result
    wait_until(lambda: not alive(int(result.text.splitlines()[-1])))


def test_a_cancelled_run_stops_its_command(workspace):
    cancelled = threading.Event()
    results = []
    runner = threading.Thread(target=lambda: results.append(shell(
        workspace, ["sh", "-c", "echo begun; touch started; exec sleep 30"],
        cancelled=cancelled)))
    runner.start()
    wait_until(lambda: (workspace / "started").exists())
    cancelled.set()
    runner.join(TOOLS["shell"].timeout_s / 2)  # well before the call would time out
    assert not runner.is_alive()
    assert refused(results[0], "cancelled").endswith("until then:\nbegun\n")


def test_a_flood_of_output_keeps_its_start_and_end(workspace):
    program = "import sys; sys.stdout.write('a' * 1_000_000 + 'END')"
    text = shell(workspace, [sys.executable, "-c", program]).text
    assert len(text) < MAX_OUTPUT_BYTES + 200
    assert "a\n[... 934,467 bytes of output left out ...]\na" in text and text.endswith("aEND")


@pytest.mark.parametrize("command, why", [
    ("ls -l", "list of strings"), ([], "list of strings"), (["ls", 3], "list of strings"),
    (["ls", "a\x00"], "NUL"), (["  "], "empty"), (["no-such-program-here"], "no program"),
    (["echo"] * 300, "most is 256"), ([str(Path(__file__))], "cannot be run"),
])
def test_a_bad_command_is_refused(workspace, command, why):
    refused(shell(workspace, command), why)

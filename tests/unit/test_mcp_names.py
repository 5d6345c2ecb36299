"""How the MCP manager names servers' tools, masks their credentials and waits to restart them;
tests/test_mcp.py sees the same through real servers."""

from __future__ import annotations

import hashlib
import re

from offgrid.agents.mcp.manager import Backoff, Mask, tool_names
from offgrid.store.agents import McpServer


def named(*names: str) -> list[str]:
    return [name for name, _ in tool_names("srv", [{"name": name} for name in names])]


def test_tool_names_keep_to_what_offgrid_allows():
    assert named("read_file", "read-file", "read.file", "ünïcode tool") == [
        "srv__read_file", "srv__read-file", "srv__read_file-" + named_hash("read.file"),
        "srv___n_code_tool"]
    for name in named("x" * 100, "a/b/c" * 30):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name)


def named_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def test_long_names_end_in_a_hash_and_stay_apart():
    first, second = named("x" * 80 + "one", "x" * 80 + "two")
    assert len(first) == len(second) == 64 and first != second
    assert first.startswith("srv__xxx") and first.endswith("-" + named_hash("x" * 80 + "one"))


def test_a_name_listed_twice_counts_once():
    assert named("echo", "echo") == ["srv__echo"]


def test_masks_hide_env_and_header_values_and_their_words():
    mask = Mask(McpServer("s", "cmd", env={"TOKEN": "abcd1234", "DEBUG": "1"},
                          headers={"Authorization": "Bearer xyz-9876"}))
    assert mask("token abcd1234, auth Bearer xyz-9876, or just xyz-9876, debug 1") == \
        "token ***, auth ***, or just ***, debug 1"


def test_restarts_back_off_to_a_minute_and_start_over_after_a_stable_minute():
    backoff = Backoff()
    assert [backoff.after(0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.after(60) == 1 and backoff.after(3) == 2

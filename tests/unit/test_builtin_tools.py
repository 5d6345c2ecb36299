"""The agents' built-in tools as a set: each has a schema the agents' grammar enforces, the two
that reach out are off until an admin turns them on, arguments are checked whatever the
grammar did, and each user has a workspace. Each tool's own behaviour is tested in
test_tool_<name>.py: arguments as a model might write them (hostile ones included), real
folders, programs, HTTP servers and knowledge bases, and every refusal an error result the
model can read, never an exception, with nothing refused run."""

from __future__ import annotations

import json
from pathlib import Path

from offgrid.agents.builtin import workspace_folder
from offgrid.agents.tools import ToolContext
from offgrid.config import Settings
from offgrid.engine import grammar
from support.builtin_tools import ALL, TOOLS, call, refused


def test_every_tool_has_a_schema_the_agents_grammar_enforces():
    assert [t.name for t in ALL] == ["calculator", "current_time", "read_file", "write_file",
                                     "list_files", "http_get", "shell"]  # no kb: no kb_search
    for tool in ALL:
        schema = tool.parameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", [])) <= set(schema["properties"])
        grammar.json_schema(schema)  # SchemaError if it could not be enforced
        assert tool.describe() == {"name": tool.name, "description": tool.description,
                                   "parameters": schema}
        json.dumps(tool.describe())


def test_only_http_get_and_shell_are_off_and_an_admins_to_turn_on():
    off = {t.name for t in ALL if not t.enabled_by_default}
    assert off == {t.name for t in ALL if t.admins_only} == {"http_get", "shell"}
    assert "not a sandbox" in TOOLS["shell"].description


def test_arguments_are_checked_whatever_the_grammar_did():
    refused(TOOLS["calculator"].call(["1+1"], ToolContext(Path("/x"), None)), "JSON object")
    refused(call("calculator", expression="1", extra=2), "no argument 'extra'")
    refused(call("calculator"), "'expression' is missing")
    refused(call("calculator", expression=7), "must be a string")
    refused(call("read_file", path="x" * 2000), "characters long")


def test_each_user_has_a_workspace_in_multi_user_mode(tmp_path):
    assert workspace_folder(Settings(home=tmp_path), 3) == tmp_path / "workspace"
    multi = Settings(home=tmp_path, multi_user=True)
    assert workspace_folder(multi, 3) == tmp_path / "workspace" / "user-3"
    assert workspace_folder(multi, None) == tmp_path / "workspace" / "guests"

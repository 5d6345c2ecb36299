"""Tool calling for any chat template: the tools are described in the system prompt, the model
answers `{"tool_calls": [{"name": ..., "arguments": {...}}]}` under a grammar that allows only
the offered tools with their argument schemas, and that answer becomes OpenAI's `tool_calls`."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from ..engine import grammar
from ..engine.errors import InvalidGrammar
from .errors import BadRequest

MAX_PARALLEL_CALLS = 8
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NO_PARAMETERS = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolUse:
    """The tools a request offers and how it wants them used."""
    tools: tuple[Tool, ...]
    required: bool  # "required" or a named function: the answer must be a call
    forced: str | None  # the one function a named tool_choice asks for
    parallel: bool

    @property
    def callable(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if self.forced in (None, t.name))


def from_request(body: dict) -> ToolUse | None:
    """The request's tool use, or None when it offers no tools or says tool_choice "none"."""
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise BadRequest("Invalid value for 'parallel_tool_calls': expected true or false",
                         code="invalid_value", param="parallel_tool_calls")
    if choice is None:
        choice = "auto" if tools else "none"
    if choice == "none":
        return None
    if not tools:
        raise BadRequest("'tool_choice' needs 'tools'", code="invalid_value", param="tool_choice")
    if choice in ("auto", "required"):
        return ToolUse(tools, choice == "required", None, parallel)
    name = _forced_name(choice)
    if name not in {t.name for t in tools}:
        raise BadRequest(f"'tool_choice' names {name!r}, which is not among 'tools'",
                         code="invalid_value", param="tool_choice")
    return ToolUse(tools, True, name, parallel)


def _tools(value) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid("tools", "an array of function tools")
    return tuple(_tool(item, f"tools[{i}]") for i, item in enumerate(value))


def _tool(item, where: str) -> Tool:
    function = item.get("function") if isinstance(item, dict) else None
    if not isinstance(item, dict) or item.get("type") != "function" or not isinstance(function,
                                                                                     dict):
        raise _invalid(where, 'an object {"type": "function", "function": {...}}')
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _invalid(f"{where}.function.name", "1 to 64 letters, digits, '_' or '-'")
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise _invalid(f"{where}.function.description", "a string")
    parameters = function.get("parameters") or _NO_PARAMETERS
    if not isinstance(parameters, dict):
        raise _invalid(f"{where}.function.parameters", "a JSON Schema object")
    try:
        grammar.json_schema(parameters)  # refused here, it can be named
    except InvalidGrammar as error:
        raise BadRequest(f"The parameters of {name!r} cannot be enforced: {error}",
                         code="invalid_value", param=f"{where}.function.parameters") from None
    return Tool(name, description, parameters)


def _forced_name(choice) -> str:
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or choice.get("type") != "function" or not isinstance(
            function.get("name"), str):
        raise _invalid("tool_choice", '"none", "auto", "required" or '
                                      '{"type": "function", "function": {"name": ...}}')
    return function["name"]


def _invalid(param: str, expected: str) -> BadRequest:
    return BadRequest(f"Invalid value for '{param}': expected {expected}", code="invalid_value",
                      param=param)


# -- prompt and grammar -----------------------------------------------------------------------------

def instructions(use: ToolUse) -> str:
    listed = "\n".join(json.dumps({"name": t.name, "description": t.description,
                                   "parameters": t.parameters}) for t in use.callable)
    rules = ['To call tools, answer with only a JSON object of this form: '
             '{"tool_calls": [{"name": "<tool name>", "arguments": {<its arguments>}}]}.']
    if use.forced:
        rules.append(f'You must call the tool "{use.forced}".')
    elif use.required:
        rules.append("You must call a tool.")
    else:
        rules.append("If no tool is needed, answer in plain text instead.")
    if not use.parallel:
        rules.append("Call exactly one tool at a time.")
    return "You can use these tools:\n" + listed + "\n" + " ".join(rules)


def with_instructions(messages: list[tuple[str, str]], use: ToolUse) -> list[tuple[str, str]]:
    """The tool instructions joined to the system message, or as one at the start."""
    if messages and messages[0][0] == "system":
        return [("system", messages[0][1] + "\n\n" + instructions(use)), *messages[1:]]
    return [("system", instructions(use)), *messages]


def call_grammar(use: ToolUse) -> str:
    """The answer's grammar: calls of the callable tools with valid arguments (one call when
    a function is named or parallel calls are off, a bounded number in any case), or, unless
    a call is required, plain text that does not start with `{`."""
    tools = use.callable
    calls = [{"type": "object", "required": ["name", "arguments"],
              "properties": {"name": {"const": t.name}, "arguments": {"$ref": f"#/$defs/{i}"}}}
             for i, t in enumerate(tools)]
    schema = {"type": "object", "required": ["tool_calls"],
              "$defs": {str(i): grammar.rebased(t.parameters, f"#/$defs/{i}")
                        for i, t in enumerate(tools)},
              "properties": {"tool_calls": {
                  "type": "array", "minItems": 1,
                  "maxItems": MAX_PARALLEL_CALLS if use.parallel and not use.forced else 1,
                  "items": calls[0] if len(calls) == 1 else {"anyOf": calls}}}}
    json_grammar = grammar.json_schema(schema, ["tool_calls", "name", "arguments"])
    return json_grammar if use.required else grammar.json_or_text(json_grammar)


# -- the conversation ------------------------------------------------------------------------------

def call_text(calls: list[dict]) -> str:
    """An assistant's earlier tool calls, written the way the model is told to write them."""
    return json.dumps({"tool_calls": [
        {"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])}
        for c in calls]})


def _arguments(arguments: str):
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def result_text(name: str | None, content: str) -> str:
    """A tool's result, as the user turn that hands it back to the model."""
    return f"Result of the tool {name or 'call'}:\n{content}"


def is_call(text: str) -> bool:
    """Whether the model answered in the tool-call form (which is never shown as text): under
    the call grammar, plain text cannot start with `{`."""
    return text.lstrip().startswith("{")


def parse(text: str) -> list[dict] | None:
    """OpenAI `tool_calls` from the model's answer: each complete call it wrote, a repeated call
    once (an answer cut short by max_tokens keeps the calls it finished); None if it answered
    in plain text."""
    if not is_call(text):
        return None
    decoder, calls, seen = json.JSONDecoder(), [], set()
    position = text.find("[") + 1
    while position:
        while position < len(text) and text[position] in " ,\n":
            position += 1
        try:
            call, position = decoder.raw_decode(text, position)
        except ValueError:  # the end of the array, or a call cut short
            break
        if not isinstance(call, dict) or not {"name", "arguments"} <= call.keys():
            break
        arguments = json.dumps(call.get("arguments"), sort_keys=True)
        if (call.get("name"), arguments) not in seen:
            seen.add((call.get("name"), arguments))
            calls.append({"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                          "function": {"name": call["name"],
                                       "arguments": json.dumps(call["arguments"])}})
    return calls

"""Tool calling for any chat template: the tools are described in the system prompt, the model
answers `{"tool_calls": [{"name": ..., "arguments": {...}}]}` under a grammar that allows only
the offered tools with valid arguments, and that answer is read back as calls.

It knows no wire format: each face reads tools from its own request shape into ToolUse, and
writes the calls parsed here in its own response shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import grammar

MAX_PARALLEL_CALLS = 8


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # a JSON Schema the converter can enforce


@dataclass(frozen=True)
class ToolUse:
    """The tools a request offers and how it wants them used."""
    tools: tuple[Tool, ...]
    required: bool  # the answer must be a call
    forced: str | None  # the one tool the request names, if any
    parallel: bool  # several calls in one answer

    @property
    def callable(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if self.forced in (None, t.name))


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: object  # as the model wrote them: a JSON object, usually


# -- prompt and grammar ----------------------------------------------------------------------------

def instructions(use: ToolUse) -> str:
    listed = "\n".join(signature(t) for t in use.callable)
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
    a tool is named or parallel calls are off, a bounded number in any case), or, unless a call
    is required, plain text that does not start with `{`."""
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


SHAPE_DEPTH = 4  # how deep a signature spells out nested arguments
ARGUMENT_NOTE_CHARS = 160  # of an argument's description, what a signature keeps


def signature(tool: Tool) -> str:
    """A tool as the prompt lists it: its name, what it does, and the shape of its arguments
    with a note on each. Short, so that many tools fit a small context: the grammar, not the
    prompt, holds the model to the whole schema."""
    lines = [f"- {tool.name}: {tool.description}".rstrip(": "),
             f"  arguments: {_shape(tool.parameters, 0)}"]
    for name, schema in _properties(tool.parameters).items():
        note = schema.get("description") if isinstance(schema, dict) else None
        if isinstance(note, str) and note.strip():
            lines.append(f"  {name}: {_cut(note.strip(), ARGUMENT_NOTE_CHARS)}")
    return "\n".join(lines)


def _properties(schema) -> dict:
    found = schema.get("properties") if isinstance(schema, dict) else None
    return found if isinstance(found, dict) else {}


def _shape(schema, depth: int) -> str:
    """A JSON Schema written the way its JSON looks: {"a": string, "b"?: [number]}."""
    if not isinstance(schema, dict):
        return "any"
    if depth >= SHAPE_DEPTH:
        return "..."
    if "const" in schema:
        return json.dumps(schema["const"])
    if isinstance(schema.get("enum"), list):
        return " | ".join(json.dumps(value) for value in schema["enum"][:20])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(_shape(option, depth + 1) for option in schema[key][:8])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_shape({**schema, "type": k}, depth) for k in kind[:8])
    if kind == "array" or "items" in schema:
        return f"[{_shape(schema.get('items'), depth + 1)}]"
    properties = _properties(schema)
    if kind == "object" or properties:
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        return "{" + ", ".join(f"{json.dumps(name)}{'' if name in required else '?'}: "
                               f"{_shape(value, depth + 1)}"
                               for name, value in properties.items()) + "}"
    return kind if isinstance(kind, str) else "any"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- the conversation ------------------------------------------------------------------------------

def call_text(calls: list[ToolCall]) -> str:
    """An assistant's earlier tool calls, written the way the model is told to write them."""
    return json.dumps({"tool_calls": [{"name": c.name, "arguments": c.arguments}
                                      for c in calls]})


def result_text(name: str | None, content: str) -> str:
    """A tool's result, as the user turn that hands it back to the model."""
    return f"Result of the tool {name or 'call'}:\n{content}"


def is_call(text: str) -> bool:
    """Whether the model answered in the tool-call form (which is never shown as text): under
    the call grammar, plain text cannot start with `{`."""
    return text.lstrip().startswith("{")


def parse(text: str) -> list[ToolCall] | None:
    """The calls in the model's answer: each complete call it wrote, a repeated call once (an
    answer cut short by max_tokens keeps the calls it finished); None if it answered in plain
    text."""
    if not is_call(text):
        return None
    decoder, calls = json.JSONDecoder(), []
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
        found = ToolCall(call["name"], call["arguments"])
        if all(_key(found) != _key(known) for known in calls):
            calls.append(found)
    return calls


def _key(call: ToolCall) -> tuple[str, str]:
    return call.name, json.dumps(call.arguments, sort_keys=True)


class AnswerReader:
    """Reads an answer, piece by piece, that may be a tool call: text goes out as soon as it
    cannot be the start of a call; a call is read whole once the answer ends (a call is never
    shown as text, however it ends)."""

    def __init__(self, use: ToolUse | None):
        self.use = use
        self.text = ""  # the whole answer so far
        self._holding = use is not None

    def feed(self, piece: str) -> str:
        """The text that can go out now."""
        self.text += piece
        if not self._holding:
            return piece
        said = self.text.lstrip()
        if not said or said.startswith("{") or self.use.required:
            return ""
        self._holding = False
        return self.text

    def end(self) -> tuple[str, list[ToolCall]]:
        """Once the answer has ended: (the text still to go out, the calls it made)."""
        if not self._holding:
            return "", []
        calls = parse(self.text)
        if calls:
            return "", calls
        return ("" if is_call(self.text) else self.text), []

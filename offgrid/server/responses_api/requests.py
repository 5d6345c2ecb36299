"""OpenAI's Responses bodies, read whole. `input` is a string or items: messages (their text in
`input_text` / `output_text` parts), `function_call` and `function_call_output`; with the
conversation a `previous_response_id` continues, they become the chat request the engine runs
(the same ChatCompletionRequest the chat face makes)."""

from __future__ import annotations

from dataclasses import dataclass

from ...engine import grammar, toolcalling
from ...engine.toolcalling import Tool, ToolCall, ToolUse
from .. import fields
from ..errors import BadRequest
from ..fields import invalid, missing
from ..openai.requests import (
    ChatCompletionRequest,
    KnowledgeOptions,
    call_arguments,
    choose_tools,
    lora_choices,
    sampling,
    schema_grammar,
    tool,
)

ROLES = ("user", "assistant", "system", "developer")  # tuples: a value may be unhashable
TEXT_PARTS = ("input_text", "output_text")
# Parameters of the Responses API this server does not implement, with the value that asks
# for nothing.
UNSUPPORTED = {"background": False, "conversation": None, "prompt": None}


@dataclass(frozen=True)
class ResponseRequest:
    model: str
    items: tuple[dict, ...]  # the input items, each a message, function_call or its output
    instructions: str | None
    previous_response_id: str | None
    store: bool
    stream: bool
    tool_use: ToolUse | None
    settings: dict  # what the response object repeats of the request
    chat_fields: dict  # the rest of the chat request the engine runs

    @classmethod
    def parse(cls, body: dict) -> "ResponseRequest":
        fields.reject_unsupported(body, UNSUPPORTED)
        items = _input(body)
        turns(list(items))  # every item is read now, before anything is loaded
        tool_use = _tool_use(body)
        text_format = _format_grammar(body)
        if tool_use is not None and text_format is not None:
            raise BadRequest("'text.format' cannot be combined with tools; set 'tool_choice' to "
                             "\"none\" or leave 'text.format' out", code="invalid_value",
                             param="text.format")
        grammar_text = toolcalling.call_grammar(tool_use) if tool_use else text_format
        max_tokens = fields.integer(body, "max_output_tokens", None, 1)
        given = sampling(body, grammar_text)
        settings = {"max_output_tokens": max_tokens, "temperature": given.temperature,
                    "top_p": given.top_p, "tools": body.get("tools") or [],
                    "tool_choice": body.get("tool_choice") or "auto",
                    "parallel_tool_calls": tool_use.parallel if tool_use else True,
                    "text": {"format": fields.obj(fields.obj(body, "text"), "format")
                             or {"type": "text"}},
                    "metadata": fields.obj(body, "metadata"), "truncation": "disabled"}
        return cls(fields.string(body, "model"), items, fields.optional_string(
            body, "instructions"), fields.optional_string(body, "previous_response_id"),
            fields.boolean(body, "store", True), fields.boolean(body, "stream", False),
            tool_use, settings, {"keep_alive": fields.keep_alive(body), "sampling": given,
                                 "max_tokens": max_tokens, "lora": lora_choices(body),
                                 "knowledge": KnowledgeOptions.parse(body)})

    def chat(self, history: list[dict]) -> ChatCompletionRequest:
        """The chat request the engine runs: the instructions, then the conversation so far
        (`history`, the items of the responses it continues) and this request's items."""
        messages = ([("system", self.instructions)] if self.instructions else []) + turns(
            history + list(self.items))
        if self.tool_use is not None:
            messages = toolcalling.with_instructions(messages, self.tool_use)
        return ChatCompletionRequest(
            model=self.model, n=1, stop=(), stream=self.stream, include_usage=False,
            messages=tuple(messages), logprobs=None, tool_use=self.tool_use, **self.chat_fields)


def _input(body: dict) -> tuple[dict, ...]:
    value = body.get("input")
    if value is None:
        raise missing("input")
    if isinstance(value, str):
        return ({"type": "message", "role": "user", "content": value},)
    if not isinstance(value, list) or not value or not all(isinstance(i, dict) for i in value):
        raise invalid("input", "a string or a non-empty array of input items", value)
    return tuple(value)


def turns(items: list[dict]) -> list[tuple[str, str]]:
    """Items as the (role, text) turns the chat template renders: calls made one after another
    are one assistant turn, each call's output a user turn."""
    names: dict[str, str] = {}  # call_id -> function name, to label outputs
    read: list[tuple[str, str]] = []
    calls: list[ToolCall] = []
    for i, item in enumerate(items):
        where, kind = f"input[{i}]", item.get("type", "message")
        if kind != "function_call" and calls:
            read.append(("assistant", toolcalling.call_text(calls)))
            calls = []
        if kind == "message":
            read.append(_message(item, where))
        elif kind == "function_call":
            call_id, name = _text(item, "call_id", where), _text(item, "name", where)
            names[call_id] = name
            calls.append(ToolCall(name, call_arguments(_text(item, "arguments", where))))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _parts(output, f"{where}.output")
            read.append(("user", toolcalling.result_text(
                names.get(_text(item, "call_id", where)), text)))
        elif kind != "reasoning":  # a reasoning model's notes, which a model here never makes
            raise invalid(f"{where}.type", "message, function_call or function_call_output",
                          kind)
    if calls:
        read.append(("assistant", toolcalling.call_text(calls)))
    return read


def _message(item: dict, where: str) -> tuple[str, str]:
    role = item.get("role")
    if role not in ROLES:
        raise invalid(f"{where}.role", "one of " + ", ".join(ROLES), role)
    content = item.get("content")
    text = content if isinstance(content, str) else _parts(content, f"{where}.content")
    return ("system" if role == "developer" else role), text


def _parts(content, where: str) -> str:
    """An array of input_text / output_text parts, joined."""
    if not isinstance(content, list):
        raise invalid(where, "a string or an array of input_text parts", content)
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in TEXT_PARTS or not isinstance(
                part.get("text"), str):
            raise invalid(f"{where}[{i}]", 'a text part {"type": "input_text", "text": ...}',
                          part)
        texts.append(part["text"])
    return "".join(texts)


def _text(item: dict, name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise invalid(f"{where}.{name}", "a string", value)
    return value


def _tool_use(body: dict) -> ToolUse | None:
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise invalid("tool_choice", '"none", "auto", "required" or {"type": "function", '
                                         '"name": ...}', choice)
        choice = choice["name"]
    elif choice not in (None, "none", "auto", "required"):
        raise invalid("tool_choice", '"none", "auto", "required" or {"type": "function", '
                                     '"name": ...}', choice)
    return choose_tools(tools, choice, fields.boolean(body, "parallel_tool_calls", True))


def _tools(value) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "an array of function tools", value)
    read = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("type") != "function":
            raise BadRequest(f"tools[{i}]: only function tools are supported",
                             code="unsupported_parameter", param=f"tools[{i}]")
        read.append(tool(item, f"tools[{i}]", "parameters"))
    return tuple(read)


def _format_grammar(body: dict) -> str | None:
    """The grammar `text.format` asks for: None for text, else JSON of the given shape."""
    spec = fields.obj(fields.obj(body, "text"), "format")
    kind = spec.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return grammar.json_object()
    if kind == "json_schema" and isinstance(spec.get("schema"), dict):
        return schema_grammar(spec["schema"], "text.format")
    raise invalid("text.format", '{"type": "text"}, {"type": "json_object"} or {"type": '
                                 '"json_schema", "name": ..., "schema": {...}}', spec)

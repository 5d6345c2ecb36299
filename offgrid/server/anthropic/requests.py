"""Anthropic's Messages bodies, read whole into the chat request the engine runs (the same
ChatCompletionRequest the OpenAI face makes): `system`, `messages` of text, `tool_use` and
`tool_result` blocks, `tools`, `tool_choice`, `max_tokens`, `stop_sequences` and sampling. Errors
name the field as Anthropic's API does (`messages.0.content`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...engine import toolcalling
from ...engine.toolcalling import Tool, ToolCall, ToolUse
from .. import fields
from ..errors import BadRequest
from ..fields import invalid, missing
from ..openai.requests import (
    ChatCompletionRequest,
    KnowledgeOptions,
    choose_tools,
    lora_choices,
    sampling,
    tool,
)

MAX_STOP_SEQUENCES = 16
ROLES = ("user", "assistant")
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}  # "tool" names its tool


@dataclass(frozen=True)
class Conversation:
    """What a body says to the model: its messages as the chat template renders them (tool
    instructions included), and how it wants tools used."""
    model: str
    messages: tuple[tuple[str, str], ...]
    tool_use: ToolUse | None

    @classmethod
    def parse(cls, body: dict) -> "Conversation":
        tool_use = _tool_use(body)
        messages = _system(body) + _messages(body)
        if tool_use is not None:
            messages = toolcalling.with_instructions(messages, tool_use)
        return cls(fields.string(body, "model"), tuple(messages), tool_use)


def parse(body: dict) -> ChatCompletionRequest:
    """A Messages body as the chat request the engine runs."""
    conversation = Conversation.parse(body)
    max_tokens = fields.integer(body, "max_tokens", None, 1)
    if max_tokens is None:
        raise missing("max_tokens")
    fields.number(body, "temperature", 1.0, 0.0, 1.0)  # Anthropic's range, narrower than OpenAI's
    use = conversation.tool_use
    return ChatCompletionRequest(
        model=conversation.model, keep_alive=fields.keep_alive(body), n=1,
        sampling=sampling(body, toolcalling.call_grammar(use) if use else None),
        max_tokens=max_tokens, stop=fields.stop_strings(body, "stop_sequences", MAX_STOP_SEQUENCES),
        stream=fields.boolean(body, "stream", False), include_usage=False,
        messages=conversation.messages, logprobs=None, tool_use=use,
        knowledge=KnowledgeOptions.parse(body), lora=lora_choices(body))



def _system(body: dict) -> list[tuple[str, str]]:
    value = body.get("system")
    if value is None:
        return []
    text = value if isinstance(value, str) else _text_blocks(value, "system")
    return [("system", text)] if text else []


def _text_blocks(value, where: str) -> str:
    """A list of text blocks, joined."""
    if not isinstance(value, list):
        raise invalid(where, "a string or an array of text blocks", value)
    texts = []
    for i, block in enumerate(value):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(
                block.get("text"), str):
            raise invalid(f"{where}.{i}", 'a text block {"type": "text", "text": ...}', block)
        texts.append(block["text"])
    return "\n".join(texts)


def _messages(body: dict) -> list[tuple[str, str]]:
    value = body.get("messages")
    if value is None:
        raise missing("messages")
    if not isinstance(value, list) or not value:
        raise invalid("messages", "a non-empty array of messages", value)
    tool_names: dict[str, str] = {}  # tool_use id -> tool name, to label results
    turns = []
    for i, message in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(f"{where}.role", "user or assistant",
                          message.get("role") if isinstance(message, dict) else message)
        turns += _turns(message["role"], message.get("content"), f"{where}.content", tool_names)
    return turns


def _turns(role: str, content, where: str, tool_names: dict[str, str]) -> list[tuple[str, str]]:
    """One message as the turns the chat template renders: an assistant's tool calls in the
    form the model is told to write them, each tool result as a user turn."""
    if isinstance(content, str):
        return [(role, content)]
    if not isinstance(content, list):
        raise invalid(where, "a string or an array of content blocks", content)
    texts, calls, results = [], [], []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and role == "assistant":
            calls.append(_call(block, f"{where}.{i}", tool_names))
        elif kind == "tool_result" and role == "user":
            results.append(("user", _result(block, f"{where}.{i}", tool_names)))
        else:
            allowed = "text or tool_use" if role == "assistant" else "text or tool_result"
            raise invalid(f"{where}.{i}", f"a {allowed} block", block)
    if calls:
        return [("assistant", toolcalling.call_text(calls))]
    return results + ([(role, "\n".join(texts))] if texts or not results else [])


def _call(block: dict, where: str, tool_names: dict[str, str]) -> ToolCall:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise invalid(where, 'a tool_use block {"type": "tool_use", "id", "name", "input"}',
                      block)
    tool_names[block["id"]] = block["name"]
    return ToolCall(block["name"], block.get("input", {}))


def _result(block: dict, where: str, tool_names: dict[str, str]) -> str:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise invalid(f"{where}.tool_use_id", "the id of the tool_use this answers", call_id)
    content = block.get("content", "")
    text = content if isinstance(content, str) else _text_blocks(content, f"{where}.content")
    if fields.boolean(block, "is_error", False):
        text = "Error: " + text
    return toolcalling.result_text(tool_names.get(call_id), text)


def _tool_use(body: dict) -> ToolUse | None:
    tools = _tools(body.get("tools"))
    choice = fields.obj(body, "tool_choice")
    kind = choice.get("type", "auto" if choice or tools else None)
    if kind == "tool":
        named = choice.get("name")
        if not isinstance(named, str):
            raise invalid("tool_choice.name", "the name of a tool", named)
    elif kind is not None and (not isinstance(kind, str) or kind not in TOOL_CHOICES):
        raise invalid("tool_choice.type", "auto, any, tool or none", kind)
    parallel = not fields.boolean(choice, "disable_parallel_tool_use", False)
    return choose_tools(tools, choice.get("name") if kind == "tool" else TOOL_CHOICES.get(kind),
                        parallel)


def _tools(value) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "an array of tools", value)
    read = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("type", "custom") != "custom":
            raise BadRequest(f"tools.{i}: only custom tools (name, description, input_schema) "
                             "are supported", code="unsupported_parameter", param=f"tools.{i}")
        read.append(tool(item, f"tools.{i}", "input_schema"))
    return tuple(read)

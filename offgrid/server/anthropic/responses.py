"""Anthropic's answers, rendered from the engine's events: a message whole, or its stream of
named events (`message_start`, `content_block_start`, `content_block_delta`,
`content_block_stop`, `message_delta`, `message_stop`); and errors in Anthropic's shape."""

from __future__ import annotations

import json
import uuid

from ...engine.generate import Run
from ...engine.requests import Finished
from ...engine.toolcalling import AnswerReader, ToolCall, ToolUse
from ..errors import ApiError
from ..http import EventStream, NamedEvent, Response
from ..openai.responses import answer_stream, collect

ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}


def error_body(error: ApiError) -> dict:
    """{"type": "error", "error": {"type", "message"}}, typed by status as Anthropic does."""
    kind = ERROR_TYPES.get(error.status,
                           "api_error" if error.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


class MessageReply:
    """One message being built, whole or as events."""

    def __init__(self, model: str, tool_use: ToolUse | None, citations: list[dict] | None):
        self.model = model
        self.tool_use = tool_use
        self.citations = citations  # the knowledge base's passages it was given, if asked
        self.id = "msg_" + uuid.uuid4().hex

    def message(self, content: list[dict], stop_reason: str | None,
                stop_sequence: str | None, usage: dict) -> dict:
        body = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
                "usage": usage}
        if self.citations is not None:
            body["citations"] = self.citations
        return body

    def whole(self, text: str, finished: Finished) -> dict:
        reader = AnswerReader(self.tool_use)
        said = reader.feed(text)
        tail, calls = reader.end()
        content = [tool_use_block(call) for call in calls] or [
            {"type": "text", "text": said + tail}]
        return self.message(content, *stop(finished, calls), usage(finished))


def usage(finished: Finished) -> dict:
    """As Anthropic counts: `input_tokens` are the ones read anew, the cached ones apart."""
    return {"input_tokens": finished.prompt_tokens - finished.cached_tokens,
            "output_tokens": finished.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": finished.cached_tokens}


def stop(finished: Finished, calls: list[ToolCall]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence)."""
    if calls:
        return "tool_use", None
    if finished.reason == "length":
        return "max_tokens", None
    if finished.stop_sequence is not None:
        return "stop_sequence", finished.stop_sequence
    return "end_turn", None


def tool_use_block(call: ToolCall, arguments: bool = True) -> dict:
    return {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": call.name,
            "input": call.arguments if arguments else {}}


def render(run: Run, reply: MessageReply, stream: bool) -> Response:
    if stream:
        return EventStream(_events(run, reply), end_marker=False)
    choice = collect(run, 1)[0]
    return Response(reply.whole(choice.text, choice.finished))


def _event(name: str, **data) -> NamedEvent:
    return NamedEvent(name, {"type": name, **data})


def _events(run: Run, reply: MessageReply):
    blocks = _Blocks()
    yield _event("message_start", message=reply.message(
        [], None, None, {"input_tokens": run.prompt_tokens, "output_tokens": 0}))
    for said in answer_stream(run, reply.tool_use):
        if isinstance(said, str):
            yield from blocks.text(said)
        elif isinstance(said, ApiError):
            yield NamedEvent("error", error_body(said))
        else:
            yield from blocks.text(said.tail, whole=not said.calls)
            yield from blocks.close()
            for call in said.calls:
                yield from blocks.tool_use(call)
            reason, sequence = stop(said.finished, said.calls)
            yield _event("message_delta", usage=usage(said.finished),
                         delta={"stop_reason": reason, "stop_sequence": sequence})
            yield _event("message_stop")


class _Blocks:
    """The content blocks of a streamed message, numbered as they open."""

    def __init__(self):
        self.index = 0
        self.open = False  # a text block is open

    def text(self, piece: str, whole: bool = False):
        """`piece` as a text delta, opening the text block first; `whole`: the answer has
        ended, and a message with no call has a text block even if it is empty."""
        if (piece or whole) and not self.open:
            self.open = True
            yield _event("content_block_start", index=self.index,
                         content_block={"type": "text", "text": ""})
        if piece:
            yield _event("content_block_delta", index=self.index,
                         delta={"type": "text_delta", "text": piece})

    def close(self):
        if self.open:
            yield _event("content_block_stop", index=self.index)
            self.open = False
            self.index += 1

    def tool_use(self, call: ToolCall):
        yield _event("content_block_start", index=self.index,
                     content_block=tool_use_block(call, arguments=False))
        yield _event("content_block_delta", index=self.index, delta={
            "type": "input_json_delta", "partial_json": json.dumps(call.arguments)})
        yield _event("content_block_stop", index=self.index)
        self.index += 1

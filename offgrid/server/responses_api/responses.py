"""OpenAI's Responses answers, rendered from the engine's events: a response object whole, or
its stream of events, each with its `sequence_number`: `response.created`,
`response.in_progress`, then per output item `response.output_item.added`, its content
(`response.content_part.added`, `response.output_text.delta`, … `.done`; or
`response.function_call_arguments.delta` / `.done`) and `response.output_item.done`, then
`response.completed` (or `response.incomplete` when max_output_tokens cut it short)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable

from ...engine.generate import Run
from ...engine.requests import Finished
from ...engine.toolcalling import AnswerReader, ToolCall
from ..errors import ApiError
from ..http import EventStream, NamedEvent, Response
from ..openai.responses import answer_stream, collect
from .requests import ResponseRequest

Keep = Callable[[dict], None]  # stores a finished response


class ResponseReply:
    """One response being built, whole or as events."""

    def __init__(self, asked: ResponseRequest, citations: list[dict] | None, store: bool):
        self.asked = asked
        self.citations = citations  # the knowledge base's passages it was given, if asked
        self.store = store
        self.id = "resp_" + uuid.uuid4().hex
        self.message_id = "msg_" + uuid.uuid4().hex
        self.created_at = int(time.time())

    def envelope(self, status: str, output: list[dict], finished: Finished | None = None,
                 error: dict | None = None) -> dict:
        asked = self.asked
        body = {"id": self.id, "object": "response", "created_at": self.created_at,
                "status": status, "error": error,
                "incomplete_details": {"reason": "max_output_tokens"}
                if status == "incomplete" else None,
                "instructions": asked.instructions, "model": asked.model, "output": output,
                "previous_response_id": asked.previous_response_id, "store": self.store,
                "reasoning": {"effort": None, "summary": None}, "user": None,
                **asked.settings, "usage": usage(finished) if finished else None}
        if self.citations is not None:
            body["citations"] = self.citations
        return body

    def message(self, text: str, status: str = "completed") -> dict:
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": [output_text(text)] if status == "completed"
                else []}

    def whole(self, text: str, finished: Finished) -> dict:
        reader = AnswerReader(self.asked.tool_use)
        said = reader.feed(text)
        tail, calls = reader.end()
        output = [function_call(call) for call in calls] or [self.message(said + tail)]
        return self.envelope(status(finished, calls), output, finished)


def output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call(call: ToolCall, arguments: str | None = None) -> dict:
    """A call as an output item; `arguments` "" while it is being written."""
    return {"type": "function_call", "id": "fc_" + uuid.uuid4().hex,
            "call_id": "call_" + uuid.uuid4().hex[:24], "name": call.name,
            "arguments": json.dumps(call.arguments) if arguments is None else arguments,
            "status": "completed" if arguments is None else "in_progress"}


def status(finished: Finished, calls: list[ToolCall]) -> str:
    return "incomplete" if finished.reason == "length" and not calls else "completed"


def usage(finished: Finished) -> dict:
    return {"input_tokens": finished.prompt_tokens,
            "input_tokens_details": {"cached_tokens": finished.cached_tokens},
            "output_tokens": finished.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}


def render(run: Run, reply: ResponseReply, keep: Keep | None) -> Response:
    """The answer, JSON or a stream; `keep` stores it once it is finished."""
    if reply.asked.stream:
        return EventStream(_Events(reply, keep).of(run), end_marker=False)
    choice = collect(run, 1)[0]
    response = reply.whole(choice.text, choice.finished)
    if keep is not None:
        keep(response)
    return Response(response)


class _Events:
    """The events of one streamed response, numbered in order."""

    def __init__(self, reply: ResponseReply, keep: Keep | None):
        self.reply = reply
        self.keep = keep
        self.numbers = itertools.count()
        self.output: list[dict] = []  # the items finished so far
        self.text: str | None = None  # the message's text, once its item is open

    def event(self, kind: str, **data) -> NamedEvent:
        return NamedEvent(kind, {"type": kind, "sequence_number": next(self.numbers), **data})

    def of(self, run: Run):
        reply = self.reply
        for name in ("response.created", "response.in_progress"):
            yield self.event(name, response=reply.envelope("in_progress", []))
        for said in answer_stream(run, reply.asked.tool_use):
            if isinstance(said, str):
                yield from self.text_delta(said)
            elif isinstance(said, ApiError):
                yield from self.failed(said.body()["error"])
            else:
                yield from self.text_delta(said.tail, whole=not said.calls)
                yield from self.text_done()
                for call in said.calls:
                    yield from self.call(call)
                response = reply.envelope(status(said.finished, said.calls), self.output,
                                          said.finished)
                if self.keep is not None:
                    self.keep(response)
                yield self.event("response." + response["status"], response=response)

    def _where(self) -> dict:
        """Where the message's text goes."""
        return {"item_id": self.reply.message_id, "output_index": len(self.output),
                "content_index": 0}

    def text_delta(self, piece: str, whole: bool = False):
        """`piece` of the message's text, opening its item first; `whole`: the answer has
        ended, and an answer that made no call is a message even if it is empty."""
        if (piece or whole) and self.text is None:
            self.text = ""
            yield self.event("response.output_item.added", output_index=len(self.output),
                             item=self.reply.message("", "in_progress"))
            yield self.event("response.content_part.added", **self._where(),
                             part=output_text(""))
        if piece:
            self.text += piece
            yield self.event("response.output_text.delta", **self._where(), delta=piece,
                             logprobs=[])

    def text_done(self):
        if self.text is None:
            return
        yield self.event("response.output_text.done", **self._where(), text=self.text,
                         logprobs=[])
        yield self.event("response.content_part.done", **self._where(),
                         part=output_text(self.text))
        yield from self._item_done(self.reply.message(self.text))

    def _item_done(self, item: dict):
        yield self.event("response.output_item.done", output_index=len(self.output), item=item)
        self.output.append(item)

    def call(self, call: ToolCall):
        item = function_call(call, arguments="")
        arguments = json.dumps(call.arguments)
        where = {"item_id": item["id"], "output_index": len(self.output)}
        yield self.event("response.output_item.added", output_index=len(self.output), item=item)
        yield self.event("response.function_call_arguments.delta", **where, delta=arguments)
        yield self.event("response.function_call_arguments.done", **where, name=call.name,
                         arguments=arguments)
        yield from self._item_done({**item, "arguments": arguments, "status": "completed"})

    def failed(self, error: dict):
        yield self.event("error", code=error["code"], message=error["message"],
                         param=error["param"])
        yield self.event("response.failed", response=self.reply.envelope(
            "failed", self.output, error={"code": error["code"], "message": error["message"]}))

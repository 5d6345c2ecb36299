"""OpenAI's answers, whole or as stream chunks: chat and completion responses with usage,
llama.cpp's timings, logprobs and tool calls, rendered from the engine's events; and embedding
lists."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid

import numpy as np

from ... import __version__
from ...engine import toolcalling
from ...engine.generate import Run
from ...engine.requests import Failed, Finished, Text
from ...engine.sampling import TokenLogprob
from ...engine.toolcalling import ToolCall, ToolUse
from ..errors import translate
from ..http import ClientGone, EventStream, Response

FINGERPRINT = f"offgrid-{__version__}"


@dataclasses.dataclass
class Choice:
    text: str = ""
    logprobs: list = dataclasses.field(default_factory=list)
    finished: Finished | None = None


def usage(finished: list[Finished], per_prompt: int = 1) -> dict:
    """Each prompt is counted once, however many choices (`per_prompt`) were drawn from it."""
    firsts = finished[::per_prompt]
    prompt_tokens = sum(f.prompt_tokens for f in firsts)
    completion_tokens = sum(f.completion_tokens for f in finished)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": sum(f.cached_tokens for f in firsts)}}


def timings(finished: Finished) -> dict:
    """llama.cpp server's timing fields, for clients that read them."""
    seconds = finished.generation_ms / 1000
    drafts = {"draft_n": finished.drafted_tokens,
              "draft_n_accepted": finished.accepted_tokens} if finished.drafted_tokens else {}
    return {"cache_n": finished.cached_tokens,
            "prompt_n": finished.prompt_tokens - finished.cached_tokens,
            "prompt_ms": round(finished.prompt_ms, 3),
            "predicted_n": finished.completion_tokens,
            "predicted_ms": round(finished.generation_ms, 3),
            "predicted_per_second": round(finished.completion_tokens / seconds, 3)
            if seconds > 0 else None, **drafts}


def _token_text(entry: TokenLogprob) -> str:
    return entry.data.decode("utf-8", "replace")


class Reply:
    """One response being built, whole or as stream chunks."""
    object_name = ""
    chunk_object_name = ""
    id_prefix = ""

    def __init__(self, model: str, per_prompt: int):
        self.model = model
        self.per_prompt = per_prompt  # choices drawn from each prompt
        self.id = self.id_prefix + uuid.uuid4().hex
        self.created = int(time.time())

    def _envelope(self, object_name: str, choices: list) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created,
                "model": self.model, "system_fingerprint": FINGERPRINT, "choices": choices}

    def _chunk(self, choice: dict) -> dict:
        return self._envelope(self.chunk_object_name, [choice])

    def response(self, choices: list[Choice]) -> dict:
        body = self._envelope(self.object_name,
                              [self._whole_choice(i, c) for i, c in enumerate(choices)])
        finished = [c.finished for c in choices]
        body["usage"] = usage(finished, self.per_prompt)
        body["timings"] = timings(finished[0])
        return body

    def usage_chunk(self, finished: list[Finished]) -> dict:
        body = self._envelope(self.chunk_object_name, [])
        body["usage"] = usage(finished, self.per_prompt)
        body["timings"] = timings(finished[0])
        return body


class ChatReply(Reply):
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def __init__(self, model: str, per_prompt: int, tool_use: ToolUse | None,
                 citations: list[dict] | None = None):
        super().__init__(model, per_prompt)
        self.tool_use = tool_use
        self.citations = citations  # the knowledge base's passages it was given, if asked
        self._texts: dict[int, str] = {}  # what each choice said so far
        self._holding: set[int] = set()  # choices whose text may be a tool call, so held back

    def _whole_choice(self, index: int, choice: Choice) -> dict:
        calls = self._tool_calls(choice.text)
        message = {"role": "assistant", "content": None if self._calling(choice.text)
                   else choice.text}
        if calls:
            message["tool_calls"] = calls
        if self.citations is not None:
            message["citations"] = self.citations
        return {"index": index, "message": message,
                "logprobs": {"content": self._logprobs(choice.logprobs), "refusal": None}
                if choice.logprobs else None,
                "finish_reason": "tool_calls" if calls else choice.finished.reason}

    def _tool_calls(self, text: str) -> list[dict] | None:
        calls = toolcalling.parse(text) if self.tool_use else None
        return [_tool_call(call) for call in calls] if calls else None

    def _calling(self, text: str) -> bool:
        """The answer is in the tool-call form, which never goes out as text (cut short by
        max_tokens, it may hold no complete call)."""
        return self.tool_use is not None and toolcalling.is_call(text)

    @staticmethod
    def _logprobs(entries: list[TokenLogprob]) -> list[dict]:
        def entry(e: TokenLogprob) -> dict:
            return {"token": _token_text(e), "logprob": e.logprob, "bytes": list(e.data)}
        return [{**entry(e), "top_logprobs": [entry(t) for t in e.top]} for e in entries]

    def _delta(self, index: int, delta: dict, finish_reason: str | None = None,
               logprobs: list[TokenLogprob] = ()) -> dict:
        return self._chunk({"index": index, "delta": delta,
                            "logprobs": {"content": self._logprobs(logprobs), "refusal": None}
                            if logprobs else None,
                            "finish_reason": finish_reason})

    def opening_chunks(self, n: int):
        for index in range(n):
            self._texts[index] = ""
            if self.tool_use:
                self._holding.add(index)
            opening = {"role": "assistant", "content": ""}
            if self.citations is not None:  # before the first text, so it can be linked
                opening["citations"] = self.citations
            yield self._delta(index, opening)

    def text_chunks(self, index: int, text: Text):
        self._texts[index] += text.text
        if index in self._holding:
            said = self._texts[index].lstrip()
            if not said or said.startswith("{") or self.tool_use.required:
                return  # a tool call is written whole, at the end
            self._holding.discard(index)
            yield self._delta(index, {"content": self._texts[index]}, logprobs=text.logprobs)
            return
        yield self._delta(index, {"content": text.text}, logprobs=text.logprobs)

    def closing_chunks(self, index: int, finished: Finished):
        calls = self._tool_calls(self._texts[index]) if index in self._holding else None
        if calls:
            yield self._delta(index, {"tool_calls": [{"index": i, **call}
                                                     for i, call in enumerate(calls)]})
            yield self._delta(index, {}, "tool_calls")
            return
        if index in self._holding and self._texts[index] and not self._calling(
                self._texts[index]):
            yield self._delta(index, {"content": self._texts[index]})
        yield self._delta(index, {}, finished.reason)


class CompletionReply(Reply):
    object_name = chunk_object_name = "text_completion"
    id_prefix = "cmpl-"

    def __init__(self, model: str, per_prompt: int, echoes: list[str]):
        super().__init__(model, per_prompt)
        self.echoes = echoes  # each prompt's text when it is echoed, else ""
        self._offsets: dict[int, int] = {}  # where each choice's next token starts in its text

    def _echo(self, index: int) -> str:
        return self.echoes[index // self.per_prompt]

    def _whole_choice(self, index: int, choice: Choice) -> dict:
        self._offsets[index] = len(self._echo(index))
        return self._choice(index, self._echo(index) + choice.text, choice.finished.reason,
                            choice.logprobs)

    def _choice(self, index: int, text: str, finish_reason: str | None,
                logprobs: list[TokenLogprob] | None) -> dict:
        return {"index": index, "text": text, "finish_reason": finish_reason,
                "logprobs": self._logprobs(index, logprobs) if logprobs else None}

    def _logprobs(self, index: int, entries: list[TokenLogprob]) -> dict:
        tokens = [_token_text(e) for e in entries]
        offsets = []
        for token in tokens:
            offsets.append(self._offsets.get(index, 0))
            self._offsets[index] = offsets[-1] + len(token)
        return {"tokens": tokens, "token_logprobs": [e.logprob for e in entries],
                "top_logprobs": [{_token_text(t): t.logprob for t in e.top} for e in entries],
                "text_offset": offsets}

    def opening_chunks(self, n: int):
        for index in range(n):
            self._offsets[index] = len(self._echo(index))
            if self._echo(index):
                yield self._chunk(self._choice(index, self._echo(index), None, None))

    def text_chunks(self, index: int, text: Text):
        yield self._chunk(self._choice(index, text.text, None, list(text.logprobs)))

    def closing_chunks(self, index: int, finished: Finished):
        yield self._chunk(self._choice(index, "", finished.reason, None))


def _tool_call(call: ToolCall) -> dict:
    return {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}


# -- rendering a run -------------------------------------------------------------------------------

def render(run: Run, reply: Reply, n: int, stream: bool, include_usage: bool) -> Response:
    """The answer to a run of `n` choices: one JSON response, or a stream of chunks."""
    if stream:
        return EventStream(_chunks(run, reply, n, include_usage))
    return Response(_whole(run, reply, n))


def _whole(run: Run, reply: Reply, n: int) -> dict:
    return reply.response(collect(run, n))


def collect(run: Run, n: int) -> list[Choice]:
    """The `n` choices of a run, each whole; the engine's error if one failed, ClientGone if
    the caller left first."""
    choices = [Choice() for _ in range(n)]
    try:
        for index, event in run:
            if isinstance(event, Failed):
                raise translate(event.error)
            choice = choices[index]
            if isinstance(event, Text):
                choice.text += event.text
                choice.logprobs.extend(event.logprobs)
            else:
                choice.finished = event
    finally:
        run.close()
    if any(c.finished is None for c in choices):
        raise ClientGone()
    return choices


@dataclasses.dataclass(frozen=True)
class Ending:
    """How a streamed answer ended: its last text, the calls it made, the engine's account."""
    tail: str
    calls: list[ToolCall]
    finished: Finished


def answer_stream(run: Run, tool_use: ToolUse | None):
    """The one choice of a run as it streams: each piece of text that can go out (a tool call
    never does), then an Ending, or the ApiError it failed with; nothing more if the caller
    left. The run is closed when the stream is."""
    reader, finished = toolcalling.AnswerReader(tool_use), None
    try:
        for _, event in run:
            if isinstance(event, Text):
                piece = reader.feed(event.text)
                if piece:
                    yield piece
            elif isinstance(event, Failed):
                yield translate(event.error)
                return
            else:
                finished = event
        if finished is not None:
            yield Ending(*reader.end(), finished)
    finally:
        run.close()


def _chunks(run: Run, reply: Reply, n: int, include_usage: bool):
    finished: dict[int, Finished] = {}
    try:
        yield from reply.opening_chunks(n)
        for index, event in run:
            if isinstance(event, Text):
                yield from reply.text_chunks(index, event)
            elif isinstance(event, Failed):
                yield translate(event.error).body()
            else:
                finished[index] = event
                yield from reply.closing_chunks(index, event)
        if include_usage and len(finished) == n:
            yield reply.usage_chunk([finished[i] for i in range(n)])
    finally:
        run.close()


# -- embeddings ------------------------------------------------------------------------------------

def embedding_list(model: str, vectors: list[np.ndarray], prompt_tokens: int, encoding: str,
                   dimensions: int | None) -> dict:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i,
                      "embedding": _encoded(shortened(vector, dimensions), encoding)}
                     for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def shortened(vector: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components, scaled back to unit length."""
    if dimensions is None or dimensions == len(vector):
        return vector
    head = vector[:dimensions]
    norm = float(np.linalg.norm(head))
    return head / norm if norm > 0 else head


def _encoded(vector: np.ndarray, encoding: str):
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]

"""The OpenAI-compatible endpoints: chat completions, completions, embeddings and models."""

from __future__ import annotations

import base64
import dataclasses
import queue
import time
import uuid

import numpy as np

from ... import __version__
from ...engine.registry import LoadedModel
from ...engine.sampling import TokenLogprob
from ...engine.scheduler import Failed, Finished, Generation, GenerationRequest, Started, Text
from .. import params, toolcalls
from ..errors import REFUSALS, ApiError, BadRequest, from_engine
from ..http import ClientGone, EventStream, Request, Response

POLL_SECONDS = 0.2  # how often a waiting request checks whether its client hung up
MAX_EMBEDDING_INPUTS = 2048
MAX_COMPLETION_LOGPROBS = 5
FINGERPRINT = f"offgrid-{__version__}"

# OpenAI parameters this server does not implement, with the value that asks for nothing.
CHAT_UNSUPPORTED = {"modalities": ["text"], "audio": {}, "prediction": {}, "functions": [],
                    "function_call": "none", "web_search_options": {}}
COMPLETION_UNSUPPORTED = {"best_of": 1}


# -- models ---------------------------------------------------------------------------------------

def loaded_model(app, model_id: str, body: dict | None = None) -> LoadedModel:
    """The model, loaded; the request's `keep_alive` says how long it stays loaded once idle."""
    try:
        return app.registry.get(model_id, params.keep_alive(body or {}))
    except REFUSALS as error:
        raise from_engine(error) from None


# -- chat and completions -------------------------------------------------------------------------

def chat_completions(app, request: Request) -> Response:
    body = request.json()
    params.reject_unsupported(body, CHAT_UNSUPPORTED)
    model_id = params.string(body, "model")
    tool_use = toolcalls.from_request(body)
    messages = params.chat_messages(body)
    grammar = params.response_grammar(body)
    if tool_use is not None:
        if grammar is not None:
            raise BadRequest("'response_format' cannot be combined with tools; set "
                             "'tool_choice' to \"none\" or leave 'response_format' out",
                             code="invalid_value", param="response_format")
        messages = toolcalls.with_instructions(messages, tool_use)
        grammar = toolcalls.call_grammar(tool_use)
    loaded = loaded_model(app, model_id, body)
    generation_request = GenerationRequest(
        messages=messages, max_tokens=params.max_tokens(body), stop=params.stop_strings(body),
        sampling=params.sampling(body, n_vocab=loaded.model.n_vocab, grammar=grammar),
        logprobs=params.chat_logprobs(body))
    return _generate(request, body, loaded, ChatReply(model_id, tool_use), generation_request,
                     "messages")


def completions(app, request: Request) -> Response:
    body = request.json()
    params.reject_unsupported(body, COMPLETION_UNSUPPORTED)
    model_id = params.string(body, "model")
    prompt = params.prompt(body)
    echo = params.boolean(body, "echo", False)
    logprobs = params.integer(body, "logprobs", None, 0, MAX_COMPLETION_LOGPROBS)
    if echo and logprobs is not None:
        raise BadRequest("'echo' with 'logprobs' (log-probabilities of the prompt) is not "
                         "supported", code="unsupported_parameter", param="echo")
    suffix = body.get("suffix") or None
    if suffix is not None and not isinstance(suffix, str):
        raise BadRequest("Invalid value for 'suffix': expected a string", code="invalid_value",
                         param="suffix")
    loaded = loaded_model(app, model_id, body)
    generation_request = GenerationRequest(
        prompt=prompt, suffix=suffix, max_tokens=params.integer(body, "max_tokens", None, 1),
        stop=params.stop_strings(body), logprobs=logprobs,
        sampling=params.sampling(body, n_vocab=loaded.model.n_vocab))
    return _generate(request, body, loaded, CompletionReply(model_id, prompt if echo else ""),
                     generation_request, "prompt")


def _generate(request: Request, body: dict, loaded: LoadedModel, reply: "_Reply",
              generation_request: GenerationRequest, prompt_param: str) -> Response:
    stream, include_usage = params.streaming(body)
    n = params.choices(body)
    events: queue.SimpleQueue = queue.SimpleQueue()
    generations = _submit(loaded, generation_request, n, events, prompt_param)
    replies = _replies(request, events, generations)
    first = next(replies, None)
    if first is None:
        raise ClientGone()
    if isinstance(first[1], Failed):
        replies.close()
        raise _api_error(first[1].error, prompt_param)
    replies = _starting_with(first, replies)
    if stream:
        return EventStream(_stream(replies, reply, n, include_usage, prompt_param))
    return Response(_collect(replies, reply, n, prompt_param))


def _submit(loaded: LoadedModel, generation_request: GenerationRequest, n: int,
            events: queue.SimpleQueue, prompt_param: str) -> list[Generation]:
    """n generations of the request, decoded side by side; choice i draws with seed + i."""
    generations = []
    try:
        scheduler = loaded.generator()
        for index in range(n):
            generations.append(scheduler.submit(_nth(generation_request, index), events, index))
    except REFUSALS as error:
        for generation in generations:
            generation.cancel()
        raise from_engine(error, prompt_param) from None
    return generations


def _nth(generation_request: GenerationRequest, index: int) -> GenerationRequest:
    seed = generation_request.sampling.seed
    if index == 0 or seed is None:
        return generation_request
    return dataclasses.replace(generation_request, sampling=dataclasses.replace(
        generation_request.sampling, seed=seed + index))


def _replies(request: Request, events: queue.SimpleQueue, generations: list[Generation]):
    """(choice index, event) until every generation has ended; cancels them all if the client
    hangs up or the consumer stops early."""
    running = len(generations)
    next_check = time.monotonic() + POLL_SECONDS
    try:
        while running:
            try:
                index, event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                index, event = None, None
            if time.monotonic() >= next_check:
                if request.client_gone():
                    return
                next_check = time.monotonic() + POLL_SECONDS
            if event is None or isinstance(event, Started):
                continue
            running -= isinstance(event, (Finished, Failed))
            if isinstance(event, Finished):  # as usage() counts: the prompt once
                request.tokens_used += event.completion_tokens + (
                    event.prompt_tokens if index == 0 else 0)
            yield index, event
    finally:
        for generation in generations:
            generation.cancel()


def _starting_with(first, replies):
    try:
        yield first
        yield from replies
    finally:
        replies.close()


@dataclasses.dataclass
class _Choice:
    text: str = ""
    logprobs: list = dataclasses.field(default_factory=list)
    finished: Finished | None = None


def _collect(replies, reply: "_Reply", n: int, prompt_param: str) -> dict:
    choices = [_Choice() for _ in range(n)]
    for index, event in replies:
        if isinstance(event, Failed):
            raise _api_error(event.error, prompt_param)
        choice = choices[index]
        if isinstance(event, Text):
            choice.text += event.text
            choice.logprobs.extend(event.logprobs)
        else:
            choice.finished = event
    if any(c.finished is None for c in choices):
        raise ClientGone()
    return reply.response(choices)


def _stream(replies, reply: "_Reply", n: int, include_usage: bool, prompt_param: str):
    finished: dict[int, Finished] = {}
    try:
        yield from reply.opening_chunks(n)
        for index, event in replies:
            if isinstance(event, Text):
                yield from reply.text_chunks(index, event)
            elif isinstance(event, Failed):
                yield _api_error(event.error, prompt_param).body()
            else:
                finished[index] = event
                yield from reply.closing_chunks(index, event)
        if include_usage and len(finished) == n:
            yield reply.usage_chunk([finished[i] for i in range(n)])
    finally:
        replies.close()


def _api_error(error: Exception, prompt_param: str) -> ApiError:
    return from_engine(error, prompt_param) if isinstance(error, REFUSALS) else ApiError(
        str(error))


# -- response shapes ------------------------------------------------------------------------------

def usage(finished: list[Finished]) -> dict:
    """The prompt is counted once, however many choices were drawn from it."""
    prompt_tokens = finished[0].prompt_tokens
    completion_tokens = sum(f.completion_tokens for f in finished)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": finished[0].cached_tokens}}


def timings(finished: Finished) -> dict:
    """llama.cpp server's timing fields, for clients that read them."""
    seconds = finished.generation_ms / 1000
    return {"cache_n": finished.cached_tokens,
            "prompt_n": finished.prompt_tokens - finished.cached_tokens,
            "prompt_ms": round(finished.prompt_ms, 3),
            "predicted_n": finished.completion_tokens,
            "predicted_ms": round(finished.generation_ms, 3),
            "predicted_per_second": round(finished.completion_tokens / seconds, 3)
            if seconds > 0 else None}


def _token_text(entry: TokenLogprob) -> str:
    return entry.data.decode("utf-8", "replace")


class _Reply:
    """One response being built, whole or as stream chunks."""
    object_name = ""
    chunk_object_name = ""
    id_prefix = ""

    def __init__(self, model: str):
        self.model = model
        self.id = self.id_prefix + uuid.uuid4().hex
        self.created = int(time.time())

    def _envelope(self, object_name: str, choices: list) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created,
                "model": self.model, "system_fingerprint": FINGERPRINT, "choices": choices}

    def _chunk(self, choice: dict) -> dict:
        return self._envelope(self.chunk_object_name, [choice])

    def response(self, choices: list[_Choice]) -> dict:
        body = self._envelope(self.object_name,
                              [self._whole_choice(i, c) for i, c in enumerate(choices)])
        finished = [c.finished for c in choices]
        body["usage"] = usage(finished)
        body["timings"] = timings(finished[0])
        return body

    def usage_chunk(self, finished: list[Finished]) -> dict:
        body = self._envelope(self.chunk_object_name, [])
        body["usage"] = usage(finished)
        body["timings"] = timings(finished[0])
        return body


class ChatReply(_Reply):
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def __init__(self, model: str, tool_use: toolcalls.ToolUse | None):
        super().__init__(model)
        self.tool_use = tool_use
        self._texts: dict[int, str] = {}  # what each choice said so far
        self._holding: set[int] = set()  # choices whose text may be a tool call, so held back

    def _whole_choice(self, index: int, choice: _Choice) -> dict:
        calls = self._tool_calls(choice.text)
        message = {"role": "assistant", "content": None if calls else choice.text}
        if calls:
            message["tool_calls"] = calls
        return {"index": index, "message": message,
                "logprobs": {"content": self._logprobs(choice.logprobs), "refusal": None}
                if choice.logprobs else None,
                "finish_reason": "tool_calls" if calls else choice.finished.reason}

    def _tool_calls(self, text: str) -> list[dict] | None:
        return toolcalls.parse(text) if self.tool_use else None

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
            yield self._delta(index, {"role": "assistant", "content": ""})

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
        if index in self._holding and self._texts[index]:
            yield self._delta(index, {"content": self._texts[index]})
        yield self._delta(index, {}, finished.reason)


class CompletionReply(_Reply):
    object_name = chunk_object_name = "text_completion"
    id_prefix = "cmpl-"

    def __init__(self, model: str, echo: str):
        super().__init__(model)
        self.echo = echo
        self._offsets: dict[int, int] = {}  # where each choice's next token starts in its text

    def _whole_choice(self, index: int, choice: _Choice) -> dict:
        self._offsets[index] = len(self.echo)
        return self._choice(index, self.echo + choice.text, choice.finished.reason,
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
            self._offsets[index] = len(self.echo)
            if self.echo:
                yield self._chunk(self._choice(index, self.echo, None, None))

    def text_chunks(self, index: int, text: Text):
        yield self._chunk(self._choice(index, text.text, None, list(text.logprobs)))

    def closing_chunks(self, index: int, finished: Finished):
        yield self._chunk(self._choice(index, "", finished.reason, None))


# -- embeddings -----------------------------------------------------------------------------------

def embeddings(app, request: Request) -> Response:
    body = request.json()
    model_id = params.string(body, "model")
    encoding = params.choice(body, "encoding_format", ("float", "base64"))
    loaded = loaded_model(app, model_id, body)
    inputs = params.embedding_inputs(body, MAX_EMBEDDING_INPUTS, loaded.model.n_vocab)
    dimensions = params.integer(body, "dimensions", None, 1, loaded.model.n_embd)
    try:
        result = loaded.embedder().embed(inputs)
    except REFUSALS as error:
        raise from_engine(error, "input") from None
    request.tokens_used += result.prompt_tokens
    vectors = [_shortened(v, dimensions) for v in result.vectors]
    return Response({
        "object": "list", "model": model_id,
        "data": [{"object": "embedding", "index": i, "embedding": _encode(vector, encoding)}
                 for i, vector in enumerate(vectors)],
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}})


def _shortened(vector: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components, scaled back to unit length."""
    if dimensions is None or dimensions == len(vector):
        return vector
    head = vector[:dimensions]
    norm = float(np.linalg.norm(head))
    return head / norm if norm > 0 else head


def _encode(vector: np.ndarray, encoding: str):
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]

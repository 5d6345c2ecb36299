"""The OpenAI-compatible endpoints: chat completions, completions, embeddings and models."""

from __future__ import annotations

import base64
import time
import uuid

import numpy as np

from ... import __version__
from ...engine.errors import EngineError
from ...engine.scheduler import Failed, Finished, Generation, GenerationRequest, Started, Text
from .. import params
from ..errors import ApiError, from_engine
from ..http import ClientGone, EventStream, Request, Response

POLL_SECONDS = 0.2  # how often a waiting request checks whether its client hung up
MAX_EMBEDDING_INPUTS = 2048
FINGERPRINT = f"offgrid-{__version__}"

# OpenAI parameters this server cannot honour yet, with the value that asks for nothing.
CHAT_UNSUPPORTED = {"n": 1, "logprobs": False, "top_logprobs": 0, "logit_bias": {},
                    "response_format": {"type": "text"}, "tools": [], "tool_choice": "none",
                    "parallel_tool_calls": True, "functions": [], "function_call": "none",
                    "modalities": ["text"], "audio": {}, "prediction": {}}
COMPLETION_UNSUPPORTED = {"n": 1, "best_of": 1, "logprobs": 0, "echo": False, "suffix": "",
                          "logit_bias": {}}


# -- models ---------------------------------------------------------------------------------------

def list_models(app, request: Request) -> Response:
    return Response({"object": "list", "data": [_model_card(f) for f in app.registry.files()]})


def get_model(app, request: Request, model_id: str) -> Response:
    try:
        return Response(_model_card(app.registry.find(model_id)))
    except EngineError as error:
        raise from_engine(error) from None


def _model_card(model_file) -> dict:
    return {"id": model_file.id, "object": "model", "created": int(model_file.modified),
            "owned_by": "offgrid-llm"}


# -- generation -----------------------------------------------------------------------------------

def chat_completions(app, request: Request) -> Response:
    body = request.json()
    params.reject_unsupported(body, CHAT_UNSUPPORTED)
    shape = ChatShape(params.string(body, "model"))
    generation_request = GenerationRequest(
        messages=params.chat_messages(body), sampling=params.sampling(body),
        max_tokens=params.max_tokens(body), stop=params.stop_strings(body))
    return _generate(app, request, body, shape, generation_request, "messages")


def completions(app, request: Request) -> Response:
    body = request.json()
    params.reject_unsupported(body, COMPLETION_UNSUPPORTED)
    shape = CompletionShape(params.string(body, "model"))
    generation_request = GenerationRequest(
        prompt=params.prompt(body), sampling=params.sampling(body),
        max_tokens=params.integer(body, "max_tokens", None, 1), stop=params.stop_strings(body))
    return _generate(app, request, body, shape, generation_request, "prompt")


def _generate(app, request: Request, body: dict, shape, generation_request: GenerationRequest,
              prompt_param: str) -> Response:
    stream, include_usage = params.streaming(body)
    try:
        generation = app.registry.get(shape.model).generator().submit(generation_request)
    except EngineError as error:
        raise from_engine(error, prompt_param) from None
    events = _events(request, generation)
    first = next(events, None)
    if first is None:
        raise ClientGone()
    if isinstance(first, Failed):
        raise _api_error(first.error, prompt_param)
    if stream:
        return EventStream(_stream(events, shape, include_usage, prompt_param))
    return Response(_collect(events, shape, prompt_param))


def _events(request: Request, generation: Generation):
    """The generation's events until it ends; cancels it if the client hangs up or the consumer
    stops early."""
    next_check = time.monotonic() + POLL_SECONDS
    try:
        while True:
            event = generation.next_event(timeout=POLL_SECONDS)
            if time.monotonic() >= next_check:
                if request.client_gone():
                    return
                next_check = time.monotonic() + POLL_SECONDS
            if event is None:
                continue
            yield event
            if isinstance(event, (Finished, Failed)):
                return
    finally:
        generation.cancel()


def _collect(events, shape, prompt_param: str) -> dict:
    pieces = []
    for event in events:
        if isinstance(event, Text):
            pieces.append(event.text)
        elif isinstance(event, Failed):
            raise _api_error(event.error, prompt_param)
        elif isinstance(event, Finished):
            return shape.response("".join(pieces), event)
    raise ClientGone()


def _stream(events, shape, include_usage: bool, prompt_param: str):
    try:
        yield shape.chunk(first=True)
        for event in events:
            if isinstance(event, Text):
                yield shape.chunk(text=event.text)
            elif isinstance(event, Failed):
                yield _api_error(event.error, prompt_param).body()
            elif isinstance(event, Finished):
                yield shape.chunk(finish_reason=event.reason)
                if include_usage:
                    yield shape.usage_chunk(event)
    finally:
        events.close()


def _api_error(error: Exception, prompt_param: str) -> ApiError:
    return from_engine(error, prompt_param) if isinstance(error, EngineError) else ApiError(
        str(error))


def usage(finished: Finished) -> dict:
    return {"prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": finished.cached_tokens}}


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


class _Shape:
    """How one endpoint's responses and stream chunks look."""
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

    def response(self, text: str, finished: Finished) -> dict:
        body = self._envelope(self.object_name, [self._choice(text, finished.reason)])
        body["usage"] = usage(finished)
        body["timings"] = timings(finished)
        return body

    def usage_chunk(self, finished: Finished) -> dict:
        body = self._envelope(self.chunk_object_name, [])
        body["usage"] = usage(finished)
        body["timings"] = timings(finished)
        return body


class ChatShape(_Shape):
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def _choice(self, text: str, finish_reason: str) -> dict:
        return {"index": 0, "message": {"role": "assistant", "content": text},
                "logprobs": None, "finish_reason": finish_reason}

    def chunk(self, text: str | None = None, finish_reason: str | None = None,
              first: bool = False) -> dict:
        delta = {"role": "assistant", "content": ""} if first else (
            {"content": text} if text is not None else {})
        return self._envelope(self.chunk_object_name, [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])


class CompletionShape(_Shape):
    object_name = chunk_object_name = "text_completion"
    id_prefix = "cmpl-"

    def _choice(self, text: str, finish_reason: str | None) -> dict:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}

    def chunk(self, text: str | None = None, finish_reason: str | None = None,
              first: bool = False) -> dict:
        return self._envelope(self.chunk_object_name, [self._choice(text or "", finish_reason)])


# -- embeddings -----------------------------------------------------------------------------------

def embeddings(app, request: Request) -> Response:
    body = request.json()
    model_id = params.string(body, "model")
    inputs = params.embedding_inputs(body, MAX_EMBEDDING_INPUTS)
    encoding = params.choice(body, "encoding_format", ("float", "base64"))
    params.reject_unsupported(body, {"dimensions": None})
    try:
        result = app.registry.get(model_id).embedder().embed(inputs)
    except EngineError as error:
        raise from_engine(error, "input") from None
    return Response({
        "object": "list", "model": model_id,
        "data": [{"object": "embedding", "index": i, "embedding": _encode(vector, encoding)}
                 for i, vector in enumerate(result.vectors)],
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}})


def _encode(vector: np.ndarray, encoding: str):
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


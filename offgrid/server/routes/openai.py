"""The OpenAI-compatible endpoints: chat completions, completions, embeddings and models."""

from __future__ import annotations

import base64

import numpy as np

from ...engine import generate
from ...engine.registry import LoadedModel
from ...engine.scheduler import Failed, Finished, GenerationRequest, Text
from .. import params, toolcalls
from ..errors import REFUSALS, ApiError, BadRequest, from_engine
from ..http import ClientGone, EventStream, Request, Response
from ..replies import ChatReply, Choice, CompletionReply, Reply

MAX_EMBEDDING_INPUTS = 2048
MAX_COMPLETION_LOGPROBS = 5

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
    n = params.choices(body)
    return _generate(request, body, loaded, ChatReply(model_id, n, tool_use),
                     generate.choices(generation_request, n), "messages")


def completions(app, request: Request) -> Response:
    body = request.json()
    params.reject_unsupported(body, COMPLETION_UNSUPPORTED)
    model_id = params.string(body, "model")
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
    prompts = params.prompts(body, loaded.model.n_vocab)
    if suffix is not None and not all(isinstance(p, str) for p in prompts):
        raise BadRequest("'suffix' needs the prompt as text", code="invalid_value",
                         param="suffix")
    n = params.choices(body)
    sampling = params.sampling(body, n_vocab=loaded.model.n_vocab)
    max_tokens, stop = params.integer(body, "max_tokens", None, 1), params.stop_strings(body)
    requests = [r for prompt in prompts for r in generate.choices(GenerationRequest(
        prompt=prompt, suffix=suffix, max_tokens=max_tokens, stop=stop, logprobs=logprobs,
        sampling=sampling), n)]
    echoes = [(p if isinstance(p, str) else loaded.model.detokenize(p)) if echo else ""
              for p in prompts]
    return _generate(request, body, loaded, CompletionReply(model_id, n, echoes), requests,
                     "prompt")


def _generate(request: Request, body: dict, loaded: LoadedModel, reply: Reply,
              generation_requests: list[GenerationRequest], prompt_param: str) -> Response:
    stream, include_usage = params.streaming(body)
    n = len(generation_requests)
    try:
        scheduler = loaded.generator()
        if n > scheduler.capacity:
            raise BadRequest(f"This asks for {n} generations at once; {loaded.file.id} can hold "
                             f"{scheduler.capacity} (slots and wait queue together)",
                             code="invalid_value", param="n")
        run = generate.Run(scheduler, generation_requests, per_prompt=reply.per_prompt,
                           meter=request.meter, caller_gone=request.client_gone)
        if not run.started():
            raise ClientGone()
    except REFUSALS as error:
        raise from_engine(error, prompt_param) from None
    if stream:
        return EventStream(_stream(run, reply, n, include_usage, prompt_param))
    return Response(_collect(run, reply, n, prompt_param))


def _collect(run: generate.Run, reply: Reply, n: int, prompt_param: str) -> dict:
    choices = [Choice() for _ in range(n)]
    try:
        for index, event in run:
            if isinstance(event, Failed):
                raise _api_error(event.error, prompt_param)
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
    return reply.response(choices)


def _stream(run: generate.Run, reply: Reply, n: int, include_usage: bool, prompt_param: str):
    finished: dict[int, Finished] = {}
    try:
        yield from reply.opening_chunks(n)
        for index, event in run:
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
        run.close()


def _api_error(error: Exception, prompt_param: str) -> ApiError:
    return from_engine(error, prompt_param) if isinstance(error, REFUSALS) else ApiError(
        str(error))


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
    request.meter.add(result.prompt_tokens)
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

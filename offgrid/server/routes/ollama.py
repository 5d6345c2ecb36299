"""Ollama's endpoints (/api/...), for the clients written for Ollama: the same few steps as the
OpenAI face (parse the whole request, load its model, run the engine, render its answer), in
Ollama's shapes. A model here is `<id>:latest` to them, its digest the sha256 of its file."""

from __future__ import annotations

import time

from ...engine.registry import context_per_slot
from ...models import hub
from ...models.folder import ModelFile
from ..http import Request, Response
from ..ollama import responses
from ..ollama.requests import (
    LATEST,
    ChatRequest,
    CopyRequest,
    EmbedRequest,
    GenerateRequest,
    Generating,
    PullRequest,
    named_model,
)
from . import openai

# The Ollama release whose API this face follows: clients compare it to decide what to use.
OLLAMA_VERSION = "0.6.0"


def version(app, request: Request) -> Response:
    return Response({"version": OLLAMA_VERSION})


def tags(app, request: Request) -> Response:
    return Response({"models": [responses.card(_name(f), f, _digest(app, f))
                                for f in app.registry.files() if f.error is None]})


def show(app, request: Request) -> Response:
    _, model_id = named_model(request.json())
    model_file = app.registry.find(model_id)
    return Response(responses.show(model_file, _context(app, model_file)))


def ps(app, request: Request) -> Response:
    return Response({"models": [
        responses.running(_name(loaded.file), loaded.file, _digest(app, loaded.file),
                          loaded.memory_estimate, loaded.expires_at(),
                          _context(app, loaded.file))
        for loaded in app.registry.loaded().values()]})


def _name(model_file: ModelFile) -> str:
    return model_file.id + LATEST


def _digest(app, model_file: ModelFile) -> str:
    """The sha256 of its (first) file, which the folder computes once per file version: models
    with distinct digests are distinct models to clients such as Open WebUI."""
    return app.registry.folder.sha256(model_file.path)


def _context(app, model_file: ModelFile) -> int:
    """The context of one slot, which is what one request gets."""
    info = model_file.info
    return context_per_slot(app.settings, info.context_length if info else None)


# -- generation ------------------------------------------------------------------------------------

def chat(app, request: Request) -> Response:
    started = time.monotonic_ns()
    asked = ChatRequest.parse(request.json())
    if not asked.messages:
        return _load_only(app, asked, responses.ChatReply(asked.model, started, 0, None))
    loaded, load_ns = _load(app, asked)
    messages, citations = list(asked.messages), None
    if asked.knowledge is not None:
        messages, citations = openai.with_knowledge(app, request, loaded, asked, messages)
    run = openai.start(request, loaded, [asked.generation_request(messages)], 1)
    reply = responses.ChatReply(asked.model, started, load_ns, asked.tool_use, citations)
    return responses.render(run, reply, asked.stream)


def generate(app, request: Request) -> Response:
    started = time.monotonic_ns()
    asked = GenerateRequest.parse(request.json())
    if not asked.prompt and asked.suffix is None:
        return _load_only(app, asked, responses.GenerateReply(asked.model, started, 0))
    loaded, load_ns = _load(app, asked)
    info = loaded.file.info
    run = openai.start(request, loaded, [asked.generation_request(
        bool(info and info.has_chat_template))], 1)
    return responses.render(run, responses.GenerateReply(asked.model, started, load_ns),
                            asked.stream)


def _load(app, asked: Generating | EmbedRequest):
    """(the loaded model, nanoseconds it took to load: 0 when it was loaded already)."""
    started = time.monotonic_ns()
    loaded = app.registry.get(asked.model_id, asked.keep_alive)
    return loaded, time.monotonic_ns() - started


def _load_only(app, asked: Generating, reply: responses.Reply) -> Response:
    """A request with nothing to say loads the model, or with keep_alive 0 unloads it (as soon
    as its requests are done), as Ollama's clients use it."""
    if asked.unloads:
        app.registry.find(asked.model_id)  # an unknown model is a 404, loaded or not
        app.registry.unload(asked.model_id)
        return Response(reply.ended("unload"))
    _load(app, asked)[0].generator()
    return Response(reply.ended("load"))


# -- embeddings ------------------------------------------------------------------------------------

def embed(app, request: Request) -> Response:
    started = time.monotonic_ns()
    asked = EmbedRequest.parse(request.json())
    result, load_ns = _embedded(app, request, asked)
    return Response(responses.embeddings(asked.model, result.vectors, result.prompt_tokens,
                                         started, load_ns, asked.dimensions))


def embeddings(app, request: Request) -> Response:
    """The older endpoint: one `prompt`, one `embedding`."""
    result, _ = _embedded(app, request, EmbedRequest.parse(request.json(), "prompt"))
    return Response({"embedding": [float(x) for x in result.vectors[0]]})


def _embedded(app, request: Request, asked: EmbedRequest):
    loaded, load_ns = _load(app, asked)
    result = loaded.embedder().embed(list(asked.inputs))
    request.meter.add(result.prompt_tokens)
    return result, load_ns


# -- the models folder -----------------------------------------------------------------------------

def pull(app, request: Request) -> Response:
    asked = PullRequest.parse(request.json())
    job = app.downloads.start(asked.repository, hub.choose_file(asked.repository, asked.tag))
    return responses.pull(job, asked.stream, request.client_gone)


def delete(app, request: Request) -> Response:
    app.registry.delete(named_model(request.json())[1])
    return Response()


def copy(app, request: Request) -> Response:
    asked = CopyRequest.parse(request.json())
    app.registry.folder.copy(asked.source, asked.destination)
    return Response()

"""The OpenAI endpoints: chat completions, completions and embeddings. Each is the same few
steps: parse the whole request, load its model, check what needs the model, run the engine,
render its answer."""

from __future__ import annotations

from dataclasses import replace

from ...engine import generate
from ...engine.adapter_turns import NO_ADAPTERS, AdapterSet
from ...engine.registry import LoadedModel
from ...kb import context
from ..http import ClientGone, Request, Response
from ..openai import responses
from ..openai.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest


def chat_completions(app, request: Request) -> Response:
    chat = ChatCompletionRequest.parse(request.json())
    run, citations = start_chat(app, request, chat)
    reply = responses.ChatReply(chat.model, chat.n, chat.tool_use, citations)
    return responses.render(run, reply, chat.n, chat.stream, chat.include_usage)


def start_chat(app, request: Request, chat: ChatCompletionRequest
               ) -> tuple[generate.Run, list[dict] | None]:
    """A parsed chat running on its model, with the knowledge base's passages when it asks for
    them; and their citations. Every chat face starts here."""
    loaded = app.registry.get(chat.model, chat.keep_alive)
    chat.check_against(loaded.model)
    adapters = loaded.adapter_set(chat.lora)
    messages, citations = list(chat.messages), None
    if chat.knowledge is not None:
        messages, citations = with_knowledge(app, request, loaded, chat, messages)
    return start(request, loaded, chat.generation_requests(messages), chat.n,
                 adapters), citations


def with_knowledge(app, request: Request, loaded: LoadedModel, chat: ChatCompletionRequest,
                   messages: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[dict]]:
    """The messages with the passages their question finds as numbered sources, as many as the
    slot has room for; and their citations."""
    options = chat.knowledge
    passages = app.kb.for_chat(app.gate.reader(request.caller), messages, options.top_k,
                               options.min_score, options.document_filter)
    model = loaded.model
    room = generate.prompt_room(loaded.generator(), messages, chat.max_tokens)
    messages, citations = context.with_sources(messages, passages, room, lambda text: len(
        model.tokenize(text, add_special=False, parse_special=False)))
    return messages, [citation.as_dict() for citation in citations]


def completions(app, request: Request) -> Response:
    completion = CompletionRequest.parse(request.json())
    loaded = app.registry.get(completion.model, completion.keep_alive)
    completion.check_against(loaded.model)
    adapters = loaded.adapter_set(completion.lora)
    generation_requests = completion.generation_requests()
    run = start(request, loaded, generation_requests, completion.n, adapters)
    echoes = [(p if isinstance(p, str) else loaded.model.detokenize(list(p)))
              if completion.echo else "" for p in completion.prompts]
    return responses.render(run, responses.CompletionReply(completion.model, completion.n, echoes),
                            len(generation_requests), completion.stream, completion.include_usage)


def start(request: Request, loaded: LoadedModel, generation_requests, per_prompt: int,
          adapters: AdapterSet = NO_ADAPTERS) -> generate.Run:
    """The requests running, under the LoRA `adapters` (loaded.adapter_set), once each has read
    its prompt (a prompt the model refuses is refused before any answer begins)."""
    generation_requests = [replace(r, adapters=adapters) for r in generation_requests]
    run = generate.Run(loaded.generator(), generation_requests, per_prompt=per_prompt,
                       meter=request.meter, caller_gone=request.client_gone)
    if not run.started():
        raise ClientGone()
    return run


def embeddings(app, request: Request) -> Response:
    embedding = EmbeddingRequest.parse(request.json())
    loaded = app.registry.get(embedding.model, embedding.keep_alive)
    embedding.check_against(loaded.model)
    result = loaded.embedder().embed(embedding.texts)
    request.meter.add(result.prompt_tokens)
    return Response(responses.embedding_list(embedding.model, result.vectors,
                                             result.prompt_tokens, embedding.encoding,
                                             embedding.dimensions))

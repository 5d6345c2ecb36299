"""Chat sessions over HTTP: create, list, read, change and delete a session; read or export its
messages; and generate its next turn (one answer, or its text as it is written), which is kept
with the user's message in one transaction, or not at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ... import sessions
from ...engine import generate
from ...engine.requests import Failed, Finished, Text
from ...store import sessions as store
from .. import fields
from ..errors import ApiError, BadRequest, ServiceUnavailable, translate
from ..fields import invalid
from ..http import ClientGone, EventStream, Request, Response
from ..openai.requests import ChatCompletionRequest
from ..openai.responses import usage
from .openai import start, with_knowledge

NAME = re.compile(f"[{sessions.NAME_CHARS}]{{1,{sessions.MAX_NAME_CHARS}}}")
MAX_SYSTEM_PROMPT_CHARS = 100_000
MAX_MESSAGE_CHARS = 100_000
# What a turn passes on to the chat path, which checks each as /v1/chat/completions does.
GENERATION_FIELDS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                     "min_p", "seed", "stop", "presence_penalty", "frequency_penalty",
                     "repeat_penalty", "logit_bias", "keep_alive", "use_knowledge_base",
                     "knowledge_base", "response_format", "lora")
KNOWLEDGE_SHARE = 2  # with the knowledge base, the history gets 1/2 of the room: sources the rest


def owner_of(app, request: Request) -> int | None:
    """Whose sessions the caller sees: their own; everyone's are one in single-user mode."""
    user = request.caller.user if app.gate.mode.multi_user else None
    return user.id if user else None


def _name(body: dict, field: str = "name") -> str:
    name = fields.string(body, field)
    if not NAME.fullmatch(name) or not name.strip("."):
        raise invalid(field, f"1 to {sessions.MAX_NAME_CHARS} of letters, digits, '.', '_' "
                             "and '-', not only dots", name)
    return name


def _model(app, body: dict) -> str | None:
    model = fields.optional_string(body, "model") or None
    if model is not None:
        app.registry.find(model)  # an unknown model is a 404 now, not at the first turn
    return model


def _system_prompt(body: dict) -> str:
    text = fields.optional_string(body, "system_prompt") or ""
    if len(text) > MAX_SYSTEM_PROMPT_CHARS:
        raise invalid("system_prompt", f"at most {MAX_SYSTEM_PROMPT_CHARS} characters", text)
    return text


# -- the sessions -----------------------------------------------------------------------------

def create_session(app, request: Request) -> Response:
    body = request.json()
    session = store.create(app.db, owner_of(app, request), _name(body), _model(app, body),
                           _system_prompt(body))
    return Response(session.as_dict(), 201)


def list_sessions(app, request: Request) -> Response:
    found = store.listed(app.db, owner_of(app, request), request.query.get("search", ""))
    return Response({"sessions": [session.as_dict() for session in found],
                     "count": len(found)})


def get_session(app, request: Request, name: str) -> Response:
    return Response(store.get(app.db, owner_of(app, request), name).as_dict())


def update_session(app, request: Request, name: str) -> Response:
    body = request.json()
    changes = {}
    if "name" in body:
        changes["name"] = _name(body)
    if "model" in body:
        changes["model"] = _model(app, body)
    if "system_prompt" in body:
        changes["system_prompt"] = _system_prompt(body)
    if not changes:
        raise BadRequest("Say what to change: 'name', 'model' or 'system_prompt'")
    return Response(store.update(app.db, owner_of(app, request), name, changes).as_dict())


def delete_session(app, request: Request, name: str) -> Response:
    store.delete(app.db, owner_of(app, request), name)
    return Response({"name": name, "deleted": True})


def list_messages(app, request: Request, name: str) -> Response:
    session = store.get(app.db, owner_of(app, request), name)
    history = store.messages(app.db, session)
    return Response({"session": name, "messages": [m.as_dict() for m in history],
                     "count": len(history)})


def export_session(app, request: Request, name: str) -> Response:
    session = store.get(app.db, owner_of(app, request), name)
    history = store.messages(app.db, session)
    form = request.query.get("format", "json")
    if form == "md":
        return Response(sessions.as_markdown(session, history),
                        content_type="text/markdown; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.md"'})
    if form != "json":
        raise invalid("format", "json or md", form)
    return Response({**session.as_dict(), "messages": [m.as_dict() for m in history]},
                    headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


# -- a turn -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TurnRequest:
    content: str
    stream: bool
    chat: ChatCompletionRequest  # how to generate, checked as a chat completion is

    @classmethod
    def parse(cls, body: dict, session: store.Session, model: str | None) -> "TurnRequest":
        content = fields.string(body, "content")
        if len(content) > MAX_MESSAGE_CHARS:
            raise invalid("content", f"at most {MAX_MESSAGE_CHARS} characters", content)
        if model is None:
            raise fields.missing("model")
        opening = [{"role": "system", "content": session.system_prompt}] \
            if session.system_prompt else []
        chat = ChatCompletionRequest.parse({
            **{name: body[name] for name in GENERATION_FIELDS if name in body},
            "model": model, "messages": [*opening, {"role": "user", "content": content}]})
        return cls(content, fields.boolean(body, "stream", False), chat)


def generate_turn(app, request: Request, name: str) -> Response:
    session = store.get(app.db, owner_of(app, request), name)
    turn = TurnRequest.parse(request.json(), session, session.model or app.default_model)
    loaded = app.registry.get(turn.chat.model, turn.chat.keep_alive)
    turn.chat.check_against(loaded.model)
    adapters = loaded.adapter_set(turn.chat.lora)
    scheduler = loaded.generator()
    budget = generate.prompt_budget(scheduler, turn.chat.max_tokens)
    if turn.chat.knowledge is not None:
        budget //= KNOWLEDGE_SHARE
    messages = sessions.conversation(session, store.messages(app.db, session), turn.content,
                                     budget, lambda text: generate.message_cost(scheduler, text))
    citations = None
    if turn.chat.knowledge is not None:
        messages, citations = with_knowledge(app, request, loaded, turn.chat, messages)
    run = start(request, loaded, turn.chat.generation_requests(messages), 1, adapters)
    if turn.stream:
        return EventStream(_streamed(app, run, session, turn.content, citations),
                           end_marker=False)
    pieces: list[str] = []
    try:
        for piece in _answer(run):
            pieces.append(piece)
    finally:
        run.close()
    finished = pieces.pop()
    return Response(_kept(app, session, turn.content, "".join(pieces), finished, citations))


def _answer(run: generate.Run):
    """The answer's text as it comes, then (last) how it finished. Raises the engine's error,
    or ClientGone when the caller left first."""
    for _, event in run:
        if isinstance(event, Text):
            yield event.text
        elif isinstance(event, Failed):
            raise event.error
        elif isinstance(event, Finished):
            if event.reason == "cancelled":  # the server is shutting down
                raise ServiceUnavailable("The answer was stopped before it was finished; "
                                         "nothing was kept", code="shutting_down")
            yield event
            return
    raise ClientGone()


def _streamed(app, run: generate.Run, session: store.Session, question: str,
              citations: list | None):
    """delta events as the answer is written, then done with the turn as kept (written only
    now, whole); or an error event, and nothing kept."""
    pieces: list[str] = []
    try:
        for piece in _answer(run):
            if isinstance(piece, Finished):
                yield {"type": "done", **_kept(app, session, question, "".join(pieces), piece,
                                               citations)}
            else:
                pieces.append(piece)
                yield {"type": "delta", "content": piece}
    except ClientGone:
        return
    except Exception as error:  # the turn cannot go on: the stream says so
        yield {"type": "error", **(error if isinstance(error, ApiError) else translate(error)
                                   ).body()}
    finally:
        run.close()


def _kept(app, session: store.Session, question: str, answer: str, finished: Finished,
          citations: list | None) -> dict:
    """Write the turn; the answer as the API shows it."""
    spent = usage([finished])
    message = store.add_turn(app.db, session, question, answer, citations, spent)
    return {"message": message.as_dict(), "usage": spent, "finish_reason": finished.reason}

"""OpenAI's Responses endpoints: create a response (whole or streamed), and get or delete one
that was kept. A response runs the chat path the chat face runs; `previous_response_id` puts
the conversation it continues before its input. Kept responses belong to their caller: another
caller's is a 404, as one that never was."""

from __future__ import annotations

from functools import partial

from ...store import responses as kept
from ...store.responses import StoredResponse
from ..errors import NotFound
from ..http import Request, Response
from ..responses_api import responses
from ..responses_api.requests import ResponseRequest
from .openai import start_chat


def create(app, request: Request) -> Response:
    asked = ResponseRequest.parse(request.json())
    may_keep, owner = _owner(app, request)
    history = []
    if asked.previous_response_id is not None:
        history = _conversation(app, request, asked.previous_response_id)
    run, citations = start_chat(app, request, asked.chat(history))
    store = asked.store and may_keep
    reply = responses.ResponseReply(asked, citations, store)
    keep = partial(_keep, app, reply, owner) if store else None
    return responses.render(run, reply, keep)


def retrieve(app, request: Request, response_id: str) -> Response:
    return Response(_find(app, request, response_id).response)


def delete(app, request: Request, response_id: str) -> Response:
    found = _find(app, request, response_id)
    kept.delete(app.db, found.id, found.owner_id)
    return Response({"id": found.id, "object": "response", "deleted": True})


def _owner(app, request: Request) -> tuple[bool, int | None]:
    """(whether the caller's responses can be kept, whose they are). In multi-user mode a caller
    without an account (a guest by address) has nowhere to keep them."""
    user = request.caller.user if request.caller else None
    if not app.gate.mode.multi_user:
        return True, None
    return user is not None, user.id if user else None


def _conversation(app, request: Request, response_id: str) -> list[dict]:
    """The items of the conversation a response ends: each response's input, then its output."""
    may_keep, owner = _owner(app, request)
    chain = kept.history(app.db, response_id, owner) if may_keep else None
    if chain is None:
        raise NotFound(f"Previous response with id '{response_id}' not found.",
                       code="previous_response_not_found", param="previous_response_id")
    return [item for stored in chain for item in (*stored.input, *stored.response["output"])]


def _find(app, request: Request, response_id: str) -> StoredResponse:
    may_keep, owner = _owner(app, request)
    found = kept.get(app.db, response_id, owner) if may_keep else None
    if found is None:
        raise NotFound(f"No response with id '{response_id}' found.", code="response_not_found")
    return found


def _keep(app, reply: responses.ResponseReply, owner: int | None, response: dict) -> None:
    kept.keep(app.db, StoredResponse(reply.id, owner, reply.asked.previous_response_id,
                                     list(reply.asked.items), response))

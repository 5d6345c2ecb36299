"""Anthropic's Messages endpoints: a message (whole or streamed) and counting a body's tokens.
They run the chat path the OpenAI face runs; only reading the body and writing the answer
differ. Their errors are in Anthropic's shape (the route table says so)."""

from __future__ import annotations

from ..anthropic import requests, responses
from ..anthropic.requests import Conversation
from ..http import Request, Response
from .openai import start_chat


def messages(app, request: Request) -> Response:
    chat = requests.parse(request.json())
    run, citations = start_chat(app, request, chat)
    reply = responses.MessageReply(chat.model, chat.tool_use, citations)
    return responses.render(run, reply, chat.stream)


def count_tokens(app, request: Request) -> Response:
    conversation = Conversation.parse(request.json())
    model = app.registry.get(conversation.model).model
    prompt = model.render_chat(list(conversation.messages))
    return Response({"input_tokens": len(model.tokenize(prompt))})

"""A chat session's conversation as a model reads it, and as people take it away.

The prompt is the system prompt, the kept turns in order and the new message, laid out the same
way every turn: a slot that answered the last turn already holds all but the new message, so
the prefix cache skips it. When the conversation outgrows the slot, the oldest turns go first
(the system prompt always stays)."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from .store.sessions import Message, Session

NAME_CHARS = "A-Za-z0-9._-"
MAX_NAME_CHARS = 64


def conversation(session: Session, history: list[Message], question: str, budget: int,
                 cost: Callable[[str], int]) -> list[tuple[str, str]]:
    """(role, text) messages for the model: as many of the latest turns as fit `budget` tokens
    (by `cost`) beside the system prompt and the question."""
    opening = [("system", session.system_prompt)] if session.system_prompt else []
    room = budget - sum(cost(text) for _, text in opening) - cost(question)
    kept: list[tuple[str, str]] = []
    turns = _turns(history)
    while turns:
        turn = turns.pop()  # the latest first
        price = sum(cost(message.content) for message in turn)
        if price > room:
            break  # older turns would leave a gap in the conversation
        room -= price
        kept[:0] = [(message.role, message.content) for message in turn]
    return [*opening, *kept, ("user", question)]


def _turns(history: list[Message]) -> list[list[Message]]:
    """The history as turns: a user's message with the answers that follow it."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def as_markdown(session: Session, history: list[Message]) -> str:
    """The conversation as a Markdown document, to read or to keep."""
    lines = [f"# {session.name}", "",
             f"Model: {session.model or 'the server default'} · started "
             f"{_when(session.created_at)}", ""]
    if session.system_prompt:
        lines += ["## System", "", session.system_prompt, ""]
    for message in history:
        lines += [f"## {message.role.capitalize()} · {_when(message.created_at)}", "",
                  message.content, ""]
        for citation in message.citations or []:
            lines.append(f"[{citation['index']}] {citation['document_name']}, passage "
                         f"{citation['chunk_index']}")
        if message.citations:
            lines.append("")
    return "\n".join(lines)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")

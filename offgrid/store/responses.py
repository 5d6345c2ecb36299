"""The responses OpenAI's Responses API keeps (`store`, on unless a request says not): each
with its owner, the input items it was given and the response it gave, for LIFETIME_SECONDS.
`history` follows `previous_response_id` back, so that a response can continue a conversation.
Expired rows are purged whenever a response is kept."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .db import Database, Row

LIFETIME_SECONDS = 30 * 86400  # as long as OpenAI keeps them
MAX_CHAIN = 1000  # responses one conversation may go back through


@dataclass(frozen=True)
class StoredResponse:
    id: str
    owner_id: int | None  # None: single-user mode
    previous_id: str | None
    input: list  # the input items it was given
    response: dict  # the response object


def keep(db: Database, stored: StoredResponse) -> None:
    now = time.time()
    with db.write() as connection:
        connection.execute("DELETE FROM stored_responses WHERE expires_at <= ?", (now,))
        connection.execute(
            "INSERT INTO stored_responses (id, owner_id, previous_id, input, response, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stored.id, stored.owner_id, stored.previous_id, json.dumps(stored.input),
             json.dumps(stored.response), now, now + LIFETIME_SECONDS))


def get(db: Database, response_id: str, owner_id: int | None) -> StoredResponse | None:
    """The owner's response of that id, unless it has expired (another owner's is None too)."""
    row = db.read_one("SELECT * FROM stored_responses WHERE id = ? AND owner_id IS ? "
                      "AND expires_at > ?", (response_id, owner_id, time.time()))
    return _stored(row) if row else None


def delete(db: Database, response_id: str, owner_id: int | None) -> bool:
    """False if the owner had no response of that id."""
    with db.write() as connection:
        return connection.execute("DELETE FROM stored_responses WHERE id = ? AND owner_id IS ?",
                                  (response_id, owner_id)).rowcount > 0


def history(db: Database, response_id: str, owner_id: int | None) -> list[StoredResponse] | None:
    """The conversation a response ends: it and the ones it continues, oldest first; None if
    the owner has no response of that id (or one it continues has gone)."""
    chain: list[StoredResponse] = []
    next_id: str | None = response_id
    while next_id is not None and len(chain) < MAX_CHAIN:
        stored = get(db, next_id, owner_id)
        if stored is None:
            return None
        chain.append(stored)
        next_id = stored.previous_id
    return chain[::-1]


def _stored(row: Row) -> StoredResponse:
    return StoredResponse(row["id"], row["owner_id"], row["previous_id"], json.loads(row["input"]),
                          json.loads(row["response"]))

"""Chat sessions: conversations kept on the server, each its owner's (NULL in single-user mode),
named uniquely per owner. A turn (the user's message and the model's answer) is written in one
transaction, so a session never holds half of one."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .db import Database, IntegrityError, Row
from .errors import Conflict, Missing


@dataclass(frozen=True)
class Session:
    id: int
    name: str
    model: str | None  # None: the server's default model
    system_prompt: str
    created_at: float
    updated_at: float
    message_count: int

    def as_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "system_prompt": self.system_prompt,
                "created_at": int(self.created_at), "updated_at": int(self.updated_at),
                "message_count": self.message_count}


@dataclass(frozen=True)
class Message:
    id: int
    role: str  # user or assistant
    content: str
    created_at: float
    citations: list | None = None  # an answer's knowledge-base passages
    usage: dict | None = None  # an answer's tokens

    def as_dict(self) -> dict:
        entry = {"id": self.id, "role": self.role, "content": self.content,
                 "created_at": int(self.created_at)}
        if self.citations is not None:
            entry["citations"] = self.citations
        if self.usage is not None:
            entry["usage"] = self.usage
        return entry


_SESSION = ("SELECT s.*, (SELECT COUNT(*) FROM chat_messages m WHERE m.session_id = s.id) "
            "AS message_count FROM chat_sessions s WHERE IFNULL(s.owner_id, 0) = ?")


def create(db: Database, owner_id: int | None, name: str, model: str | None,
           system_prompt: str) -> Session:
    now = time.time()
    with db.write() as connection:
        try:
            connection.execute(
                "INSERT INTO chat_sessions (owner_id, name, model, system_prompt, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (owner_id, name, model, system_prompt, now, now))
        except IntegrityError:
            raise _taken(name) from None
    return get(db, owner_id, name)


def listed(db: Database, owner_id: int | None, search: str = "") -> list[Session]:
    """The owner's sessions, the latest used first; with `search`, those whose name or
    messages hold it (case-insensitive)."""
    sql, parameters = _SESSION, [owner_id or 0]
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += (" AND (s.name LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM chat_messages m "
                "WHERE m.session_id = s.id AND m.content LIKE ? ESCAPE '\\'))")
        parameters += [pattern, pattern]
    return [_session(row) for row in db.read(sql + " ORDER BY s.updated_at DESC, s.id DESC",
                                             parameters)]


def get(db: Database, owner_id: int | None, name: str) -> Session:
    """The owner's session of that name; Missing if the owner has none (another owner's is
    never found)."""
    row = db.read_one(_SESSION + " AND s.name = ?", (owner_id or 0, name))
    if row is None:
        raise Missing(f"No session named {name!r}")
    return _session(row)


def update(db: Database, owner_id: int | None, name: str, changes: dict) -> Session:
    """Change the session's `name`, `model` and/or `system_prompt` (the keys of `changes`)."""
    columns = [column for column in ("name", "model", "system_prompt") if column in changes]
    session = get(db, owner_id, name)
    with db.write() as connection:
        try:
            connection.execute(
                f"UPDATE chat_sessions SET {', '.join(c + ' = ?' for c in columns)}, "
                "updated_at = ? WHERE id = ?",
                [changes[c] for c in columns] + [time.time(), session.id])
        except IntegrityError:
            raise _taken(changes["name"]) from None
    return get(db, owner_id, changes.get("name", name))


def delete(db: Database, owner_id: int | None, name: str) -> None:
    with db.write() as connection:
        deleted = connection.execute(
            "DELETE FROM chat_sessions WHERE IFNULL(owner_id, 0) = ? AND name = ?",
            (owner_id or 0, name)).rowcount
    if not deleted:
        raise Missing(f"No session named {name!r}")


def messages(db: Database, session: Session) -> list[Message]:
    return [Message(row["id"], row["role"], row["content"], row["created_at"],
                    _json(row["citations"]), _json(row["usage"]))
            for row in db.read("SELECT * FROM chat_messages WHERE session_id = ? ORDER BY id",
                               (session.id,))]


def add_turn(db: Database, session: Session, question: str, answer: str,
             citations: list | None, usage: dict) -> Message:
    """Append the user's message and the answer, both or neither; the answer as stored.
    Missing if the session was deleted while the answer was written."""
    now = time.time()
    with db.write() as connection:
        if connection.execute("SELECT 1 FROM chat_sessions WHERE id = ?",
                              (session.id,)).fetchone() is None:
            raise Missing(f"No session named {session.name!r}")
        connection.execute(
            "INSERT INTO chat_messages (session_id, role, content, created_at) "
            "VALUES (?, 'user', ?, ?)", (session.id, question, now))
        answer_id = connection.execute(
            "INSERT INTO chat_messages (session_id, role, content, citations, usage, "
            "created_at) VALUES (?, 'assistant', ?, ?, ?, ?) RETURNING id",
            (session.id, answer, None if citations is None else json.dumps(citations),
             json.dumps(usage), now)).fetchone()[0]
        connection.execute("UPDATE chat_sessions SET updated_at = ? WHERE id = ?",
                           (now, session.id))
    return Message(answer_id, "assistant", answer, now, citations, usage)


def _session(row: Row) -> Session:
    return Session(row["id"], row["name"], row["model"], row["system_prompt"],
                   row["created_at"], row["updated_at"], row["message_count"])


def _taken(name: str) -> Conflict:
    return Conflict(f"There is already a session named {name!r}", "session_exists")


def _json(text: str | None):
    return None if text is None else json.loads(text)

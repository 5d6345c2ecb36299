"""The audit trail: who changed which user, role, key or quota, and when. Secrets never go in."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .db import Database


@dataclass(frozen=True)
class Entry:
    at: float
    actor: str
    action: str
    target: str
    detail: str


def record(db: Database, actor: str, action: str, target: str, detail: str = "") -> None:
    with db.write() as connection:
        connection.execute("INSERT INTO audit (at, actor, action, target, detail) "
                           "VALUES (?, ?, ?, ?, ?)", (time.time(), actor, action, target, detail))


def recent(db: Database, limit: int = 100) -> list[Entry]:
    rows = db.read("SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
                   (limit,))
    return [Entry(**dict(row)) for row in reversed(rows)]

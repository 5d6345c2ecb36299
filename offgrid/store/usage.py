"""Tokens used per subject ('user:<id>', 'key:<id>', 'address:<ip>') per UTC day."""

from __future__ import annotations

import time
from collections.abc import Iterable

from .db import Database


def day(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


def tokens_today(db: Database, subject: str, now: float | None = None) -> int:
    row = db.read_one("SELECT tokens FROM token_usage WHERE subject = ? AND day = ?",
                      (subject, day(now)))
    return row["tokens"] if row else 0


def charge(db: Database, subjects: Iterable[str], tokens: int, now: float | None = None) -> None:
    today = day(now)
    with db.write() as connection:
        connection.execute("DELETE FROM token_usage WHERE day < ?", (today,))
        connection.executemany(
            "INSERT INTO token_usage (subject, day, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (subject, day) DO UPDATE "
            "SET tokens = token_usage.tokens + excluded.tokens",
            [(subject, today, tokens) for subject in subjects])

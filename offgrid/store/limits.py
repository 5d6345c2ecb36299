"""The counters behind rate limits and login pauses when several servers share the database
(server/limits.py keeps them in memory for one server): each admitted request's time per
subject, and each login key's failures. Callers run these inside one write transaction, so that
checking a limit and counting against it happen as one step on every server."""

from __future__ import annotations

from .db import Connection


def recent_requests(connection: Connection, subject: str, since: float) -> list[float]:
    """When the subject's requests after `since` were admitted, oldest first."""
    return [row["at"] for row in connection.execute(
        "SELECT at FROM request_events WHERE subject = ? AND at > ? ORDER BY at",
        (subject, since)).fetchall()]


def add_request(connection: Connection, subject: str, at: float) -> None:
    connection.execute("INSERT INTO request_events (subject, at) VALUES (?, ?)", (subject, at))


def forget_requests(connection: Connection, before: float) -> None:
    connection.execute("DELETE FROM request_events WHERE at <= ?", (before,))


def login_failures(connection: Connection, key: str) -> tuple[int, int, float] | None:
    """(attempts, failures, when the latest was counted) for a login key, if any."""
    row = connection.execute("SELECT attempts, failures, last_at FROM login_failures "
                             "WHERE key = ?", (key,)).fetchone()
    return (row["attempts"], row["failures"], row["last_at"]) if row else None


def set_login_failures(connection: Connection, key: str, attempts: int, failures: int,
                       last_at: float, forget_at: float) -> None:
    connection.execute(
        "INSERT INTO login_failures (key, attempts, failures, last_at, forget_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts, "
        "failures = excluded.failures, last_at = excluded.last_at, "
        "forget_at = excluded.forget_at", (key, attempts, failures, last_at, forget_at))


def forget_login_failures(connection: Connection, key: str | None = None,
                          before: float | None = None) -> None:
    """Forget one key's failures, or those of every key to be forgotten by `before`."""
    if key is not None:
        connection.execute("DELETE FROM login_failures WHERE key = ?", (key,))
    else:
        connection.execute("DELETE FROM login_failures WHERE forget_at <= ?", (before,))

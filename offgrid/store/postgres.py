"""The database in PostgreSQL (OFFGRID_DATABASE_URL=postgresql://…), for several servers that
share one: the same read/read_one/write interface as the sqlite Database (db.py), over a pool
of pg8000 connections, with each statement rewritten for PostgreSQL by dialect.py.

Reads run outside any transaction, so each sees what is committed. A write is a transaction
holding an advisory lock, so there is one writer at a time across every server, as there is one
per sqlite file. `announce` sends a NOTIFY with the write's commit, and `listen` calls back, on
a thread of its own, for those of every server: how each keeps its in-memory state current.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

from . import dialect
from .db import IntegrityError, Migration, migrate
from .errors import Unavailable
from .migrations import MIGRATIONS

log = logging.getLogger(__name__)

POOL_SIZE = 8  # idle connections kept; more are opened when all are busy, and closed after
# The socket's: a connection, statement or lock wait taking longer counts as the database gone.
SOCKET_TIMEOUT_SECONDS = 60
LISTEN_POLL_SECONDS = 0.2  # how often the listener asks for notifications: well within 1 s


class Row(tuple):
    """A result row read by column name or by index, like sqlite3.Row."""

    def __new__(cls, values, names: dict[str, int]):
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class Cursor:
    """What an execute() answers: its rows, and how many rows it changed."""

    def __init__(self, rows: list[Row], rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows

    def __iter__(self):
        return iter(self._rows)


class Connection:
    """One pg8000 connection that takes the store's sqlite SQL (translated by dialect.py)."""

    def __init__(self, raw):
        self.raw = raw
        # A statement that failed inside a transaction aborts it in PostgreSQL (not in sqlite):
        # the write then ends in a rollback, whatever the caller made of the error.
        self.failed = False

    def execute(self, sql: str, parameters=()) -> Cursor:
        values = [int(v) if isinstance(v, bool) else v for v in parameters]
        cursor = Cursor([], -1)
        for statement in dialect.postgresql(sql):
            cursor = self._run(statement, values)
        return cursor

    def executemany(self, sql: str, rows) -> None:
        for parameters in rows:
            self.execute(sql, parameters)

    def _run(self, statement: str, values: list) -> Cursor:
        import pg8000.exceptions
        try:
            context = (self.raw.execute_unnamed(statement, vals=values) if values
                       else self.raw.execute_simple(statement))
        except pg8000.exceptions.DatabaseError as error:
            detail = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
            self.failed = True
            if str(detail.get("C", "")).startswith("23"):  # integrity constraint violation
                raise IntegrityError(detail.get("M", str(error))) from error
            raise
        except (pg8000.exceptions.InterfaceError, OSError) as error:
            raise Unavailable(f"The database stopped answering: {error}") from error
        names = {column["name"]: i for i, column in enumerate(context.columns or ())}
        return Cursor([Row(values, names) for values in context.rows or ()], context.row_count)


def connection_settings(url: str) -> dict:
    """pg8000.connect()'s arguments for a postgresql://user:password@host:port/database URL;
    `?host=/a/folder` names a folder holding the server's unix socket, as with libpq."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"Not a postgresql:// URL: {url!r}")
    query = parse_qs(parts.query)
    settings = {"user": unquote(parts.username or "postgres"),
                "password": unquote(parts.password) if parts.password else None,
                "database": unquote(parts.path.lstrip("/")) or None,
                "port": parts.port or 5432, "timeout": SOCKET_TIMEOUT_SECONDS,
                "application_name": "offgrid"}
    if "host" in query:
        settings["unix_sock"] = f"{query['host'][0]}/.s.PGSQL.{settings['port']}"
    else:
        settings["host"] = parts.hostname or "localhost"
    return settings


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class PostgresDatabase:
    dialect = "postgresql"
    shared = True  # by every server given its URL

    def __init__(self, url: str, migrations: list[Migration] = MIGRATIONS):
        self.url = url
        self.name = _redacted(url)
        self._settings = connection_settings(url)
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._closed = False
        with self._pooled() as connection:
            # Before the first migration, under the writer's lock: two servers starting at
            # once must not both create these.
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("CREATE EXTENSION IF NOT EXISTS citext")
                connection.execute("CREATE TABLE IF NOT EXISTS migrations "
                                   "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            migrate(connection, migrations)

    def _connect(self) -> Connection:
        import pg8000.native
        try:
            return Connection(pg8000.native.Connection(**self._settings))
        except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError) as error:
            raise Unavailable(f"Cannot reach the database at {self.name}: {error}") from error

    @contextmanager
    def _pooled(self, fresh: bool = False) -> Iterator[Connection]:
        """An idle connection (a new one if none is, or if `fresh`), back to the pool after."""
        connection = None
        if not fresh:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                pass
        connection = connection or self._connect()
        try:
            yield connection
        except Unavailable:
            # Broken: never back into the pool, nor the idle ones, which the same restart or
            # network failure most likely broke too.
            _close(connection)
            self._close_idle()
            raise
        except BaseException:
            self._put_back(connection)  # a refused statement leaves the connection usable
            raise
        self._put_back(connection)

    def _put_back(self, connection: Connection) -> None:
        if self._closed or self._idle.qsize() >= POOL_SIZE:
            _close(connection)
        else:
            self._idle.put(connection)

    def read(self, sql: str, parameters=()) -> list[Row]:
        try:
            with self._pooled() as connection:
                return connection.execute(sql, parameters).fetchall()
        except Unavailable:
            # Once more, on a new connection: a pooled one may have died while idle (the
            # database restarted); reading twice changes nothing.
            with self._pooled(fresh=True) as connection:
                return connection.execute(sql, parameters).fetchall()

    def read_one(self, sql: str, parameters=()) -> Row | None:
        rows = self.read(sql, parameters)
        return rows[0] if rows else None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside a write transaction: committed when the block ends, rolled back
        if it raises."""
        with self._pooled() as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.failed = False
            try:
                yield connection
            except Unavailable:
                raise  # the connection is gone, and its transaction with it
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("ROLLBACK" if connection.failed else "COMMIT")

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """Tell every server listening on `channel`, when this write commits."""
        connection.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call `callback(payload)` for each announcement on `channel`, this server's own
        included, on a daemon thread that reconnects when the database comes back; then
        `callback(None)`: announcements may have been missed meanwhile."""
        threading.Thread(target=self._listen, args=(channel, callback), daemon=True,
                         name=f"listen-{channel}").start()

    def _listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        reconnecting = False
        while not self._closed:
            try:
                connection = self._connect()
                connection.execute(f'LISTEN "{channel}"')
                if reconnecting:
                    callback(None)
                reconnecting = True
                while not self._closed:
                    connection.execute("SELECT 1")  # notifications arrive with an answer
                    while connection.raw.notifications:
                        _, _, payload = connection.raw.notifications.popleft()
                        try:
                            callback(payload)
                        except Exception:  # one bad payload must not stop the listener
                            log.exception("Handling %s's notification %r failed", channel,
                                          payload)
                    time.sleep(LISTEN_POLL_SECONDS)
                _close(connection)
            except Unavailable:
                time.sleep(1)

    def close(self) -> None:
        self._closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


def _close(connection: Connection) -> None:
    try:
        connection.raw.close()
    except Exception:  # already gone: closing it is all that was left to do
        pass

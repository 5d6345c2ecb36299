"""The database: sqlite3 at OFFGRID_HOME/offgrid.db (the default), or PostgreSQL when
`database_url` names one (postgres.py); `open_database` picks. This module is the sqlite one:
connections, one writer, and migrations.

Each thread reads through its own connection; writes take a process-wide lock, so there is one
writer at a time in this process, and sqlite's own locking (WAL, with a busy timeout) keeps the
server and the `offgrid` command from stepping on each other.

Migrations are named functions (migrations.py), applied in their list's order; each runs once,
in its own transaction, and is recorded by name in the `migrations` table.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .migrations import MIGRATIONS

BUSY_TIMEOUT_SECONDS = 10

Migration = Callable[[sqlite3.Connection], None]

# What store modules name a connection and a row: postgres.py's are alike where they use them.
Connection = sqlite3.Connection
Row = sqlite3.Row

# What both databases raise for a broken constraint (postgres.py raises it for PostgreSQL's).
IntegrityError = sqlite3.IntegrityError


def open_database(settings) -> Database:
    """The database `settings.database_url` names, else sqlite at OFFGRID_HOME/offgrid.db."""
    return open_url(settings.database_url or f"sqlite:{settings.home / 'offgrid.db'}")


def open_url(url: str) -> Database:
    """The database at `sqlite:PATH` or `postgresql://…`, migrated."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase  # pg8000 is needed only then
        return PostgresDatabase(url)
    if url.startswith("sqlite:") and len(url) > len("sqlite:"):
        return Database(Path(url[len("sqlite:"):]))
    raise ValueError(f"A database is sqlite:PATH or postgresql://…, not {url!r}")


class Database:
    dialect = "sqlite"
    shared = False  # one server's own file: what it counts in memory stays right

    def __init__(self, path: Path, migrations: list[Migration] = MIGRATIONS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Only the server's user reads it (sqlite gives its -wal and -shm files the same mode).
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self.name = str(self.path)
        with self._write_lock:
            connection = self._connection()
            connection.execute("PRAGMA journal_mode = WAL")
            migrate(connection, migrations)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # isolation_level=None: no implicit transactions; writes open their own.
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                         isolation_level=None, check_same_thread=True)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
        return connection

    def read(self, sql: str, parameters=()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, parameters).fetchall()

    def read_one(self, sql: str, parameters=()) -> sqlite3.Row | None:
        rows = self.read(sql, parameters)
        return rows[0] if rows else None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a write transaction: committed when the block ends, rolled back
        if it raises."""
        with self._write_lock:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def announce(self, connection, channel: str, payload: str) -> None:
        """Nothing to do: one sqlite file has one server, which knows what it wrote."""

    def listen(self, channel: str, callback) -> None:
        """Nothing to hear, as above."""

    def close(self) -> None:
        """Each thread's connection closes with its thread."""


def applied_migrations(db) -> list[str]:
    """The names of the migrations a database (sqlite or PostgreSQL) has had, in order."""
    return [row["name"] for row in db.read("SELECT name FROM migrations ORDER BY name")]


def migrate(connection: sqlite3.Connection, migrations: list[Migration]) -> None:
    """Apply, in order, the migrations not yet recorded, each in its own transaction."""
    # Keyed by name. A database from before kept a number too, as the table's rowid: it reads
    # and records the same way.
    connection.execute("CREATE TABLE IF NOT EXISTS migrations "
                       "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    applied = {row[0] for row in connection.execute("SELECT name FROM migrations")}
    for migration in migrations:
        if migration.__name__ in applied:
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if connection.execute("SELECT 1 FROM migrations WHERE name = ?",
                                  (migration.__name__,)).fetchone() is None:
                migration(connection)
                connection.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                                   (migration.__name__, time.time()))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

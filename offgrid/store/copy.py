"""Copying one database into another (`offgrid db copy`): to move a server from its sqlite
file to PostgreSQL, or back. Every table is copied in the order the migrations made them (so
that each row's references are there before it), ids kept; all in one transaction of the
destination, so that a failure leaves it as it was; and only into an empty destination."""

from __future__ import annotations

from collections.abc import Callable

from . import dialect
from .db import Database
from .errors import Conflict

# The tables, in the order the migrations make them. Not the migrations table (each database
# records its own), nor FTS5's: the keyword index is rebuilt from the chunks by each database.
TABLES = ("users", "api_keys", "login_tokens", "token_usage", "audit", "documents", "chunks",
          "vectors", "kb_state", "tool_settings", "mcp_servers", "chat_sessions",
          "chat_messages", "stored_responses", "request_events", "login_failures")
SEEDED = {"kb_state"}  # tables a migration fills in: replaced rather than refused
BATCH = 500  # rows read at a time, so that a large knowledge base never sits in memory whole


def copy(source: Database, destination: Database,
         progress: Callable[[str, int], None] = lambda table, rows: None) -> dict[str, int]:
    """Copy every row of `source` into `destination`; the rows copied per table. Conflict if
    the destination already holds any."""
    held = {table: _count(destination, table) for table in TABLES if table not in SEEDED}
    if any(held.values()):
        listed = ", ".join(f"{table}: {n}" for table, n in held.items() if n)
        raise Conflict(f"{destination.name} already holds data ({listed}); copy into an empty "
                       "database", "destination_not_empty")
    copied = {}
    with destination.write() as connection:
        for table in TABLES:
            if table in SEEDED:
                connection.execute(f"DELETE FROM {table}")
            copied[table] = 0
            for rows in _batches(source, table):
                columns = rows[0].keys()
                connection.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})", [tuple(row) for row in rows])
                copied[table] += len(rows)
                progress(table, copied[table])
            identity = dialect.IDENTITY[destination.dialect]
            if identity and connection.execute(identity, (table,)).fetchone():
                connection.execute(dialect.RESET_IDENTITY.format(table=table))
    return copied


def _columns(db: Database, table: str) -> list[str]:
    return [row["name"] for row in db.read(dialect.COLUMNS[db.dialect], (table,))]


def _count(db: Database, table: str) -> int:
    return db.read_one(f"SELECT COUNT(*) AS n FROM {table}")["n"]


def _batches(db: Database, table: str):
    """The table's rows, BATCH at a time, in the order of its first column (its key)."""
    columns = ", ".join(_columns(db, table))
    offset = 0
    # Ordered by every column: a stable order for OFFSET, whatever the table's key.
    while rows := db.read(f"SELECT {columns} FROM {table} ORDER BY {columns} LIMIT ? OFFSET ?",
                          (BATCH, offset)):
        yield rows
        offset += len(rows)

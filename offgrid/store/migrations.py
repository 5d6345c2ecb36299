"""The database schema, as migrations: named functions, each applied once, in order, and
recorded by name. Add a function to the end of MIGRATIONS to change the schema; never edit one
that has shipped."""

from __future__ import annotations

import sqlite3


def run_script(connection: sqlite3.Connection, script: str) -> None:
    """Run each statement of `script` inside the open transaction (executescript() would commit
    it). A statement ends where sqlite3.complete_statement() says, so a trigger's body, with
    semicolons of its own, stays whole."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            connection.execute(statement)
            statement = ""
    if statement.strip():  # the last statement may go without its semicolon
        connection.execute(statement)


def m001_users_keys_tokens_quotas_audit(connection: sqlite3.Connection) -> None:
    run_script(connection, """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'user', 'guest')),
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            requests_per_minute INTEGER,  -- NULL: the role's default
            tokens_per_day INTEGER
        );
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,  -- the key's first characters: shown, and used to find it
            key_hash TEXT NOT NULL,  -- SHA-256 of the whole key
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL,
            requests_per_minute INTEGER,  -- NULL: only the user's limits apply
            tokens_per_day INTEGER
        );
        CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
        CREATE INDEX api_keys_by_user ON api_keys (user_id);
        CREATE TABLE login_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            prefix TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX login_tokens_by_prefix ON login_tokens (prefix);
        CREATE TABLE token_usage (
            subject TEXT NOT NULL,  -- 'user:<id>', 'key:<id>' or 'address:<ip>'
            day TEXT NOT NULL,  -- UTC date, YYYY-MM-DD
            tokens INTEGER NOT NULL,
            PRIMARY KEY (subject, day)
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )
    """)


MIGRATIONS = [m001_users_keys_tokens_quotas_audit]

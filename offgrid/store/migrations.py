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


def m002_knowledge_base(connection: sqlite3.Connection) -> None:
    run_script(connection, """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER REFERENCES users (id) ON DELETE CASCADE,  -- NULL: single-user mode
            shared INTEGER NOT NULL DEFAULT 0,  -- every user may search and cite it
            name TEXT NOT NULL,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,  -- bytes, as uploaded
            sha256 TEXT NOT NULL,  -- of the upload: the same content twice is one document
            title TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',  -- JSON object, the uploader's
            text TEXT NOT NULL,  -- the extracted text, which chunk offsets point into
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX documents_by_owner_and_content
            ON documents (IFNULL(owner_id, 0), sha256);
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            text TEXT NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            section TEXT NOT NULL DEFAULT '',  -- the headings above it, one per line
            UNIQUE (document_id, position)
        );
        CREATE TABLE vectors (
            chunk_id INTEGER NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
            model TEXT NOT NULL,  -- the embedding model that made it: spaces are never mixed
            vector BLOB NOT NULL,  -- float32, little-endian, unit length
            PRIMARY KEY (model, chunk_id)
        );
        CREATE VIRTUAL TABLE chunks_fts USING fts5 (
            section, text, content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61'
        );
        CREATE TRIGGER chunks_fts_after_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts (rowid, section, text) VALUES (new.id, new.section, new.text);
        END;
        CREATE TRIGGER chunks_fts_after_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts (chunks_fts, rowid, section, text)
            VALUES ('delete', old.id, old.section, old.text);
        END;
        CREATE TABLE kb_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            enabled INTEGER,  -- NULL: never chosen (on when an embedding model is there)
            embedding_model TEXT,  -- whose vectors search uses
            reembedding_to TEXT  -- the model a re-embedding job is filling in, if any
        );
        INSERT INTO kb_state (id) VALUES (1)
    """)


def m003_agent_tools_and_mcp_servers(connection: sqlite3.Connection) -> None:
    run_script(connection, """
        CREATE TABLE tool_settings (
            name TEXT PRIMARY KEY,  -- a built-in tool's, or an MCP server's as server__tool
            enabled INTEGER NOT NULL,
            changed_at REAL NOT NULL,
            changed_by TEXT NOT NULL
        );
        CREATE TABLE mcp_servers (
            name TEXT PRIMARY KEY,
            command TEXT,  -- stdio: the program, run as an argv list, never through a shell
            args TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
            env TEXT NOT NULL DEFAULT '{}',  -- JSON object: variables added for the program
            cwd TEXT,
            url TEXT,  -- streamable HTTP
            headers TEXT NOT NULL DEFAULT '{}',  -- JSON object, sent with every request
            created_at REAL NOT NULL,
            CHECK ((command IS NULL) != (url IS NULL))
        )
    """)


def m004_chat_sessions(connection: sqlite3.Connection) -> None:
    run_script(connection, """
        CREATE TABLE chat_sessions (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER REFERENCES users (id) ON DELETE CASCADE,  -- NULL: single-user mode
            name TEXT NOT NULL,
            model TEXT,  -- NULL: the server's default model
            system_prompt TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX chat_sessions_by_owner_and_name
            ON chat_sessions (IFNULL(owner_id, 0), name);
        CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY,  -- in the order they were said
            session_id INTEGER NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            citations TEXT,  -- JSON array: the knowledge-base passages an answer had
            usage TEXT,  -- JSON object: an answer's tokens
            created_at REAL NOT NULL
        );
        CREATE INDEX chat_messages_by_session ON chat_messages (session_id, id)
    """)


def m005_stored_responses(connection: sqlite3.Connection) -> None:
    run_script(connection, """
        CREATE TABLE stored_responses (
            id TEXT PRIMARY KEY,  -- resp_…
            owner_id INTEGER REFERENCES users (id) ON DELETE CASCADE,  -- NULL: single-user mode
            previous_id TEXT,  -- the response it continues, if any
            input TEXT NOT NULL,  -- JSON array: the input items it was given
            response TEXT NOT NULL,  -- JSON object: the response, as it was answered
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX stored_responses_by_expiry ON stored_responses (expires_at)
    """)


def m006_shared_limits(connection: sqlite3.Connection) -> None:
    """Rate-limit and login counters for servers that share a database (PostgreSQL); one
    server on sqlite keeps them in memory and leaves these empty."""
    run_script(connection, """
        CREATE TABLE request_events (
            subject TEXT NOT NULL,  -- 'user:<id>', 'key:<id>' or 'address:<ip>'
            at REAL NOT NULL  -- when a request was admitted, seconds since the epoch
        );
        CREATE INDEX request_events_by_subject ON request_events (subject, at);
        CREATE INDEX request_events_by_time ON request_events (at);
        CREATE TABLE login_failures (
            key TEXT PRIMARY KEY,  -- a username at an address, or an address
            attempts INTEGER NOT NULL,  -- how many may fail before the pauses start
            failures INTEGER NOT NULL,
            last_at REAL NOT NULL,  -- when the latest was counted
            forget_at REAL NOT NULL  -- when its failures are forgotten
        )
    """)


MIGRATIONS = [m001_users_keys_tokens_quotas_audit, m002_knowledge_base,
              m003_agent_tools_and_mcp_servers, m004_chat_sessions, m005_stored_responses,
              m006_shared_limits]

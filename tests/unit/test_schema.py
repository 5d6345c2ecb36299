"""The database schema the migrations build, and the migration runner's ways with scripts and
with databases made before migrations were keyed by name."""

import sqlite3

from offgrid.store.db import Database
from offgrid.store.migrations import MIGRATIONS, run_script

# Every table with its columns, and every index: what a fresh offgrid.db holds. A migration
# that changes the schema changes this too.
SCHEMA = {
    "migrations": ["name", "applied_at"],
    "users": ["id", "username", "role", "password_hash", "created_at", "requests_per_minute",
              "tokens_per_day"],
    "api_keys": ["id", "user_id", "name", "prefix", "key_hash", "created_at", "last_used_at",
                 "revoked_at", "requests_per_minute", "tokens_per_day"],
    "login_tokens": ["id", "user_id", "prefix", "token_hash", "created_at", "expires_at"],
    "token_usage": ["subject", "day", "tokens"],
    "audit": ["id", "at", "actor", "action", "target", "detail"],
    "documents": ["id", "owner_id", "shared", "name", "content_type", "size", "sha256", "title",
                  "metadata", "text", "created_at"],
    "chunks": ["id", "document_id", "position", "text", "start_char", "end_char", "section"],
    "vectors": ["chunk_id", "model", "vector"],
    "kb_state": ["id", "enabled", "embedding_model", "reembedding_to"],
    "tool_settings": ["name", "enabled", "changed_at", "changed_by"],
    "mcp_servers": ["name", "command", "args", "env", "cwd", "url", "headers", "created_at"],
    "chat_sessions": ["id", "owner_id", "name", "model", "system_prompt", "created_at",
                      "updated_at"],
    "chat_messages": ["id", "session_id", "role", "content", "citations", "usage",
                      "created_at"],
    "stored_responses": ["id", "owner_id", "previous_id", "input", "response", "created_at",
                         "expires_at"],
    "request_events": ["subject", "at"],
    "login_failures": ["key", "attempts", "failures", "last_at", "forget_at"],
    # the FTS5 index over chunks, and the tables FTS5 keeps it in
    "chunks_fts": ["section", "text"],
    "chunks_fts_data": ["id", "block"],
    "chunks_fts_idx": ["segid", "term", "pgno"],
    "chunks_fts_docsize": ["id", "sz"],
    "chunks_fts_config": ["k", "v"],
}
INDEXES = {"api_keys_by_prefix", "api_keys_by_user", "login_tokens_by_prefix",
           "documents_by_owner_and_content", "chat_sessions_by_owner_and_name",
           "chat_messages_by_session", "stored_responses_by_expiry", "request_events_by_subject",
           "request_events_by_time"}
TRIGGERS = {"chunks_fts_after_insert", "chunks_fts_after_delete"}


def test_a_new_database_has_the_whole_schema(tmp_path):
    db = Database(tmp_path / "offgrid.db")
    tables = {row["name"] for row in db.read(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    assert tables == set(SCHEMA)
    for table, columns in SCHEMA.items():
        assert [row["name"] for row in db.read(f"PRAGMA table_info({table})")] == columns
    indexes = {row["name"] for row in db.read(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert indexes == INDEXES
    assert {row["name"] for row in db.read(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")} == TRIGGERS
    assert [row["name"] for row in db.read("SELECT name FROM migrations ORDER BY rowid")] == [
        m.__name__ for m in MIGRATIONS]
    assert db.read_one("PRAGMA foreign_keys")[0] == 1
    assert (tmp_path / "offgrid.db").stat().st_mode & 0o777 == 0o600  # it may hold credentials


def test_a_script_keeps_a_triggers_semicolons_inside_it(tmp_path):
    with sqlite3.connect(tmp_path / "t.db", isolation_level=None) as connection:
        connection.execute("BEGIN")
        run_script(connection, """
            CREATE TABLE notes (body TEXT);  -- one; two
            CREATE TABLE counts (n INTEGER);
            INSERT INTO counts VALUES (0);
            CREATE TRIGGER notes_counted AFTER INSERT ON notes BEGIN
                UPDATE counts SET n = n + 1;
                UPDATE counts SET n = n + 1;
            END;
            INSERT INTO notes VALUES ('a; b');
        """)
        connection.execute("COMMIT")
        assert connection.execute("SELECT n FROM counts").fetchone() == (2,)


def test_a_database_whose_migrations_were_numbered_carries_on(tmp_path):
    path = tmp_path / "offgrid.db"
    with sqlite3.connect(path, isolation_level=None) as old:  # as wave one wrote it
        old.execute("CREATE TABLE migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at REAL NOT NULL)")
        old.execute("BEGIN")
        MIGRATIONS[0](old)
        old.execute("INSERT INTO migrations VALUES (1, ?, 0)", (MIGRATIONS[0].__name__,))
        old.execute("COMMIT")
    ran = []

    def m002_later(connection):
        ran.append("m002")

    db = Database(path, [*MIGRATIONS, m002_later])
    assert ran == ["m002"]  # and the shipped ones after the first
    assert [row["name"] for row in db.read("SELECT name FROM migrations ORDER BY rowid")] == [
        *(m.__name__ for m in MIGRATIONS), "m002_later"]

"""The store against both databases it runs on: sqlite, and PostgreSQL (a throw-away cluster,
tests/support/postgres.py). The same calls give the same answers; where the dialects differ
(dialect.py), both sides of the difference are checked."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from offgrid.config import ConfigError, Settings
from offgrid.server.errors import translate
from offgrid.store import agents, audit, copy, credentials, kb, responses, sessions, usage, users
from offgrid.store.db import Database, open_url
from offgrid.store.errors import Conflict, Unavailable
from offgrid.store.postgres import PostgresDatabase, connection_settings


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = Database(tmp_path / "offgrid.db")
    else:
        database = PostgresDatabase(request.getfixturevalue("database_url"))
    yield database
    database.close()


def _document(db, owner_id, text, sha256="a" * 64, section=("Intro",), vector=(1, 0, 0, 0)):
    return kb.add_document(
        db, owner_id=owner_id, name="notes.txt", content_type="text/plain", size=len(text),
        sha256=sha256, title=None, metadata={"from": "test"}, text=text,
        chunks=[kb.NewChunk(text, 0, len(text), section)], model="embedder",
        vectors=np.array([vector], dtype=np.float32))


def test_users_are_found_by_name_whatever_its_case_and_names_are_unique(db):
    alice = users.create(db, "Alice", "password123", "admin")
    assert users.find(db, "alice") == alice and alice.id >= 1
    with pytest.raises(Conflict):
        users.create(db, "ALICE", "password123", "user")
    bob = users.create(db, "bob", "password123", "user")
    assert users.authenticate(db, "BOB", "password123") == bob
    assert users.set_quota(db, bob.id, requests_per_minute=5).requests_per_minute == 5
    with pytest.raises(Conflict):
        users.delete(db, alice.id)  # the last admin
    assert [u.username for u in users.everyone(db)] == ["Alice", "bob"]


def test_keys_and_login_tokens_identify_their_user(db):
    alice = users.create(db, "alice", "password123", "user")
    key, secret = credentials.create_key(db, alice.id, "laptop", requests_per_minute=3)
    assert credentials.identify(db, secret).key == key and key.requests_per_minute == 3
    token, _ = credentials.create_token(db, alice.id, 60)
    assert credentials.identify(db, token).user == alice
    assert credentials.revoke_key(db, alice.id, key.id).revoked_at is not None
    assert credentials.identify(db, secret) is None


def test_sessions_keep_turns_and_search_case_insensitively(db):
    owner = users.create(db, "alice", "password123", "user").id
    session = sessions.create(db, owner, "Trip", None, "be brief")
    with pytest.raises(Conflict):
        sessions.create(db, owner, "Trip", None, "")
    sessions.create(db, None, "Trip", None, "")  # single-user mode's: another owner
    answer = sessions.add_turn(db, session, "Where is 100% Oslo?", "North", [{"n": 1}], {"t": 2})
    assert [m.content for m in sessions.messages(db, session)] == ["Where is 100% Oslo?",
                                                                    "North"]
    assert answer.id == sessions.messages(db, session)[1].id
    assert [s.name for s in sessions.listed(db, owner, "OSLO")] == ["Trip"]
    assert sessions.listed(db, owner, "100%") and not sessions.listed(db, owner, "1000")
    sessions.delete(db, owner, "Trip")
    assert sessions.listed(db, owner) == []


def test_the_knowledge_base_stores_searches_and_forgets(db):
    owner = users.create(db, "alice", "password123", "user").id
    document = _document(db, owner, "The running rivers of Norway")
    assert document.chunks == 1 and document.metadata == {"from": "test"}
    assert _document(db, owner, "again") is None, "the same content twice is one document"
    assert kb.find_by_content(db, owner, "a" * 64) == document
    other = _document(db, None, "Deserts are dry", sha256="b" * 64, vector=(0, 1, 0, 0))
    everyone = kb.Visible(everything=True)
    found = kb.keyword_search(db, '"rivers" OR "run"', everyone, None, 10)
    assert [chunk for chunk, _ in found] == kb.chunk_ids(db, document.id)
    assert kb.keyword_search(db, '"intro"', kb.Visible(owner_id=None), None, 10) == []
    ids, documents_of, owners, shared, matrix = kb.vectors(db, "embedder")
    assert list(documents_of) == [document.id, other.id] and list(owners) == [owner, -1]
    assert matrix.shape == (2, 4) and matrix[1, 1] == 1.0
    kb.add_vectors(db, "embedder", [(int(ids[0]), np.zeros(4))])
    assert kb.vectors(db, "embedder")[4][0].sum() == 0
    kb.set_shared(db, document.id, True)
    assert kb.get(db, document.id).shared
    assert kb.set_state(db, enabled=True, embedding_model="embedder").enabled is True
    kb.delete(db, document.id)
    assert kb.counts(db) == (1, 1)


def test_usage_audit_tools_and_stored_responses(db):
    usage.charge(db, ["user:1", "key:1"], 5)
    usage.charge(db, ["user:1"], 7)
    assert usage.tokens_today(db, "user:1") == 12 and usage.tokens_today(db, "key:1") == 5
    audit.record(db, "admin", "create_user", "bob")
    assert [e.action for e in audit.recent(db)] == ["create_user"]
    agents.set_tool_enabled(db, "shell", True, "admin")
    agents.set_tool_enabled(db, "shell", False, "admin")
    assert agents.tool_settings(db) == {"shell": False}
    agents.add_mcp_server(db, agents.McpServer("files", command="node", args=("a.js",)))
    with pytest.raises(Conflict):
        agents.add_mcp_server(db, agents.McpServer("files", url="http://127.0.0.1:1/"))
    assert agents.mcp_servers(db)[0].args == ("a.js",)
    responses.keep(db, responses.StoredResponse("resp_1", None, None, [{"a": 1}], {"id": 1}))
    responses.keep(db, responses.StoredResponse("resp_2", None, "resp_1", [], {"id": 2}))
    assert [r.id for r in responses.history(db, "resp_2", None)] == ["resp_1", "resp_2"]
    assert responses.get(db, "resp_1", 5) is None, "another owner's is not there"


def test_an_admin_password_meeting_the_name_taken_creates_nothing_and_raises_nothing(db):
    # What a server finds that checked for an admin just before another one, starting at the
    # same moment on the same database, created it.
    taken = users.create(db, "admin", "correct horse battery staple", "user")
    assert users.ensure_admin(db, "another password entirely") is None
    assert users.find(db, "admin") == taken
    assert users.ensure_admin(db, "correct horse battery staple") is None


def test_a_database_nobody_answers_at_is_a_clear_error():
    with pytest.raises(Unavailable, match="Cannot reach the database at postgresql://u:\\*\\*\\*@"):
        PostgresDatabase("postgresql://u:secret@127.0.0.1:1/none")


def test_two_servers_starting_on_one_database_migrate_it_once(database_url):
    first, second = PostgresDatabase(database_url), PostgresDatabase(database_url)
    users.create(first, "alice", "password123", "user")
    assert users.find(second, "alice") is not None
    assert len(second.read("SELECT name FROM migrations")) == len(
        first.read("SELECT name FROM migrations"))


def test_both_dialects_build_the_same_tables(tmp_path, database_url):
    sqlite_tables = {row["name"] for row in Database(tmp_path / "offgrid.db").read(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'chunks_fts%'")}
    db = PostgresDatabase(database_url)
    assert {row["table_name"] for row in db.read(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema()")} == sqlite_tables
    # FTS5's index is a generated column there, kept by PostgreSQL rather than by triggers.
    assert db.read_one("SELECT is_generated FROM information_schema.columns WHERE "
                       "table_name = 'chunks' AND column_name = 'chunks_fts'")[0] == "ALWAYS"
    assert set(copy.TABLES) | {"migrations"} == sqlite_tables


def test_lost_connections_are_reopened_and_a_lost_write_is_unavailable(database_url):
    db = PostgresDatabase(database_url)
    users.create(db, "alice", "password123", "user")
    killer = PostgresDatabase(database_url)

    def cut_off():
        killer.read("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid != pg_backend_pid()")

    cut_off()
    assert users.find(db, "alice") is not None, "a read tries again on a new connection"
    cut_off()
    with pytest.raises(Unavailable):
        audit.record(db, "admin", "create_user", "bob")  # its pooled connection was cut off
    audit.record(db, "admin", "create_user", "bob")
    assert len(audit.recent(db)) == 1, "the lost write was not half done"
    error = translate(Unavailable("The database stopped answering"))
    assert error.status == 503 and error.code == "database_unavailable"
    assert error.headers["Retry-After"] == "5"


def _filled(db) -> None:
    owner = users.create(db, "alice", "password123", "admin").id
    credentials.create_key(db, owner, "laptop")
    sessions.add_turn(db, sessions.create(db, owner, "trip", None, ""), "q", "a", None, {})
    _document(db, owner, "The running rivers of Norway")
    kb.set_state(db, enabled=True, embedding_model="embedder")


def test_copy_goes_both_ways_and_keeps_ids(tmp_path, database_url):
    source = Database(tmp_path / "source.db")
    _filled(source)
    postgres = PostgresDatabase(database_url)
    copied = copy.copy(source, postgres)
    assert copied["users"] == 1 and copied["chunks"] == 1 and copied["chat_messages"] == 2
    assert users.create(postgres, "bob", "password123", "user").id == 2, "ids go on after"
    assert kb.state(postgres).embedding_model == "embedder"
    assert kb.keyword_search(postgres, '"rivers"', kb.Visible(everything=True), None, 5)
    back = Database(tmp_path / "back.db")
    copy.copy(postgres, back)
    assert [u.username for u in users.everyone(back)] == ["alice", "bob"]
    assert kb.vectors(back, "embedder")[4].shape == (1, 4)
    with pytest.raises(Conflict, match="already holds data"):
        copy.copy(source, postgres)


def test_a_copy_that_fails_leaves_the_destination_empty(tmp_path, database_url):
    source = Database(tmp_path / "source.db")
    _filled(source)
    destination = PostgresDatabase(database_url)

    def fail_at_sessions(table, rows):
        if table == "chat_sessions":
            raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        copy.copy(source, destination, progress=fail_at_sessions)
    assert users.everyone(destination) == [] and kb.counts(destination) == (0, 0)
    copy.copy(source, destination)  # and it can be copied into afterwards


def test_many_threads_write_at_once_without_losing_anything(db):
    errors = []

    def create(n):
        try:
            users.create(db, f"user{n}", "a-long-password", "user")
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(users.everyone(db)) == 12


def test_database_urls_are_read_as_libpq_reads_them():
    tcp = connection_settings("postgresql://off%40grid:p%3Ass@db.internal:6543/kb")
    assert {name: tcp[name] for name in ("user", "password", "host", "port", "database")} == {
        "user": "off@grid", "password": "p:ss", "host": "db.internal", "port": 6543,
        "database": "kb"}
    socket = connection_settings("postgresql://offgrid@/offgrid?host=/run/postgresql")
    assert socket["unix_sock"] == "/run/postgresql/.s.PGSQL.5432" and "host" not in socket
    with pytest.raises(ConfigError, match="database_url must be a postgresql:// URL"):
        Settings(database_url="mysql://db/offgrid")
    with pytest.raises(ValueError, match="sqlite:PATH or postgresql"):
        open_url("offgrid.db")

"""Servers sharing one PostgreSQL database (docs/scale-out.md), against real servers and a
throw-away PostgreSQL cluster: what one server writes the other sees (users, keys, the
knowledge base, within a second for vector search too), one limit spent across both is
enforced once, and `offgrid db copy` moves a sqlite server's data to PostgreSQL."""

from __future__ import annotations

import pytest

from support.cli import offgrid
from support.http import get, post
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.multiuser import ADMIN_PASSWORD, MultiUser, bearer, multi_user_env, password_of
from support.waiting import wait_until

SEARCH, INGEST = "/v1/documents/search", "/v1/documents/ingest"
NOTE = "The generator in the north shed needs diesel every Thursday before noon."


@pytest.fixture(scope="module")
def kb_models(model_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale-out-models")
    for path in (model_files["starter"], model_files["embedding"]):
        (folder / path.name).symlink_to(path)
    return folder


def _start(start_server, kb_models, database_url: str | None, **settings: str) -> MultiUser:
    env = multi_user_env(**settings)
    if database_url:
        env["OFFGRID_DATABASE_URL"] = database_url
    return MultiUser(start_server("--model", CHAT_MODEL, models=kb_models, env=env))


def _search(server: MultiUser, token: str, query: str, mode: str) -> list[dict]:
    status, _, answer = post(server.url + SEARCH, {"query": query, "mode": mode},
                             headers=bearer(token))
    assert status == 200, answer
    return answer["results"]


def test_two_servers_on_one_database_share_users_documents_and_limits(
        start_server, kb_models, database_url):
    first = _start(start_server, kb_models, database_url)
    second = _start(start_server, kb_models, database_url)
    user, token = first.account()
    assert second.login(user["username"], password_of(user["username"]))

    status, _, state = second.call("POST", "/v1/rag/enable", {"embedding_model": EMBEDDING_MODEL},
                                   token=second.admin_token)
    assert status == 200 and state["enabled"], state
    assert _search(second, token, "generator diesel", "vector") == []  # its matrix is loaded
    status, _, added = post(first.url + INGEST, {"name": "shed.md", "content": NOTE},
                            headers=bearer(token))
    assert status in (200, 201), added
    for mode in ("keyword", "vector"):
        found = wait_until(lambda m=mode: _search(second, token, "generator diesel", m),
                           timeout=1, message=f"{mode} search on the other server")
        assert found[0]["document_id"] == added["document"]["id"]

    key = first.create_key(user["id"], requests_per_minute=3)
    answers = [get(server.url + "/v1/models", headers=bearer(key["key"]))[0]
               for server in (first, second, first, second)]
    assert answers == [200, 200, 200, 429], "three a minute, however they are spread"


def test_db_copy_moves_a_sqlite_server_to_postgresql(start_server, kb_models, database_url):
    old = _start(start_server, kb_models, None)
    user, token = old.account()
    key = old.create_key(user["id"])
    assert old.call("POST", "/v1/sessions", {"name": "trip"}, token=token)[0] in (200, 201)
    assert old.call("POST", "/v1/rag/enable", {"embedding_model": EMBEDDING_MODEL},
                    token=old.admin_token)[0] == 200
    assert post(old.url + INGEST, {"name": "shed.md", "content": NOTE},
                headers=bearer(token))[0] in (200, 201)
    assert old.server.stop() == 0

    copied = offgrid("db", "copy", f"sqlite:{old.server.home / 'offgrid.db'}", database_url)
    assert copied.returncode == 0, copied.stderr
    assert "users: 2" in copied.stdout and "chunks: 1" in copied.stdout

    new = _start(start_server, kb_models, database_url)
    assert new.login(user["username"], password_of(user["username"]))
    assert get(new.url + "/v1/models", headers=bearer(key["key"]))[0] == 200
    status, _, listed = new.call("GET", "/v1/sessions", token=token)
    assert [s["name"] for s in listed["sessions"]] == ["trip"]
    assert _search(new, token, "diesel", "keyword")[0]["document_name"] == "shed.md"
    assert _search(new, token, "diesel", "vector")[0]["document_name"] == "shed.md"
    new.create_user()  # ids go on past the copied ones

    again = offgrid("db", "copy", f"sqlite:{old.server.home / 'offgrid.db'}", database_url)
    assert again.returncode == 1 and "already holds data (users: 3" in again.stderr
    migrated = offgrid("db", "migrate", database_url)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout, migrated.stderr


def test_a_database_gone_while_serving_is_503_until_it_is_back(start_server, kb_models,
                                                                database_url, postgres):
    server = _start(start_server, kb_models, database_url)
    user, token = server.account()
    postgres.set_reachable(database_url, False)
    try:
        status, headers, error = get(server.url + "/v1/models", headers=bearer(token))
        assert status == 503 and headers["Retry-After"] == "5", error
        assert error["error"]["code"] == "database_unavailable"
    finally:
        postgres.set_reachable(database_url, True)
    wait_until(lambda: get(server.url + "/v1/models", headers=bearer(token))[0] == 200,
               timeout=5)
    assert "Traceback" not in server.server.log()


def test_a_database_that_cannot_be_reached_stops_the_server_with_a_clear_error(tmp_path):
    done = offgrid("serve", home=tmp_path, env={
        "OFFGRID_DATABASE_URL": "postgresql://offgrid:secret@127.0.0.1:1/offgrid",
        "OFFGRID_MULTI_USER": "true", "OFFGRID_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert done.returncode == 1
    assert "Cannot reach the database at postgresql://offgrid:***@127.0.0.1:1/offgrid" in (
        done.stderr)
    assert "secret" not in done.stderr

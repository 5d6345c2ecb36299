"""Replicas behind a load balancer (docs/scale-out.md), with the real parts: two OffGrid
servers sharing one PostgreSQL database, behind a real nginx and a real HAProxy on loopback that
run the configurations the page shows. Streams pass through as they are written; one caller's
session stays on one replica; users, sessions, documents and limits are the same on both; a
replica killed mid-stream loses only that stream, the balancer sends the rest to the other, and
the replica comes back when restarted."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable

import pytest

from support import script
from support.balancers import HAProxy, Nginx
from support.http import STATUS_LINE, assert_error, exchange, get, hang_up, open_stream, post
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.multiuser import MultiUser, bearer, multi_user_env, password_of, unique
from support.waiting import wait_until

NAMES = ("replica1", "replica2")
EOS = 2  # SmolLM2's <|im_end|>: banned where a stream must outlast the test's look at it
ENDLESS = {"logit_bias": {str(EOS): -100}, "max_tokens": 400}
SESSION_NAMES = [f"affinity-{n}" for n in range(16)]  # both replicas get some, by the hash
COUNT = "1, 2, 3, 4, 5, 6, 7, 8,"
MEMO = "The key is under the mat."


@pytest.fixture(scope="session")
def balancer_programs() -> dict[str, str]:
    return script("fetch_balancers").ensure()


@pytest.fixture(scope="session")
def replicas(start_session_server, postgres) -> dict[str, object]:
    """replica name -> its server: multi-user, one PostgreSQL database, the same models, the
    balancers (on loopback's 127.0.0.1) trusted to name the clients."""
    env = {**multi_user_env(database_url=postgres.new_database(), trusted_proxies="127.0.0.1"),
           "OFFGRID_USER_REQUESTS_PER_MINUTE": "0",
           "OFFGRID_SHUTDOWN_TIMEOUT": "300"}  # a stopping replica's stream ends, however slow
    # One after the other: the first creates the schema and the admin, the second finds them.
    return {name: start_session_server("--model", CHAT_MODEL, "--parallel", "2",
                                       "--max-context", "1024", "--replica-name", name, env=env)
            for name in NAMES}


def addresses(replicas) -> list[str]:
    return [f"127.0.0.1:{replicas[name].port}" for name in NAMES]


def running(kind, balancer_programs, replicas, tmp_path_factory):
    """A balancer of `kind` in front of the replicas, for as long as its fixture lasts."""
    balancer = {"nginx": Nginx, "haproxy": HAProxy}[kind](
        balancer_programs[kind], tmp_path_factory.mktemp(kind), addresses(replicas))
    yield balancer
    balancer.stop()


@pytest.fixture(scope="session")
def nginx(balancer_programs, replicas, tmp_path_factory):
    yield from running("nginx", balancer_programs, replicas, tmp_path_factory)


@pytest.fixture(scope="session")
def haproxy(balancer_programs, replicas, tmp_path_factory):
    yield from running("haproxy", balancer_programs, replicas, tmp_path_factory)


@pytest.fixture(scope="session")
def site(nginx) -> MultiUser:
    """The replicas as their users see them: through nginx, the admin logged in."""
    return MultiUser(nginx)


@pytest.fixture(scope="session")
def user(site) -> dict:
    """A user and their login token (its key headers under "headers")."""
    found, token = site.account()
    return {**found, "token": token, "headers": bearer(token)}


def replica_of(headers) -> str:
    return headers["X-OffGrid-Replica"]


def other(name: str) -> str:
    return NAMES[1 - NAMES.index(name)]


def session_path(name: str) -> str:
    return f"/v1/sessions/{name}"


def answered_by(url: str, path: str, headers: dict) -> str | None:
    """Which replica the balancer at `url` sends GET `path` with `headers` to (a session that
    does not exist is a 404 that names it too); None when no replica answered."""
    return get(url + path, headers=headers)[1].get("X-OffGrid-Replica")


def placed_on(balancer, replica: str, user) -> str:
    """One of SESSION_NAMES that `balancer` sends to `replica`."""
    return next(name for name in SESSION_NAMES
                if answered_by(balancer.url, session_path(name), user["headers"]) == replica)


def wait_sent(balancer, path: str, user, replica: str) -> None:
    """Until `balancer` sends the user's GET `path` to `replica`."""
    wait_until(lambda: answered_by(balancer.url, path, user["headers"]) == replica, 60,
               message=f"{type(balancer).__name__} sending {path} to {replica}")


def busy_slots(replica, admin_token: str) -> int:
    status, _, stats = get(replica.url + "/v1/system/stats", headers=bearer(admin_token))
    assert status == 200, stats
    return stats["active_sessions"]


def first_piece(response, has_text: Callable[[dict], bool]) -> dict:
    """The first event of a stream (SSE `data:` or NDJSON lines) that carries text."""
    for raw in response:
        line = raw.decode().strip()
        data = line[len("data: "):] if line.startswith("data: ") else line
        if data and data != "[DONE]" and has_text(event := json.loads(data)):
            return event
    raise AssertionError("the stream ended without text")


def is_delta(event: dict) -> bool:
    return event["type"] == "delta"


def read_to_the_end(response) -> tuple[list, bool]:
    """The rest of an SSE stream's events, and whether it ended whole rather than cut off."""
    events = []
    try:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
    except http.client.HTTPException:  # IncompleteRead: the chunked body stopped short
        return events, False
    return events, bool(events) and events[-1].get("type") == "done"


def contents(replica, user, name: str) -> list[str]:
    status, _, history = get(replica.url + session_path(name) + "/messages",
                             headers=user["headers"])
    assert status == 200, history
    return [message["content"] for message in history["messages"]]


# -- each replica says who it is ------------------------------------------------------------

def test_health_names_the_replica_and_the_models_it_has(replicas):
    for name, replica in replicas.items():
        status, headers, health = get(replica.url + "/health")
        assert status == 200 and replica_of(headers) == name
        assert health["status"] == "healthy" and health["replica"] == name
        assert {CHAT_MODEL, EMBEDDING_MODEL} <= set(health["models"])


def test_a_replica_that_lacks_a_model_names_itself(start_server, model_files, tmp_path):
    lonely = tmp_path / "models"
    lonely.mkdir()
    (lonely / model_files["embedding"].name).symlink_to(model_files["embedding"])
    replica = start_server("--replica-name", "replica3", models=lonely)
    status, headers, error = post(replica.url + "/v1/chat/completions", {
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    found = assert_error(status, error, 404, "model_not_found", "model")
    assert found["message"] == (f"Model not found: {CHAT_MODEL} on replica replica3, whose "
                                "models folder has no such file")
    assert replica_of(headers) == "replica3"
    assert get(replica.url + "/health")[2]["models"] == [EMBEDDING_MODEL]


# -- streams pass through as they are written ------------------------------------------------

@pytest.mark.parametrize("path, body, has_text", [
    ("/v1/chat/completions",
     {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Count to a thousand."}],
      **ENDLESS},
     lambda event: bool(event["choices"] and event["choices"][0]["delta"].get("content"))),
    # Ollama's options have no logit_bias: a raw count goes on long enough by itself.
    ("/api/generate",
     {"model": CHAT_MODEL, "prompt": COUNT, "raw": True,
      "options": {"num_predict": ENDLESS["max_tokens"], "temperature": 0}},
     lambda event: bool(event["response"])),
], ids=["sse", "ndjson"])
def test_a_stream_through_nginx_arrives_while_it_is_written(nginx, replicas, site, user, path,
                                                           body, has_text):
    connection, response = open_stream(nginx.url, path, body, headers=user["headers"])
    replica = replicas[replica_of(response.headers)]
    try:
        assert response.status == 200
        first_piece(response, has_text)
        # The text came while its replica still generates: nothing held it back until the end.
        assert busy_slots(replica, site.admin_token) >= 1
    finally:
        hang_up(connection)
    wait_until(lambda: busy_slots(replica, site.admin_token) == 0, 60,
               message="the slot of the stream hung up on freed")  # nginx passed it on


# -- one conversation, one replica -------------------------------------------------------------

@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_a_session_stays_on_one_replica_and_sessions_spread(request, user, balancer):
    url = request.getfixturevalue(balancer).url
    placed = {}
    for name in SESSION_NAMES:
        seen = {answered_by(url, session_path(name), user["headers"]) for _ in range(3)}
        assert len(seen) == 1, (name, seen)
        placed[name] = seen.pop()
    assert set(placed.values()) == set(NAMES), placed


# -- the same users, sessions, documents and limits on both ----------------------------------

def test_a_user_created_through_one_logs_in_through_the_other(site, replicas):
    username = unique("traveller")
    status, headers, created = site.call("POST", "/v1/users", {
        "username": username, "password": password_of(username)}, token=site.admin_token)
    assert status == 200, created
    status, _, answer = post(replicas[other(replica_of(headers))].url + "/v1/auth/login",
                             {"username": username, "password": password_of(username)})
    assert status == 200 and answer["user"]["id"] == created["id"], answer


def test_a_session_started_on_one_continues_on_the_other(site, replicas, user):
    name = unique("journey-")
    assert site.call("POST", "/v1/sessions", {"name": name}, token=user["token"])[0] == 201
    status, headers, first = site.call("POST", session_path(name) + "/generate",
                                       {"content": MEMO, "max_tokens": 8}, token=user["token"])
    assert status == 200, first
    there = replicas[other(replica_of(headers))]
    status, _, second = post(there.url + session_path(name) + "/generate",
                             {"content": "Where is the key?", "max_tokens": 8},
                             headers=user["headers"])
    assert status == 200, second
    assert contents(there, user, name) == [MEMO, first["message"]["content"],
                                           "Where is the key?", second["message"]["content"]]


def test_a_document_ingested_on_one_is_found_on_the_other_within_a_second(site, replicas,
                                                                        user):
    status, headers, ingested = site.call("POST", "/v1/documents/ingest", {
        "name": "radio.txt", "content": "The north camp listens on radio channel 4."},
        token=user["token"])
    assert status == 201, ingested
    there = replicas[other(replica_of(headers))]

    def found() -> bool:
        status, _, answer = post(there.url + "/v1/documents/search",
                                 {"query": "Which radio channel?", "top_k": 3},
                                 headers=user["headers"])
        assert status == 200, answer
        return any(hit["document_id"] == ingested["document"]["id"]
                   for hit in answer["results"])

    wait_until(found, 1, message="the document found on the other replica")


def test_a_rate_limit_spent_across_both_replicas_is_enforced_once(site, replicas, user):
    key = site.create_key(user["id"], token=user["token"], requests_per_minute=4)
    headers = bearer(key["key"])
    for name in (*NAMES, *NAMES):  # two requests on each replica: the limit's four
        status, _, answer = get(replicas[name].url + "/v1/models", headers=headers)
        assert status == 200, answer
    status, _, error = get(site.url + "/v1/models", headers=headers)
    assert_error(status, error, 429, "rate_limit_exceeded")


def login_from(balancer, address: str, username: str, password: str) -> int:
    """The status of a login through `balancer` by a client at `address` (of 127.0.0.0/8)."""
    body = json.dumps({"username": username, "password": password}).encode()
    reply = exchange(balancer.url, b"POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body), source=address)
    return int(STATUS_LINE.match(reply)[1])


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_login_throttling_counts_each_client_not_the_balancer(request, site, balancer):
    balancer = request.getfixturevalue(balancer)
    target = site.create_user()
    guessing, owner = "127.0.0.2", "127.0.0.3"
    for _ in range(5):  # login_attempts
        assert login_from(balancer, guessing, target["username"], "wrong") == 401
    assert login_from(balancer, guessing, target["username"], "wrong") == 429
    assert login_from(balancer, owner, target["username"],
                      password_of(target["username"])) == 200


# -- a replica stopped, lost, and back ---------------------------------------------------------

def accepting(replica) -> bool:
    try:
        socket.create_connection(("127.0.0.1", replica.port), timeout=5).close()
    except ConnectionError:  # refused; or reset, by a listener closing with it in its backlog
        return False
    return True


@pytest.fixture
def restoring(replicas):
    """Whatever a test does to the replicas, they all run again after it, for the next ones."""
    yield
    for replica in replicas.values():
        if replica.process.poll() is not None:
            replica.restart()


def test_a_replica_stopping_finishes_its_stream_while_the_balancers_send_the_rest_elsewhere(
        site, replicas, user, nginx, haproxy, restoring):
    stopping_name, other_name = NAMES
    stopping = replicas[stopping_name]
    # Sessions of the stopping replica's, on each balancer.
    names = {balancer: placed_on(balancer, stopping_name, user) for balancer in (nginx, haproxy)}
    for name in set(names.values()):
        site.call("POST", "/v1/sessions", {"name": name}, token=user["token"])
    connection, running = open_stream(nginx.url, session_path(names[nginx]) + "/generate",
                                      {"content": "Count to ten.", **ENDLESS, "max_tokens": 64},
                                      headers=user["headers"])
    assert replica_of(running.headers) == stopping_name
    first_piece(running, is_delta)
    for balancer, name in names.items():  # a connection each, just used, kept open
        assert answered_by(balancer.url, session_path(name), user["headers"]) == stopping_name
    stopping.terminate()
    wait_until(lambda: not accepting(stopping), 30, message="the replica refusing connections")
    for balancer, name in names.items():
        for _ in range(3):  # POSTs, which a balancer may not resend once the replica had them
            status, headers, turn = post(balancer.url + session_path(name) + "/generate",
                                         {"content": "Hello.", "max_tokens": 2},
                                         headers=user["headers"])
            assert status == 200 and replica_of(headers) == other_name, (balancer, turn)
    events, whole = read_to_the_end(running)
    assert whole, events[-1:]
    connection.close()
    assert stopping.stop() == 0, stopping.log()[-2000:]
    stopping.restart()
    for balancer, name in names.items():
        wait_sent(balancer, session_path(name), user, stopping_name)



def test_a_replica_killed_mid_stream_loses_that_stream_only_and_rejoins_when_restarted(
        site, replicas, user, nginx, haproxy, restoring):
    name = unique("expedition-")
    assert site.call("POST", "/v1/sessions", {"name": name}, token=user["token"])[0] == 201
    status, headers, first = site.call("POST", session_path(name) + "/generate",
                                       {"content": MEMO, "max_tokens": 8}, token=user["token"])
    assert status == 200, first
    doomed_name, survivor_name = replica_of(headers), other(replica_of(headers))
    doomed, survivor = replicas[doomed_name], replicas[survivor_name]
    # A caller of the doomed replica on each balancer.
    paths = {balancer: session_path(placed_on(balancer, doomed_name, user))
             for balancer in (nginx, haproxy)}
    # A stream on each replica, both under way when one replica dies.
    elsewhere = placed_on(nginx, survivor_name, user)
    site.call("POST", "/v1/sessions", {"name": elsewhere}, token=user["token"])
    kept = open_stream(nginx.url, session_path(elsewhere) + "/generate",
                       {"content": "Count to ten.", **ENDLESS, "max_tokens": 24},
                       headers=user["headers"])
    lost = open_stream(nginx.url, session_path(name) + "/generate",
                       {"content": "Count to a thousand.", **ENDLESS}, headers=user["headers"])
    for _, response in (kept, lost):
        first_piece(response, is_delta)
    doomed.kill()
    assert not read_to_the_end(lost[1])[1], "the killed replica's stream ended as if whole"
    events, whole = read_to_the_end(kept[1])
    assert whole, events[-1:]
    # The session's next turn goes to the other replica, which has the session as it was
    # before the lost turn (a turn is kept whole or not at all); so do other callers'.
    status, headers, turn = site.call("POST", session_path(name) + "/generate",
                                      {"content": "Where is the key?", "max_tokens": 8},
                                      token=user["token"])
    assert status == 200 and replica_of(headers) == survivor_name, turn
    assert contents(survivor, user, name) == [MEMO, first["message"]["content"],
                                              "Where is the key?", turn["message"]["content"]]
    for balancer, path in paths.items():
        wait_sent(balancer, path, user, survivor_name)
    # While it is down, a user is added; restarted, it knows them, and the balancers send its
    # callers back to it: nginx once fail_timeout is over, HAProxy after one good check.
    newcomer = site.create_user()
    doomed.restart()
    status, _, login = post(doomed.url + "/v1/auth/login", {
        "username": newcomer["username"], "password": password_of(newcomer["username"])})
    assert status == 200, login
    for balancer, path in paths.items():
        wait_sent(balancer, path, user, doomed_name)

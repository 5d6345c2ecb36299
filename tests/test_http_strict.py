"""HTTP read the way strict proxies read it, end to end on a multi-user server: a request that
could be framed two ways is refused with a status line and the API's error shape and its
connection closed, so nothing hidden in its body runs; one client address cannot take every
connection; a body must start soon; a refused body is drained, so its client reads the
refusal; and nothing a client sends reaches the log unescaped."""

import json
import re
import socket
import time

import pytest

from offgrid.config import ConfigError, Settings
from support.http import answers, assert_error, chat_body, connect, exchange
from support.models import CHAT_MODEL
from support.multiuser import bearer, start_multi_user
from support.waiting import wait_until

HEADER_DEADLINE = 2  # seconds for the request line and headers, then for a body's first byte
BODY_DEADLINE = 30  # seconds for a whole body: far longer, to tell the two deadlines apart
PER_ADDRESS = 4  # connections from one address
MAX_BODY = 100_000
HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
POST = b"POST /v1/tokenize HTTP/1.1\r\nHost: localhost\r\n"  # its headers go on


@pytest.fixture(scope="module")
def site(start_module_server):
    site = start_multi_user(start_module_server, "--log-level", "debug", env={
        "OFFGRID_HEADER_TIMEOUT": str(HEADER_DEADLINE),
        "OFFGRID_BODY_TIMEOUT": str(BODY_DEADLINE), "OFFGRID_MAX_CONNECTIONS": "16",
        "OFFGRID_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        "OFFGRID_MAX_BODY_BYTES": str(MAX_BODY), "OFFGRID_USER_REQUESTS_PER_MINUTE": "0"})
    yield site
    site.server.stop()


@pytest.fixture(scope="module")
def bystander(site):
    user, _ = site.account("user")
    return site.create_key(user["id"])["key"]


@pytest.fixture(autouse=True)
def still_serving_others(site, bystander):
    yield
    status, _, answer = site.call("POST", "/v1/chat/completions",
                                  chat_body("Say yes.", max_tokens=2), token=bystander)
    assert status == 200, answer


def the_one_error(reply: bytes, status: int, code: str | None = None) -> dict:
    """The only answer in `reply`: an error with `status` that closes the connection."""
    (got, headers, body), = answers(reply)
    assert headers["Connection"] == "close"
    return assert_error(got, body, status, code or ("bad_request" if status == 400 else None))


def tokenize_body() -> bytes:
    return json.dumps({"model": CHAT_MODEL, "content": "hi"}).encode()


def admin(site) -> bytes:
    """The admin's Authorization header line."""
    return b"Authorization: %s\r\n" % bearer(site.admin_token)["Authorization"].encode()


# -- framing --------------------------------------------------------------------------------------

def smuggled(site, username: str) -> bytes:
    """A request that would make an admin user, hidden where a lenient server reads a request."""
    body = json.dumps({"username": username, "password": "smuggled-password", "role": "admin"})
    return (b"POST /v1/users HTTP/1.1\r\nHost: localhost\r\n" + admin(site)
            + b"Content-Length: %d\r\n\r\n" % len(body) + body.encode())


def usernames(site) -> set[str]:
    status, _, users = site.call("GET", "/v1/users", token=site.admin_token)
    assert status == 200
    return {user["username"] for user in users["data"]}


# (what precedes the hidden request, whose length is {n}; the status it gets)
FRAMINGS = {
    "two lengths": (POST + b"Content-Length: 0\r\nContent-Length: {n}\r\n\r\n", 400),
    "two equal lengths": (POST + b"Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n", 400),
    "length and chunked": (POST + b"Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n",
                           400),
    "chunked alone": (POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    "underscore digits": (POST + b"Content-Length: 0_0\r\n\r\n", 400),
    "signed length": (POST + b"Content-Length: +0\r\n\r\n", 400),
    "negative length": (POST + b"Content-Length: -0\r\n\r\n", 400),
    "hex length": (POST + b"Content-Length: 0x0\r\n\r\n", 400),
    "spaced digits": (POST + b"Content-Length: 0 0\r\n\r\n", 400),
    "arabic digits": (POST + "Content-Length: \u0660\r\n\r\n".encode(), 400),
    "empty length": (POST + b"Content-Length:\r\n\r\n", 400),
    "thousands of digits": (POST + b"Content-Length: %s\r\n\r\n" % (b"9" * 5000), 413),
    "space before the colon": (POST + b"Content-Length : {n}\r\n\r\n", 400),
    "line without a colon": (POST + b"X-Junk\r\nContent-Length: {n}\r\n\r\n", 400),
    "folded line": (POST + b"X-Folded: a\r\n Content-Length: {n}\r\n\r\n", 400),
    "folded first line": (b"POST /v1/tokenize HTTP/1.1\r\n Host: localhost\r\n"
                          b"Host: localhost\r\n\r\n", 400),
    "envelope line": (b"POST /v1/tokenize HTTP/1.1\r\nFrom x\r\nHost: localhost\r\n\r\n", 400),
    "bare carriage return": (POST + b"X-A: a\rContent-Length: {n}\r\n\r\n", 400),
    "control character": (POST + b"X-A: a\x00b\r\n\r\n", 400),
    "name not a token": (POST + b"X(A): b\r\n\r\n", 400),
    "no host": (b"POST /v1/tokenize HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
    "two hosts": (POST + b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 400),
    "no version": (b"GET /\r\n", 400),
    "one word": (b"GARBAGE\r\n", 400),
    "two spaces": (b"GET  / HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "four words": (b"GET / HTTP/1.1 x\r\nHost: localhost\r\n\r\n", 400),
    "method not a token": (b"G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "control character in the target": (b"GET /\x7f HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "target not a url": (b"GET http://[::1/ HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "not http": (b"GET / FTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "two-digit minor version": (b"GET / HTTP/1.10\r\nHost: localhost\r\n\r\n", 400),
    "http/2": (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
}


@pytest.mark.parametrize("name", FRAMINGS)
def test_ambiguous_requests_are_refused_and_nothing_hidden_in_them_runs(site, name):
    head, status = FRAMINGS[name]
    username = "smuggled" + re.sub(r"\W", "", name)
    hidden = smuggled(site, username)
    reply = exchange(site.url, head.replace(b"{n}", str(len(hidden)).encode()) + hidden)
    the_one_error(reply, status)
    assert username not in usernames(site)


def test_strict_requests_still_share_a_connection(site):
    """Keep-alive, HTTP/1.0 without Host, a lone empty line between requests (which RFC 9112
    asks servers to ignore), and Content-Length with spaces around it are all fine."""
    body = tokenize_body()
    reply = exchange(site.url, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n\r\n"
                           + POST + admin(site) + b"Content-Length:  %d \r\n\r\n" % len(body)
                           + body + b"GET /health HTTP/1.0\r\n\r\n")
    assert [status for status, _, _ in answers(reply)] == [200, 200, 200]


def test_a_body_that_ends_early_is_400(site):
    with connect(site.url) as sock:
        sock.sendall(POST + b"Content-Length: 50\r\n\r\n{\"model\":")
        sock.shutdown(socket.SHUT_WR)
        reply = sock.makefile("rb").read()
    assert "ended after 9 of its 50 bytes" in the_one_error(reply, 400)["message"]


# -- connections and deadlines --------------------------------------------------------------------

def hold_connection(site) -> socket.socket:
    """A connection the server keeps open: its body has begun and may take BODY_DEADLINE."""
    sock = connect(site.url)
    sock.sendall(POST + b"Content-Length: 100\r\n\r\n{")
    return sock


def health_status(site, source: str) -> int:
    (status, _, _), = answers(exchange(site.url, HEALTH, source))
    return status


def test_one_address_at_its_cap_does_not_lock_out_others(site):
    held = [hold_connection(site) for _ in range(PER_ADDRESS)]
    try:
        wait_until(lambda: health_status(site, "127.0.0.1") == 503)
        (status, _, error), = answers(exchange(site.url, HEALTH))
        assert_error(status, error, 503, "too_many_connections")
        assert health_status(site, "127.0.0.2") == 200
        assert health_status(site, "127.0.0.3") == 200
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: health_status(site, "127.0.0.1") == 200)


def test_the_cap_per_address_is_a_setting_of_at_least_one():
    assert Settings().max_connections_per_address == 32
    with pytest.raises(ConfigError, match="max_connections_per_address"):
        Settings.load(environ={"OFFGRID_MAX_CONNECTIONS_PER_ADDRESS": "0"})


def test_a_body_must_start_within_the_header_deadline(site):
    with connect(site.url) as sock:
        sock.settimeout(BODY_DEADLINE)
        started = time.monotonic()
        sock.sendall(POST + b"Content-Length: 10\r\n\r\n")
        reply = sock.makefile("rb").read()
        waited = time.monotonic() - started
    the_one_error(reply, 408, "request_timeout")
    assert HEADER_DEADLINE - 0.5 < waited < BODY_DEADLINE / 2


def test_a_body_that_has_started_gets_the_body_deadline(site):
    body = tokenize_body()
    with connect(site.url) as sock:
        sock.sendall(POST + admin(site) + b"Connection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:1])
        time.sleep(HEADER_DEADLINE + 0.5)  # what is tested: time passing, past one deadline
        sock.sendall(body[1:])
        reply = sock.makefile("rb").read()
    (status, _, answer), = answers(reply)
    assert status == 200 and answer["tokens"]


# -- refused bodies -------------------------------------------------------------------------------

OVERSIZED = 16 * 1024 * 1024  # more than the kernel holds, so the client is still sending


def test_expect_100_continue_is_sent_only_for_a_body_that_will_be_read(site):
    expecting = POST + b"Expect: 100-continue\r\n"
    with connect(site.url) as sock:
        sock.sendall(expecting + b"Content-Length: %d\r\n\r\n" % OVERSIZED)
        reply = sock.makefile("rb").read()  # without sending the body: no 100, a 413 at once
    the_one_error(reply, 413, "request_too_large")

    body = tokenize_body()
    with connect(site.url) as sock:
        sock.sendall(expecting + admin(site) + b"Connection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        replies = sock.makefile("rb")
        assert replies.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert replies.readline() == b"\r\n"
        sock.sendall(body)
        (status, _, answer), = answers(replies.read())
    assert status == 200 and answer["tokens"]


def test_a_client_that_sends_a_whole_oversized_body_reads_the_413(site):
    """The server answers before the body has come, and drains it rather than reset the
    connection under the answer."""
    with connect(site.url) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % OVERSIZED + b"x" * OVERSIZED)
        reply = sock.makefile("rb").read()
    the_one_error(reply, 413, "request_too_large")


# -- logs -----------------------------------------------------------------------------------------

def test_control_characters_from_a_client_reach_the_log_escaped(site):
    for line in (b"GET /\x1b[2J HTTP/1.1\r\n", b"\x1b[2J / HTTP/1.1\r\n", b"\x9b2J\r\n"):
        the_one_error(exchange(site.url, line + b"Host: localhost\r\n\r\n"), 400)
    log = site.server.log()
    assert "\x1b" not in log and "\x9b" not in log
    assert "GET /\\x1b[2J HTTP/1.1" in log and "\\x9b2J" in log

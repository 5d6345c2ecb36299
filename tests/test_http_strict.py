"""HTTP connections under limits, end to end on a multi-user server: one client address cannot
take every connection."""

import json
import re
import socket
import time

import pytest
from conftest import assert_error, chat_body
from multiuser import start_multi_user

from offgrid.config import ConfigError, Settings

HEADER_DEADLINE = 2  # seconds for the request line and headers
BODY_DEADLINE = 30  # seconds for a whole body
PER_ADDRESS = 4  # connections from one address
MAX_BODY = 100_000
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
POST = b"POST /v1/tokenize HTTP/1.1\r\nHost: x\r\n"  # its headers go on


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


def connect(site, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", site.server.port), timeout=10,
                                    source_address=(source, 0))


def exchange(site, data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send bytes on a fresh connection; everything the server answers before closing it."""
    with connect(site, source) as sock:
        sock.sendall(data)
        return sock.makefile("rb").read()


STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [A-Za-z -]+\r\n")


def answers(reply: bytes) -> list[tuple[int, dict, object]]:
    """Each answer in `reply`, as (status, headers, JSON body); each must have a status line."""
    found = []
    while reply:
        head, _, rest = reply.partition(b"\r\n\r\n")
        status_line = STATUS_LINE.match(head + b"\r\n")
        assert status_line, reply
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        size = int(headers["Content-Length"])
        found.append((int(status_line[1]), headers, json.loads(rest[:size])))
        reply = rest[size:]
    return found


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


# -- connections and deadlines --------------------------------------------------------------------

def hold_connection(site) -> socket.socket:
    """A connection the server keeps open: its body has begun and may take BODY_DEADLINE."""
    sock = connect(site)
    sock.sendall(POST + b"Content-Length: 100\r\n\r\n{")
    return sock


def health_status(site, source: str) -> int:
    (status, _, _), = answers(exchange(site, HEALTH, source))
    return status


def test_one_address_at_its_cap_does_not_lock_out_others(site):
    held = [hold_connection(site) for _ in range(PER_ADDRESS)]
    try:
        wait_until(lambda: health_status(site, "127.0.0.1") == 503)
        (status, _, error), = answers(exchange(site, HEALTH))
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

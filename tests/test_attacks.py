"""What an attacker tries against a multi-user server is refused with the right status, and the
server goes on serving everyone else."""

import http.client
import json
import os
import select
import socket
import threading
import time

import pytest

from support.http import answers, assert_error, chat_body, connect, exchange, get, post, request
from support.models import EMBEDDING_MODEL
from support.multiuser import ADMIN_PASSWORD, bearer, password_of, start_multi_user, unique
from support.waiting import wait_until

CHAT = "/v1/chat/completions"
DEADLINE = 2  # seconds: the server's header and body timeouts here
ALLOWED_ORIGIN = "http://allowed.example"
ALLOWED_HOST = "offgrid.lan"
LOGIN_ATTEMPTS = 3


@pytest.fixture(scope="module")
def transfers(tmp_path_factory):
    """A folder with `usb` in it, the one folder the site lets import and export touch."""
    folder = tmp_path_factory.mktemp("transfers")
    (folder / "usb").mkdir()
    return folder


@pytest.fixture(scope="module")
def site(start_module_server, transfers):
    site = start_multi_user(start_module_server, env={
        "OFFGRID_HEADER_TIMEOUT": str(DEADLINE), "OFFGRID_BODY_TIMEOUT": str(DEADLINE),
        "OFFGRID_MAX_CONNECTIONS": "8", "OFFGRID_MAX_BODY_BYTES": "100000",
        "OFFGRID_LOGIN_ATTEMPTS": "1000", "OFFGRID_CORS_ORIGINS": ALLOWED_ORIGIN,
        "OFFGRID_USER_REQUESTS_PER_MINUTE": "0", "OFFGRID_ALLOWED_HOSTS": ALLOWED_HOST,
        "OFFGRID_TRANSFER_DIRS": str(transfers / "usb")})
    yield site
    site.server.stop()


@pytest.fixture(scope="module")
def guarded(start_module_server):
    """A server that pauses logins after LOGIN_ATTEMPTS failures (the site lets guesses on)."""
    guarded = start_multi_user(start_module_server,
                               env={"OFFGRID_LOGIN_ATTEMPTS": str(LOGIN_ATTEMPTS)})
    yield guarded
    guarded.server.stop()


@pytest.fixture(scope="module")
def bystander(site):
    """Someone else, using the server while it is attacked."""
    user, _ = site.account("user")
    return site.create_key(user["id"])["key"]


@pytest.fixture(autouse=True)
def still_serving_others(site, bystander):
    yield
    status, _, answer = site.call("POST", CHAT, chat_body("Say yes.", max_tokens=2),
                                  token=bystander)
    assert status == 200, answer


# -- injection ----------------------------------------------------------------------------------

INJECTIONS = ["admin' --", "' OR '1'='1", "admin'; DROP TABLE users; --", 'admin" OR ""="',
              "admin\x00", "admin' UNION SELECT 1, 'admin', 'admin', 'x', 0, NULL, NULL --"]


@pytest.mark.parametrize("username", INJECTIONS)
def test_sql_in_a_username_is_just_a_wrong_username(site, username):
    status, _, error = site.call("POST", "/v1/auth/login",
                                 {"username": username, "password": "' OR '1'='1"})
    assert_error(status, error, 401, "invalid_credentials")
    status, _, error = site.call("POST", "/v1/users", {
        "username": username, "password": "long-enough-password"}, token=site.admin_token)
    assert_error(status, error, 400, "invalid_value", "username")


def test_sql_in_ids_and_names_changes_nothing(site):
    for path in ["/v1/users/1%20OR%201=1", "/v1/users/1;DROP%20TABLE%20users",
                 "/v1/users/-1", "/v1/users/99999999999999999999999"]:
        status, _, error = site.call("GET", path, token=site.admin_token)
        assert_error(status, error, 404)
    user, token = site.account("user")
    name = "x'); DROP TABLE api_keys; --"
    key = site.create_key(user["id"], token=token, name=name)
    listed = site.call("GET", f"/v1/users/{user['id']}/api-keys", token=token)[2]
    assert [k["name"] for k in listed["data"]] == [name]
    assert site.call("GET", "/v1/users/me", token=key["key"])[0] == 200
    assert len(site.call("GET", "/v1/users", token=site.admin_token)[2]["data"]) > 1


# -- sizes and slowness -------------------------------------------------------------------------

def test_oversized_headers_are_431(site):
    huge_auth = b"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer og_" + b"a" * 70000 + b"\r\n\r\n"
    (status, _, error), = answers(exchange(site.url, huge_auth))
    assert_error(status, error, 431)
    many = b"GET /v1/models HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150))
    (status, _, error), = answers(exchange(site.url, many + b"\r\n"))
    assert_error(status, error, 431)


def test_oversized_bodies_are_413_with_or_without_credentials(site):
    big = {"model": "x", "messages": [{"role": "user", "content": "a" * 200_000}]}
    for token in (None, site.admin_token):
        status, _, error = site.call("POST", CHAT, big, token=token)
        assert_error(status, error, 413, "request_too_large")
    reply = exchange(site.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                               b"Content-Length: 99999999999999999999\r\n\r\n")
    (status, _, error), = answers(reply)
    assert_error(status, error, 413)


def _until_closed(sock: socket.socket, trickle: bytes, seconds: float) -> tuple[float, bytes]:
    """Send `trickle` a byte at a time, until the server answers or hangs up; (how long that
    took, what it said)."""
    started = time.monotonic()
    for byte in trickle:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable or time.monotonic() - started > seconds:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
    sock.settimeout(seconds)
    try:
        answer = sock.makefile("rb").read()
    except OSError:
        answer = b""
    return time.monotonic() - started, answer


def test_a_slow_loris_client_is_cut_off_while_others_are_served(site, bystander):
    result = {}
    with connect(site.url) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        slow = threading.Thread(target=lambda: result.update(
            closed=_until_closed(sock, b"X-Slow: " + b"a" * 1000, 30)))
        slow.start()
        status, _, _ = site.call("POST", CHAT, chat_body("Hi", max_tokens=2), token=bystander)
        assert status == 200
        slow.join()
    seconds, answer = result["closed"]
    assert DEADLINE - 0.5 < seconds < DEADLINE + 3 and answer == b""


def test_a_slow_body_is_408(site):
    with connect(site.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 500\r\n\r\n{")
        seconds, answer = _until_closed(sock, b" " * 400, 30)
    assert DEADLINE - 0.5 < seconds < DEADLINE + 3
    (status, _, error), = answers(answer)
    assert_error(status, error, 408, "request_timeout")


def test_an_idle_connection_is_closed(site):
    with connect(site.url, timeout=30) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
    assert DEADLINE - 0.5 < time.monotonic() - started < DEADLINE + 3


def test_connections_past_the_cap_get_503_and_then_room_again(site):
    def probe() -> tuple[int, dict, object]:
        (answer,) = answers(exchange(site.url, b"GET /health HTTP/1.1\r\n\r\n"))
        return answer

    idle = [connect(site.url) for _ in range(8)]
    try:  # once the server has accepted them all
        status, _, error = wait_until(lambda: (found := probe())[0] == 503 and found)
        assert_error(status, error, 503, "too_many_connections")
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: get(site.url + "/health")[0] == 200)


# -- credentials --------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=", "Bearer", "Bearer ", "Token og_abcdefghijklmnopqrstu",
    "og_abcdefghijklmnopqrstuvwxyz", "Bearer not-needed", "Bearer garbage garbage",
    "Bearer sk-proj-Xq3v9Zk2LmN8pQr5StUvWxYz0123456789abcdefABCDEF",
    "Bearer sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "Bearer hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123", "Bearer og_" + "A" * 43,
    "Bearer ogt_" + "B" * 43, "Bearer og_" + "é" * 30, "Bearer " + "og_" + "a" * 600,
])
def test_malformed_and_foreign_credentials_are_401(site, authorization):
    # Even where an anonymous caller would be let in: wrong credentials are not ignored.
    for path in ("/v1/models", "/v1/users/me"):
        status, headers, error = site.call("GET", path, headers={"Authorization": authorization})
        assert_error(status, error, 401, "invalid_api_key")
        assert headers["WWW-Authenticate"] == 'Bearer realm="offgrid"'


def test_two_authorization_headers_are_401(site):
    reply = exchange(site.url, b"GET /v1/users/me HTTP/1.1\r\nHost: localhost\r\n"
                               b"Connection: close\r\nAuthorization: Bearer "
                               + site.admin_token.encode() + b"\r\n"
                               b"Authorization: Bearer og_" + b"x" * 43 + b"\r\n\r\n")
    (status, _, error), = answers(reply)
    assert_error(status, error, 401, "invalid_api_key")


def test_credentials_never_reach_the_log(site):
    assert "Bearer" not in site.server.log() and site.admin_token not in site.server.log()


# -- roles --------------------------------------------------------------------------------------

def test_a_user_cannot_raise_their_own_role_or_make_users(site):
    user, token = site.account("user")
    status, _, error = site.call("PUT", f"/v1/users/{user['id']}/role", {"role": "admin"},
                                 token=token)
    assert_error(status, error, 403, "permission_denied")
    status, _, error = site.call("POST", "/v1/users", {
        "username": "sneaky", "password": "sneaky-password", "role": "admin"}, token=token)
    assert_error(status, error, 403, "permission_denied")
    assert site.call("GET", "/v1/users/me", token=token)[2]["role"] == "user"


def test_a_user_cannot_read_or_touch_another_users_keys(site):
    victim, victim_token = site.account("user")
    key = site.create_key(victim["id"], token=victim_token)
    thief, token = site.account("user")
    for method, path, body in [
            ("GET", f"/v1/users/{victim['id']}/api-keys", None),
            ("POST", f"/v1/users/{victim['id']}/api-keys", {"name": "mine now"}),
            ("DELETE", f"/v1/users/{victim['id']}/api-keys/{key['id']}", None),
            ("GET", f"/v1/users/{victim['id']}", None),
            ("GET", f"/v1/users/0{thief['id']}/api-keys", None),
            ("GET", "/v1/users", None)]:
        status, _, error = site.call(method, path, body, token=token)
        assert_error(status, error, 403, "permission_denied")
    status, _, made = site.call("POST", f"/v1/users/{thief['id']}/api-keys",
                                {"name": "mine", "user_id": victim["id"]}, token=token)
    assert status == 200 and made["user_id"] == thief["id"], "a user_id in the body is ignored"
    assert site.call("GET", "/v1/users/me", token=key["key"])[0] == 200


def test_a_guest_may_not_make_keys_or_generate(site):
    guest, token = site.account("guest")
    status, _, error = site.call("POST", f"/v1/users/{guest['id']}/api-keys", {"name": "k"},
                                 token=token)
    assert_error(status, error, 403)
    status, _, error = site.call("POST", "/v1/embeddings",
                                 {"model": "all-MiniLM-L6-v2-q8_0", "input": "x"}, token=token)
    assert_error(status, error, 403)


# -- logins -------------------------------------------------------------------------------------

def _login_from(site, address: str, username: str, password: str) -> tuple[int, dict]:
    """(status, headers) of a login sent from `address`, one of loopback's 127.0.0.0/8."""
    connection = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=60,
                                            source_address=(address, 0))
    connection.request("POST", "/v1/auth/login", json.dumps(
        {"username": username, "password": password}), {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, dict(response.headers)


def test_failed_logins_are_throttled_per_user_and_per_address(guarded):
    alice = guarded.create_user()["username"]
    wrong = [_login_from(guarded, "127.0.0.2", alice, "guess")[0] for _ in range(LOGIN_ATTEMPTS)]
    assert wrong == [401] * LOGIN_ATTEMPTS
    for password in ("guess", password_of(alice)):  # paused: not even the right password
        status, headers = _login_from(guarded, "127.0.0.2", alice, password)
        assert status == 429 and headers["Retry-After"] == "1"  # the first pause: 1 s
    assert _login_from(guarded, "127.0.0.3", alice, password_of(alice))[0] == 200
    # The pause is short, for an owner who mistyped; then the next guess counts again.
    def guess_unless_paused() -> int | None:
        status = _login_from(guarded, "127.0.0.2", alice, "guess")[0]
        return None if status == 429 else status

    assert wait_until(guess_unless_paused, every=0.1) == 401
    # One address guessing many usernames: ADDRESS_ATTEMPTS (4) times the limit in all.
    for _ in range(4 * LOGIN_ATTEMPTS):
        assert _login_from(guarded, "127.0.0.4", unique("nobody"), "guess")[0] == 401
    status, headers = _login_from(guarded, "127.0.0.4", alice, password_of(alice))
    assert status == 429 and headers["Retry-After"] == "1"
    assert _login_from(guarded, "127.0.0.5", alice, password_of(alice))[0] == 200


def test_a_stranger_cannot_lock_the_admin_out(guarded):
    for _ in range(LOGIN_ATTEMPTS + 5):
        assert _login_from(guarded, "127.0.0.6", "admin", "guess")[0] in (401, 429)
    assert _login_from(guarded, "127.0.0.6", "admin", ADMIN_PASSWORD)[0] == 429
    assert _login_from(guarded, "127.0.0.7", "admin", ADMIN_PASSWORD)[0] == 200


def test_parallel_guesses_get_no_more_tries_than_the_limit(guarded):
    victim = guarded.create_user()["username"]
    start = threading.Barrier(30)
    statuses = []

    def guess():
        start.wait()
        statuses.append(_login_from(guarded, "127.0.0.8", victim, "guess")[0])

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= statuses.count(401) <= LOGIN_ATTEMPTS
    assert statuses.count(429) == 30 - statuses.count(401), statuses
    assert _login_from(guarded, "127.0.0.9", victim, password_of(victim))[0] == 200


# -- other names: DNS rebinding -----------------------------------------------------------------

def test_requests_for_names_this_server_does_not_go_by_are_refused(site, base_url):
    port = base_url.rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for headers in (rebound, {"Host": "evil.example"}):
        status, _, error = get(base_url + "/v1/models", headers=headers)
        assert_error(status, error, 403, "host_not_allowed")
        assert "OFFGRID_ALLOWED_HOSTS" in error["error"]["message"]
    status, _, error = post(base_url + "/v1/models/export",
                            {"model": EMBEDDING_MODEL, "path": "/srv/anywhere"}, headers=rebound)
    assert_error(status, error, 403, "host_not_allowed")
    assert not os.path.exists("/srv/anywhere")
    status, _, error = request("DELETE", base_url + "/v1/models/no-such-model", headers=rebound)
    assert_error(status, error, 403, "host_not_allowed")
    status, _, error = get(site.url + "/v1/models", headers={"Host": "other.lan"})
    assert_error(status, error, 403, "host_not_allowed")
    assert get(base_url + "/v1/models")[0] == 200


def test_local_names_ip_addresses_and_configured_names_are_served(site, base_url):
    port = base_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost",
                 f"ui.localhost:{port}", f"192.168.1.20:{port}", f"{socket.gethostname()}:{port}",
                 f"LOCALHOST:{port}"):
        status, headers, _ = get(base_url + "/v1/models",
                                 headers={"Host": host, "Origin": f"http://{host}"})
        assert status == 200 and "Access-Control-Allow-Origin" not in headers, host
    configured = f"{ALLOWED_HOST}:{site.server.port}"
    status, headers, _ = get(site.url + "/health",
                             headers={"Host": configured, "Origin": f"http://{configured}"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    http_1_0 = exchange(site.url, b"GET /health HTTP/1.0\r\n\r\n")  # no Host at all
    assert http_1_0.startswith(b"HTTP/1.1 200")


# -- folders on the server's machine ------------------------------------------------------------

def _export(site, path: str) -> tuple[int, dict]:
    status, _, answer = site.call("POST", "/v1/models/export",
                                  {"model": EMBEDDING_MODEL, "path": path},
                                  token=site.admin_token)
    return status, answer


def test_export_and_import_stay_inside_the_transfer_dirs(site, transfers):
    usb, elsewhere = transfers / "usb", transfers / "elsewhere"
    (usb / "link").symlink_to(elsewhere, target_is_directory=True)
    for path in (elsewhere, usb / ".." / "elsewhere", usb / "link" / "models", "/etc/offgrid"):
        status, error = _export(site, str(path))
        assert_error(status, error, 403, "path_not_allowed", "path")
    assert not elsewhere.exists() and not os.path.exists("/etc/offgrid")
    status, _, error = site.call("POST", "/v1/models/import", {"path": str(transfers)},
                                 token=site.admin_token)
    assert_error(status, error, 403, "path_not_allowed", "path")
    status, report = _export(site, str(usb / "models"))
    assert status == 200 and report["copied"] == [EMBEDDING_MODEL + ".gguf"], report
    assert (usb / "models" / "offgrid-manifest.json").is_file()
    status, _, report = site.call("POST", "/v1/models/import", {"path": str(usb / "models")},
                                  token=site.admin_token)
    assert status == 200 and report["skipped"] == [EMBEDDING_MODEL + ".gguf"], report


def test_a_folder_that_cannot_be_used_is_a_400_naming_it(site, transfers):
    usb = transfers / "usb"
    (usb / "notes.txt").write_text("a file where a folder should be")
    for path in (usb / "notes.txt", usb / "notes.txt" / "models"):
        status, error = _export(site, str(path))
        found = assert_error(status, error, 400, "folder_unusable", "path")
        assert str(path) in found["message"]
    assert (usb / "notes.txt").read_text() == "a file where a folder should be"
    status, error = _export(site, str(usb / "nul\u0000byte"))
    assert_error(status, error, 400, "invalid_value", "path")
    status, _, error = site.call("POST", "/v1/models/import", {"path": str(usb / "missing")},
                                 token=site.admin_token)
    assert_error(status, error, 400, "folder_unusable", "path")


# -- other origins ------------------------------------------------------------------------------

def test_web_pages_of_other_origins_are_refused_unless_allowed(site, base_url):
    for url in (site.url, base_url):  # the single-user server allows none
        status, headers, error = get(url + "/v1/models",
                                     headers={"Origin": "http://evil.example"})
        assert_error(status, error, 403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = get(site.url + "/v1/models", headers={"Origin": ALLOWED_ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "x-ratelimit-remaining-requests" in headers["Access-Control-Expose-Headers"]
    same = f"http://127.0.0.1:{site.server.port}"
    status, headers, _ = get(site.url + "/v1/models", headers={"Origin": same})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_preflight_requests_are_answered_for_allowed_origins(site):
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = request("OPTIONS", site.url + CHAT, headers=preflight)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, _, error = request("OPTIONS", site.url + CHAT,
                               headers={**preflight, "Origin": "http://evil.example"})
    assert_error(status, error, 403, "origin_not_allowed")
    status, headers, _ = request("OPTIONS", site.url + "/v1/users")
    assert status == 200 and headers["Allow"] == "GET, POST, OPTIONS"
    status, _, error = request("OPTIONS", site.url + "/v1/nowhere")
    assert_error(status, error, 404, "unknown_url")
    status, headers, error = request("GET", site.url + "/v1/users/me",
                                     headers={"Origin": ALLOWED_ORIGIN, **bearer("og_x")})
    assert_error(status, error, 401)
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN  # errors are readable

"""Users, roles, login tokens and API keys on a multi-user server, the `offgrid users` command,
and the database under them."""

import time

import pytest

import offgrid
from offgrid.client import OffGridError
from offgrid.config import Settings
from offgrid.store import copy, users
from offgrid.store.db import Database, open_database
from support.http import assert_error, chat_body, get
from support.models import CHAT_MODEL
from support.multiuser import (
    ADMIN_PASSWORD,
    multi_user_env,
    offgrid_users,
    password_of,
    start_multi_user,
    unique,
)

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def site(start_module_server):
    site = start_multi_user(start_module_server)
    yield site
    site.server.stop()


def test_login_gives_a_token_that_says_who_you_are(site):
    user, token = site.account("user")
    status, _, me = site.call("GET", "/v1/users/me", token=token)
    assert status == 200 and me == user
    assert token.startswith("ogt_")
    status, _, answer = site.call("POST", CHAT, chat_body("Hi", max_tokens=2), token=token)
    assert status == 200, answer


@pytest.mark.parametrize("username, password", [
    ("admin", "wrong-password"), ("nobody-here", "whatever-it-is"), ("ADMIN", "wrong-again")])
def test_a_wrong_username_or_password_is_401(site, username, password):
    status, headers, error = site.call("POST", "/v1/auth/login",
                                       {"username": username, "password": password})
    assert_error(status, error, 401, "invalid_credentials")
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_usernames_are_case_insensitive_at_login_and_creation(site):
    user = site.create_user()
    site.login(user["username"].upper(), password_of(user["username"]))
    status, _, error = site.call("POST", "/v1/users", {
        "username": user["username"].upper(), "password": "another-password"},
        token=site.admin_token)
    assert_error(status, error, 409, "username_taken")


@pytest.mark.parametrize("body, param", [
    ({"password": "long-enough"}, "username"),
    ({"username": "", "password": "long-enough"}, "username"),
    ({"username": "-dash-first", "password": "long-enough"}, "username"),
    ({"username": "x" * 65, "password": "long-enough"}, "username"),
    ({"username": "shorty"}, "password"),
    ({"username": "shorty", "password": "seven77"}, "password"),
    ({"username": "shorty", "password": "p" * 1025}, "password"),
    ({"username": "shorty", "password": "long-enough", "role": "root"}, "role"),
    ({"username": 7, "password": "long-enough"}, "username"),
])
def test_invalid_new_users_are_400_naming_the_field(site, body, param):
    status, _, error = site.call("POST", "/v1/users", body, token=site.admin_token)
    assert_error(status, error, 400, "invalid_value", param)


def test_login_tokens_expire(start_server):
    short = start_multi_user(start_server, env={"OFFGRID_TOKEN_LIFETIME": "2"})
    status, _, answer = short.call("POST", "/v1/auth/login",
                                   {"username": "admin", "password": ADMIN_PASSWORD})
    assert answer["expires_in"] == 2 and answer["expires_at"] <= time.time() + 2
    token = answer["access_token"]
    assert short.call("GET", "/v1/users/me", token=token)[0] == 200
    time.sleep(2.2)
    status, _, error = short.call("GET", "/v1/users/me", token=token)
    assert_error(status, error, 401, "token_expired")
    assert short.call("GET", "/v1/users/me", token=short.login("admin", ADMIN_PASSWORD))[0] == 200
    short.server.stop()


def test_logout_ends_the_token_and_only_that_token(site):
    user, token = site.account("user")
    other_token = site.login(user["username"], password_of(user["username"]))
    status, _, answer = site.call("POST", "/v1/auth/logout", token=token)
    assert status == 200 and answer == {"logged_out": True}
    status, _, error = site.call("GET", "/v1/users/me", token=token)
    assert_error(status, error, 401, "invalid_api_key")
    assert site.call("GET", "/v1/users/me", token=other_token)[0] == 200
    key = site.create_key(user["id"])
    status, _, error = site.call("POST", "/v1/auth/logout", token=key["key"])
    assert_error(status, error, 400, "not_a_login_token")


def test_an_api_key_is_shown_once_works_and_is_revoked_at_once(site):
    user, token = site.account("user")
    key = site.create_key(user["id"], token=token, name="laptop")
    assert key["key"].startswith("og_") and key["key"].startswith(key["prefix"])
    assert (key["name"], key["user_id"], key["revoked_at"], key["last_used_at"]) == (
        "laptop", user["id"], None, None)
    status, _, answer = site.call("POST", CHAT, chat_body("Hi", max_tokens=2), token=key["key"])
    assert status == 200, answer
    status, _, listed = site.call("GET", f"/v1/users/{user['id']}/api-keys", token=token)
    assert status == 200 and [k["id"] for k in listed["data"]] == [key["id"]]
    assert "key" not in listed["data"][0] and listed["data"][0]["last_used_at"] is not None
    status, _, revoked = site.call("DELETE", f"/v1/users/{user['id']}/api-keys/{key['id']}",
                                   token=token)
    assert status == 200 and revoked["revoked_at"] is not None
    status, _, error = site.call("GET", "/v1/models", token=key["key"])
    assert_error(status, error, 401, "invalid_api_key")


def test_the_python_library_sends_its_api_key(site):
    user, _ = site.account("user")
    client = offgrid.Client(site.url, api_key=site.create_key(user["id"])["key"])
    assert isinstance(client.chat("Hi", model=CHAT_MODEL, max_tokens=2), str)
    with pytest.raises(OffGridError) as refused:
        offgrid.Client(site.url).chat("Hi", model=CHAT_MODEL, max_tokens=2)
    assert (refused.value.status, refused.value.code) == (401, "authentication_required")


def test_a_key_is_revoked_only_through_its_own_user(site):
    owner, _ = site.account("user")
    someone, _ = site.account("user")
    key = site.create_key(owner["id"])
    status, _, error = site.call("DELETE", f"/v1/users/{someone['id']}/api-keys/{key['id']}",
                                 token=site.admin_token)
    assert_error(status, error, 404)
    assert site.call("GET", "/v1/users/me", token=key["key"])[0] == 200


def test_a_deleted_users_keys_and_tokens_stop_working(site):
    user, token = site.account("user")
    key = site.create_key(user["id"])
    status, _, answer = site.call("DELETE", f"/v1/users/{user['id']}", token=site.admin_token)
    assert status == 200 and answer["deleted"] is True
    for secret in (key["key"], token):
        status, _, error = site.call("GET", "/v1/users/me", token=secret)
        assert_error(status, error, 401, "invalid_api_key")
    status, _, error = site.call("GET", f"/v1/users/{user['id']}", token=site.admin_token)
    assert_error(status, error, 404, "user_not_found")


def test_a_new_role_applies_to_existing_credentials(site):
    user, token = site.account("user")
    completion = {"model": CHAT_MODEL, "prompt": "Hi", "max_tokens": 1}
    assert site.call("POST", "/v1/completions", completion, token=token)[0] == 200
    status, _, changed = site.call("PUT", f"/v1/users/{user['id']}/role", {"role": "guest"},
                                   token=site.admin_token)
    assert status == 200 and changed["role"] == "guest"
    status, _, error = site.call("POST", "/v1/completions", completion, token=token)
    assert_error(status, error, 403, "permission_denied")


def test_the_last_admin_can_be_neither_deleted_nor_demoted(site):
    status, _, error = site.call("DELETE", "/v1/users/1", token=site.admin_token)
    assert_error(status, error, 409, "last_admin")
    status, _, error = site.call("PUT", "/v1/users/1/role", {"role": "user"},
                                 token=site.admin_token)
    assert_error(status, error, 409, "last_admin")
    second, token = site.account("admin")
    assert site.call("PUT", "/v1/users/1/role", {"role": "user"}, token=token)[0] == 200
    assert site.call("PUT", "/v1/users/1/role", {"role": "admin"}, token=token)[0] == 200


def test_system_config_reports_the_mode(site, base_url, start_server):
    def mode(url):
        config = get(url + "/v1/system/config")[2]
        return (config["multi_user_mode"], config["require_auth"], config["guest_access"],
                config["features"]["users"])

    assert mode(base_url) == (False, False, True, False)  # single-user: open to anyone
    assert mode(site.url) == (True, False, False, True)
    strict = start_server("--model", CHAT_MODEL, env=multi_user_env(
        require_auth="true", guest_access="true"))
    assert mode(strict.url) == (True, True, True, True)
    strict.stop()


def test_admin_actions_are_audited_without_secrets(site):
    user, token = site.account("user")
    key = site.create_key(user["id"], token=token)
    site.call("DELETE", f"/v1/users/{user['id']}/api-keys/{key['id']}", token=token)
    site.call("PUT", f"/v1/users/{user['id']}/role", {"role": "guest"}, token=site.admin_token)
    # The server's database, whichever it is (pytest --store postgresql: its home's config).
    db = open_database(Settings.load(environ={"OFFGRID_HOME": str(site.server.home)}))
    rows = [tuple(row) for row in db.read("SELECT actor, action, target, detail FROM audit")]
    everything = "\n".join(str(tuple(row)) for table in copy.TABLES
                           for row in db.read(f"SELECT * FROM {table}"))
    db.close()
    name = user["username"]
    assert ("admin", "create_user", name, "role=user") in rows
    assert (name, "create_key", name, f"key {key['id']} (test key)") in rows
    assert (name, "revoke_key", name, f"key {key['id']} (test key)") in rows
    assert ("admin", "set_role", name, "user -> guest") in rows
    for secret in (key["key"], token, password_of(name), ADMIN_PASSWORD):
        assert secret not in everything
        assert secret not in site.server.log()


def test_the_users_command_creates_users_the_server_knows(site):
    name = unique("cli")
    result = offgrid_users(site.server.home, "create", name, "--role", "admin",
                           stdin="from-the-command-line\n")
    assert result.returncode == 0, result.stderr
    token = site.login(name, "from-the-command-line")
    assert site.call("GET", "/v1/users", token=token)[0] == 200
    listed = offgrid_users(site.server.home, "list").stdout
    assert f"{name}" in listed and "admin" in listed
    result = offgrid_users(site.server.home, "create", name, stdin="another-password\n")
    assert result.returncode == 1 and "taken" in result.stderr
    result = offgrid_users(site.server.home, "create", unique("cli"), stdin="short\n")
    assert result.returncode == 1 and "8 to 1024" in result.stderr


def test_admin_password_bootstraps_only_a_server_without_an_admin(start_server, tmp_path):
    home = tmp_path / "home"
    first = start_multi_user(start_server, env={"OFFGRID_HOME": str(home)})
    first.server.stop()
    second = start_multi_user(start_server, env={"OFFGRID_HOME": str(home),
                                                 "OFFGRID_ADMIN_PASSWORD": "a-new-password"})
    status, _, error = second.call("POST", "/v1/auth/login",
                                   {"username": "admin", "password": "a-new-password"})
    assert_error(status, error, 401, "invalid_credentials")
    assert "created the admin user" in first.server.log()
    assert "created the admin user" not in second.server.log()
    second.server.stop()


def test_a_too_short_admin_password_stops_the_server(start_server):
    server = start_server(env=multi_user_env(admin_password="short"), wait=False)
    assert server.process.wait(30) == 2
    assert "admin_password" in server.log() and "Traceback" not in server.log()


# -- the store under it -----------------------------------------------------------------------

def test_passwords_are_salted_slow_hashes(tmp_path):
    db = Database(tmp_path / "offgrid.db")
    for name in ("ann", "bob"):
        users.create(db, name, "the-same-password", "user")
    hashes = [row[0] for row in db.read("SELECT password_hash FROM users")]
    assert len(set(hashes)) == 2 and all(h.startswith("scrypt$16384$8$1$") for h in hashes)
    assert users.authenticate(db, "ann", "the-same-password").username == "ann"
    assert users.authenticate(db, "ann", "the-wrong-password") is None

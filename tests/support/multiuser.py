"""Helpers for tests of multi-user servers: start one with an admin, and act as its users."""

from __future__ import annotations

import itertools
import subprocess

from offgrid.config import LIMITS, ROLES
from support.cli import offgrid
from support.http import request
from support.models import CHAT_MODEL

ADMIN_PASSWORD = "admin-password"
NO_LIMITS = {f"OFFGRID_{role}_{limit}".upper(): "0" for role in ROLES for limit in LIMITS}
_names = itertools.count(1)


def multi_user_env(**settings: str) -> dict[str, str]:
    """The environment of a multi-user server whose admin is `admin` / ADMIN_PASSWORD."""
    return {"OFFGRID_MULTI_USER": "true", "OFFGRID_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **{f"OFFGRID_{name.upper()}": value for name, value in settings.items()}}


def start_multi_user(start_server, *args: str, env: dict | None = None) -> "MultiUser":
    server = start_server("--model", CHAT_MODEL, *args, env={**multi_user_env(), **(env or {})})
    return MultiUser(server)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class MultiUser:
    """A running multi-user server, and its admin's login token."""

    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.admin_token = self.login("admin", ADMIN_PASSWORD)

    def call(self, method: str, path: str, body=None, token: str | None = None,
             headers: dict | None = None):
        return request(method, self.url + path, body, headers={**bearer(token), **(headers or {})})

    def login(self, username: str, password: str) -> str:
        status, _, answer = self.call("POST", "/v1/auth/login",
                                      {"username": username, "password": password})
        assert status == 200, answer
        return answer["access_token"]

    def create_user(self, role: str = "user", username: str | None = None) -> dict:
        username = username or unique(role)
        status, _, user = self.call("POST", "/v1/users", {
            "username": username, "password": password_of(username), "role": role},
            token=self.admin_token)
        assert status == 200, user
        return user

    def account(self, role: str = "user") -> tuple[dict, str]:
        """A new user with `role`, and a login token of theirs."""
        user = self.create_user(role)
        return user, self.login(user["username"], password_of(user["username"]))

    def create_key(self, user_id: int, token: str | None = None, **fields) -> dict:
        status, _, key = self.call("POST", f"/v1/users/{user_id}/api-keys",
                                   {"name": "test key", **fields},
                                   token=token or self.admin_token)
        assert status == 200, key
        return key


def password_of(username: str) -> str:
    return f"{username}-password"


def offgrid_users(home, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`offgrid users …` on the database in `home`."""
    return offgrid("users", *args, home=home, stdin=stdin)

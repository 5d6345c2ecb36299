"""docs/multi-user.md's table of who gets what is the policy: a running server in each mode
answers each caller as the table says, for every endpoint in its group (tests/unit/test_policy.py
checks the table against policy.decide)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from offgrid.server import policy
from offgrid.server.app import ROUTES, Route
from offgrid.server.errors import ApiError
from offgrid.server.policy import CALLERS, Mode
from support.http import assert_error, chat_body, request
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.multiuser import (
    ADMIN_PASSWORD,
    NO_LIMITS,
    MultiUser,
    bearer,
    multi_user_env,
    password_of,
    unique,
)
from support.policy_table import documented_outcomes

# -- against running servers ------------------------------------------------------------------

@dataclass
class Call:
    path: str
    body: object = None
    token: object = "caller"  # "caller": the caller's own credentials
    allowed: int = 200  # the status that shows the caller got past the gate


@dataclass
class Accounts:
    """One account per role on the server under test (none in single-user mode)."""
    admin: MultiUser | None
    ids: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    logins: dict = field(default_factory=dict)  # role -> (username, password)

    @classmethod
    def on(cls, server, mode: Mode) -> "Accounts":
        if not mode.multi_user:  # credentials are ignored: send what SDK users are told to
            return cls(None, {role: 1 for role in CALLERS},
                       {role: role and "not-needed" for role in CALLERS})
        admin = MultiUser(server)
        accounts = cls(admin, {"admin": 1}, {None: None, "admin": admin.admin_token},
                       {"admin": ("admin", ADMIN_PASSWORD)})
        for role in ("guest", "user"):
            user, accounts.tokens[role] = admin.account(role)
            accounts.ids[role] = user["id"]
            accounts.logins[role] = (user["username"], password_of(user["username"]))
        accounts.ids[None] = accounts.ids["user"]
        return accounts

    def throwaway_user(self) -> int:
        return self.admin.create_user()["id"] if self.admin else 1

    def throwaway_key(self, user_id: int) -> int:
        return self.admin.create_key(user_id)["id"] if self.admin else 1

    def fresh_token(self, role: str | None):
        """A login token of the caller's own, for an endpoint that ends it."""
        if role not in self.logins:
            return self.tokens[role]
        return self.admin.login(*self.logins[role])


# What each endpoint is sent: (accounts, the caller's role, the {user_id} to use) -> Call.
# Where a real request would change too much (a download, say), a Call may send one the
# endpoint refuses, and name that status as `allowed`: refused by the endpoint, not the gate.
SAMPLES = {
    ("GET", "/"): lambda a, role, uid: Call("/"),
    ("GET", "/health"): lambda a, role, uid: Call("/health"),
    ("GET", "/ui/"): lambda a, role, uid: Call("/ui/"),
    ("GET", "/ui/{name}"): lambda a, role, uid: Call("/ui/app.js"),
    ("GET", "/openapi.json"): lambda a, role, uid: Call("/openapi.json"),
    ("GET", "/v1/system/config"): lambda a, role, uid: Call("/v1/system/config"),
    ("GET", "/v1/system/stats"): lambda a, role, uid: Call("/v1/system/stats"),
    ("GET", "/metrics"): lambda a, role, uid: Call("/metrics"),
    ("DELETE", "/v1/models/{model_id}"): lambda a, role, uid: Call(
        "/v1/models/no-such-model", allowed=404),
    ("POST", "/v1/models/download"): lambda a, role, uid: Call(
        "/v1/models/download", {"repository": "../x", "file_name": "x.gguf"}, allowed=400),
    ("GET", "/v1/models/download/progress"): lambda a, role, uid: Call(
        "/v1/models/download/progress"),
    ("POST", "/v1/models/download/cancel"): lambda a, role, uid: Call(
        "/v1/models/download/cancel", {"id": "dl-none"}, allowed=404),
    ("POST", "/v1/models/import"): lambda a, role, uid: Call(
        "/v1/models/import", {"path": "relative"}, allowed=400),
    ("POST", "/v1/models/export"): lambda a, role, uid: Call(
        "/v1/models/export", {"model": "no-such-model", "path": "/media/x"},  # a transfer dir
        allowed=404),
    ("GET", "/v1/search"): lambda a, role, uid: Call("/v1/search", allowed=400),
    ("GET", "/v1/models"): lambda a, role, uid: Call("/v1/models"),
    ("GET", "/v1/lora"): lambda a, role, uid: Call("/v1/lora"),
    ("GET", "/v1/models/{model_id}"): lambda a, role, uid: Call(f"/v1/models/{CHAT_MODEL}"),
    ("POST", "/v1/chat/completions"): lambda a, role, uid: Call(
        "/v1/chat/completions", chat_body("Hi", max_tokens=1)),
    ("POST", "/v1/responses"): lambda a, role, uid: Call(
        "/v1/responses", {"model": CHAT_MODEL, "input": "Hi", "max_output_tokens": 1}),
    ("GET", "/v1/responses/{response_id}"): lambda a, role, uid: Call(
        "/v1/responses/resp_none", allowed=404),
    ("DELETE", "/v1/responses/{response_id}"): lambda a, role, uid: Call(
        "/v1/responses/resp_none", allowed=404),
    ("POST", "/v1/messages"): lambda a, role, uid: Call(
        "/v1/messages", {"model": CHAT_MODEL, "max_tokens": 1,
                         "messages": [{"role": "user", "content": "Hi"}]}),
    ("POST", "/v1/messages/count_tokens"): lambda a, role, uid: Call(
        "/v1/messages/count_tokens", {"model": CHAT_MODEL,
                                      "messages": [{"role": "user", "content": "Hi"}]}),
    ("POST", "/v1/completions"): lambda a, role, uid: Call(
        "/v1/completions", {"model": CHAT_MODEL, "prompt": "Hi", "max_tokens": 1}),
    ("POST", "/v1/embeddings"): lambda a, role, uid: Call(
        "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "Hi"}),
    ("POST", "/v1/tokenize"): lambda a, role, uid: Call(
        "/v1/tokenize", {"model": CHAT_MODEL, "content": "Hi"}),
    ("POST", "/v1/detokenize"): lambda a, role, uid: Call(
        "/v1/detokenize", {"model": CHAT_MODEL, "tokens": [1]}),
    ("GET", "/v1/rag/status"): lambda a, role, uid: Call("/v1/rag/status"),
    ("GET", "/v1/documents"): lambda a, role, uid: Call("/v1/documents"),
    ("POST", "/v1/documents/ingest"): lambda a, role, uid: Call(
        "/v1/documents/ingest", {"name": "probe.txt", "content": unique("probe ")},
        allowed=201),
    ("GET", "/v1/documents/jobs/{job_id}"): lambda a, role, uid: Call(
        "/v1/documents/jobs/job-none", allowed=404),
    ("POST", "/v1/documents/search"): lambda a, role, uid: Call(
        "/v1/documents/search", {"query": "probe"}),
    ("POST", "/v1/documents/delete"): lambda a, role, uid: Call(
        "/v1/documents/delete", {"id": 999999}, allowed=404),
    ("GET", "/v1/documents/{document_id}"): lambda a, role, uid: Call(
        "/v1/documents/999999", allowed=404),
    ("PATCH", "/v1/documents/{document_id}"): lambda a, role, uid: Call(
        "/v1/documents/999999", {"shared": True}, allowed=404),
    ("DELETE", "/v1/documents/{document_id}"): lambda a, role, uid: Call(
        "/v1/documents/999999", allowed=404),
    ("GET", "/v1/documents/{document_id}/chunks/{position}"): lambda a, role, uid: Call(
        "/v1/documents/999999/chunks/0", allowed=404),
    ("POST", "/v1/rag/disable"): lambda a, role, uid: Call("/v1/rag/disable"),
    ("POST", "/v1/rag/enable"): lambda a, role, uid: Call(
        "/v1/rag/enable", {"embedding_model": EMBEDDING_MODEL}),
    ("POST", "/v1/agents/run"): lambda a, role, uid: Call(
        "/v1/agents/run", {"prompt": "Hi", "tools": ["no-such-tool"]}, allowed=404),
    ("GET", "/v1/agents/tools"): lambda a, role, uid: Call("/v1/agents/tools"),
    ("PATCH", "/v1/agents/tools"): lambda a, role, uid: Call(
        "/v1/agents/tools", {"name": "no-such-tool", "enabled": True}, allowed=404),
    ("POST", "/v1/agents/tools/call"): lambda a, role, uid: Call(
        "/v1/agents/tools/call", {"name": "calculator", "arguments": {"expression": "1 + 1"}}),
    ("GET", "/v1/agents/mcp"): lambda a, role, uid: Call("/v1/agents/mcp"),
    ("POST", "/v1/agents/mcp"): lambda a, role, uid: Call(
        "/v1/agents/mcp", {"name": "not a name", "command": "true"}, allowed=400),
    ("POST", "/v1/agents/mcp/test"): lambda a, role, uid: Call(
        "/v1/agents/mcp/test", {"name": "no-such-server"}, allowed=404),
    ("DELETE", "/v1/agents/mcp/{name}"): lambda a, role, uid: Call(
        "/v1/agents/mcp/no-such-server", allowed=404),
    ("GET", "/v1/sessions"): lambda a, role, uid: Call("/v1/sessions"),
    ("POST", "/v1/sessions"): lambda a, role, uid: Call(
        "/v1/sessions", {"name": unique("probe-")}, allowed=201),
    ("GET", "/v1/sessions/{name}"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session", allowed=404),
    ("PATCH", "/v1/sessions/{name}"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session", {"name": "other"}, allowed=404),
    ("DELETE", "/v1/sessions/{name}"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session", allowed=404),
    ("GET", "/v1/sessions/{name}/messages"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session/messages", allowed=404),
    ("POST", "/v1/sessions/{name}/generate"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session/generate", {"content": "Hi"}, allowed=404),
    ("GET", "/v1/sessions/{name}/export"): lambda a, role, uid: Call(
        "/v1/sessions/no-such-session/export", allowed=404),
    ("POST", "/v1/auth/login"): lambda a, role, uid: Call(
        "/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}),
    ("POST", "/v1/auth/logout"): lambda a, role, uid: Call("/v1/auth/logout",
                                                           token=a.fresh_token(role)),
    ("GET", "/v1/users/me"): lambda a, role, uid: Call("/v1/users/me"),
    ("GET", "/v1/users"): lambda a, role, uid: Call("/v1/users"),
    ("POST", "/v1/users"): lambda a, role, uid: Call("/v1/users", {
        "username": unique("made"), "password": "made-password"}),
    ("GET", "/v1/users/{user_id}"): lambda a, role, uid: Call(f"/v1/users/{uid}"),
    ("DELETE", "/v1/users/{user_id}"): lambda a, role, uid: Call(
        f"/v1/users/{a.throwaway_user()}"),
    ("PUT", "/v1/users/{user_id}/role"): lambda a, role, uid: Call(
        f"/v1/users/{a.throwaway_user()}/role", {"role": "guest"}),
    ("GET", "/v1/users/{user_id}/api-keys"): lambda a, role, uid: Call(
        f"/v1/users/{uid}/api-keys"),
    ("POST", "/v1/users/{user_id}/api-keys"): lambda a, role, uid: Call(
        f"/v1/users/{uid}/api-keys", {"name": "sample"}),
    ("DELETE", "/v1/users/{user_id}/api-keys/{key_id}"): lambda a, role, uid: Call(
        f"/v1/users/{uid}/api-keys/{a.throwaway_key(uid)}"),
    ("GET", "/api/version"): lambda a, role, uid: Call("/api/version"),
    ("GET", "/api/tags"): lambda a, role, uid: Call("/api/tags"),
    ("POST", "/api/show"): lambda a, role, uid: Call("/api/show", {"model": CHAT_MODEL}),
    ("GET", "/api/ps"): lambda a, role, uid: Call("/api/ps"),
    ("POST", "/api/chat"): lambda a, role, uid: Call("/api/chat", {
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False,
        "options": {"num_predict": 1}}),
    ("POST", "/api/generate"): lambda a, role, uid: Call("/api/generate", {
        "model": CHAT_MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}),
    ("POST", "/api/embed"): lambda a, role, uid: Call(
        "/api/embed", {"model": EMBEDDING_MODEL, "input": "Hi"}),
    ("POST", "/api/embeddings"): lambda a, role, uid: Call(
        "/api/embeddings", {"model": EMBEDDING_MODEL, "prompt": "Hi"}),
    ("POST", "/api/pull"): lambda a, role, uid: Call(
        "/api/pull", {"model": "../x", "stream": False}, allowed=400),
    ("DELETE", "/api/delete"): lambda a, role, uid: Call(
        "/api/delete", {"model": "no-such-model"}, allowed=404),
    ("POST", "/api/copy"): lambda a, role, uid: Call(
        "/api/copy", {"source": "no-such-model", "destination": "x"}, allowed=404),
}

MODES = {"single-user": Mode(), "guests": Mode(True, False, True),
         "no-guests": Mode(True, False, False), "auth-and-guests": Mode(True, True, True),
         "auth-only": Mode(True, True, False)}


def test_every_endpoint_has_a_sample():
    assert set(SAMPLES) == {(method, path) for method, path, *_ in ROUTES}


@pytest.mark.parametrize("name", MODES)
def test_a_server_in_each_mode_answers_as_the_table_says(start_server, name):
    mode = MODES[name]
    env = {**NO_LIMITS, "OFFGRID_REQUIRE_AUTH": str(mode.require_auth).lower(),
           "OFFGRID_GUEST_ACCESS": str(mode.guest_access).lower()}
    if mode.multi_user:
        env.update(multi_user_env())
    server = start_server("--model", CHAT_MODEL, env=env)
    accounts = Accounts.on(server, mode)
    table = documented_outcomes()
    wrong = []
    for route in (Route(*route) for route in ROUTES):
        for role in CALLERS:
            outcome = table[mode, route.group][role]
            own_id = accounts.ids[role]
            checks = [(own_id, outcome)]
            if outcome == policy.OWN_ONLY:
                checks = [(own_id, policy.YES), (accounts.ids["admin"], policy.FORBIDDEN)]
            for user_id, expected in checks:
                call = SAMPLES[route.method, route.path](accounts, role, user_id)
                token = accounts.tokens[role] if call.token == "caller" else call.token
                status, _, body = request(route.method, server.url + call.path, call.body,
                                          headers=bearer(token))
                if not _as_documented(status, body, expected, call.allowed, route):
                    wrong.append(f"{route.method} {call.path} as {role}: {status} "
                                 f"{str(body)[:150]}, documented {expected}")
    server.stop()
    assert not wrong, "\n".join(wrong)


def _as_documented(status: int, body, expected: str, allowed: int, route: Route) -> bool:
    if expected == policy.YES:
        return status == allowed
    if route.error_shape is not None:  # a wire format with an error shape of its own
        return status == int(expected) and set(body) == set(route.error_shape(ApiError("?")))
    assert_error(status, body, int(expected))
    return expected != policy.NOT_FOUND or body["error"]["code"] == "multi_user_disabled"

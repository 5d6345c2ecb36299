"""Users and their API keys: /v1/users…, for admins and (their own records) for users."""

from __future__ import annotations

from ...store import audit, credentials, usage, users
from ...store.credentials import ApiKey
from ...store.users import User
from ..errors import NotFound
from ..http import Request, Response


def list_users(app, request: Request) -> Response:
    return Response({"object": "list", "data": [user_json(app, user)
                                                for user in users.everyone(app.db)]})


def create_user(app, request: Request) -> Response:
    body = request.json()
    user = users.create(app.db, body.get("username"), body.get("password"),
                        body.get("role", "user"))
    audit.record(app.db, request.caller.actor, "create_user", user.username, f"role={user.role}")
    return Response(user_json(app, user))


def get_user(app, request: Request, user_id: str) -> Response:
    return Response(user_json(app, _user(app, user_id)))


def delete_user(app, request: Request, user_id: str) -> Response:
    user = users.delete(app.db, _number(user_id, "user"))
    audit.record(app.db, request.caller.actor, "delete_user", user.username)
    return Response({"id": user.id, "object": "user", "deleted": True})


def set_role(app, request: Request, user_id: str) -> Response:
    role = request.json().get("role")
    before = _user(app, user_id)
    user = users.set_role(app.db, before.id, role)
    audit.record(app.db, request.caller.actor, "set_role", user.username,
                 f"{before.role} -> {user.role}")
    return Response(user_json(app, user))


def list_keys(app, request: Request, user_id: str) -> Response:
    user = _user(app, user_id)
    return Response({"object": "list",
                     "data": [key_json(key) for key in credentials.keys_of(app.db, user.id)]})


def create_key(app, request: Request, user_id: str) -> Response:
    body = request.json()
    user = _user(app, user_id)
    key, secret = credentials.create_key(
        app.db, user.id, body.get("name", "API key"),
        requests_per_minute=body.get("requests_per_minute"),
        tokens_per_day=body.get("tokens_per_day"))
    audit.record(app.db, request.caller.actor, "create_key", user.username,
                 f"key {key.id} ({key.name})")
    return Response({**key_json(key), "key": secret})


def revoke_key(app, request: Request, user_id: str, key_id: str) -> Response:
    user = _user(app, user_id)
    key = credentials.revoke_key(app.db, user.id, _number(key_id, "API key"))
    audit.record(app.db, request.caller.actor, "revoke_key", user.username,
                 f"key {key.id} ({key.name})")
    return Response(key_json(key))


def user_json(app, user: User) -> dict:
    return {"id": user.id, "object": "user", "username": user.username, "role": user.role,
            "created_at": int(user.created_at), "quota": app.gate.quota_of(user),
            "tokens_used_today": usage.tokens_today(app.db, f"user:{user.id}")}


def key_json(key: ApiKey) -> dict:
    return {"id": key.id, "object": "api_key", "user_id": key.user_id, "name": key.name,
            "prefix": key.prefix, "created_at": int(key.created_at),
            "last_used_at": _seconds(key.last_used_at), "revoked_at": _seconds(key.revoked_at),
            "requests_per_minute": key.requests_per_minute,
            "tokens_per_day": key.tokens_per_day}


def _user(app, user_id: str) -> User:
    user = users.get(app.db, _number(user_id, "user"))
    if user is None:
        raise NotFound(f"No user with id {user_id}", code="user_not_found")
    return user


def _number(value: str, what: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound(f"No {what} with id {value}")
    return int(value)


def _seconds(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp)

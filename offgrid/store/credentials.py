"""What a caller presents as `Authorization: Bearer …`: API keys (`og_…`, made by the user, kept
until revoked) and login tokens (`ogt_…`, from logging in, valid until they expire or the user
logs out). Only their hashes are stored; the secret is shown once, when it is made."""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import secrets, users
from .db import Database, Row
from .errors import Expired, InvalidValue, Missing

MAX_KEY_NAME_CHARS = 100
LAST_USED_RESOLUTION = 60.0  # seconds; last_used_at is written at most this often per key


@dataclass(frozen=True)
class ApiKey:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    requests_per_minute: int | None  # None: only the user's limits apply
    tokens_per_day: int | None


@dataclass(frozen=True)
class Identity:
    """Who a bearer secret belongs to, and which key or login token it is."""
    user: users.User
    key: ApiKey | None = None
    token_id: int | None = None


_KEY_COLUMNS = ("id, user_id, name, prefix, created_at, last_used_at, revoked_at, "
                "requests_per_minute, tokens_per_day")


def _key(row: Row) -> ApiKey:
    return ApiKey(**{name: row[name] for name in ApiKey.__dataclass_fields__})


def create_key(db: Database, user_id: int, name: str, requests_per_minute: int | None = None,
               tokens_per_day: int | None = None) -> tuple[ApiKey, str]:
    """The new key, and its secret: the only time the secret exists outside the caller."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_KEY_NAME_CHARS:
        raise InvalidValue("name", f"A key's name is 1 to {MAX_KEY_NAME_CHARS} characters")
    for field, limit in (("requests_per_minute", requests_per_minute),
                         ("tokens_per_day", tokens_per_day)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise InvalidValue(field, f"{field} must be a whole number, 0 for no limit")
    secret = secrets.new_secret(secrets.API_KEY_PREFIX)
    with db.write() as connection:
        if connection.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
            raise Missing(f"No user with id {user_id}")
        key_id = connection.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at, "
            "requests_per_minute, tokens_per_day) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (user_id, name, secrets.lookup_prefix(secret), secrets.secret_hash(secret),
             time.time(), requests_per_minute, tokens_per_day)).fetchone()[0]
    return _key(db.read_one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?",
                            (key_id,))), secret


def keys_of(db: Database, user_id: int) -> list[ApiKey]:
    return [_key(row) for row in db.read(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id", (user_id,))]


def revoke_key(db: Database, user_id: int, key_id: int) -> ApiKey:
    with db.write() as connection:
        found = connection.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) "
                                   "WHERE id = ? AND user_id = ?", (time.time(), key_id, user_id))
        if found.rowcount == 0:
            raise Missing(f"User {user_id} has no key with id {key_id}")
    return _key(db.read_one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)))


def create_token(db: Database, user_id: int, lifetime: float) -> tuple[str, float]:
    """A login token for the user, and when it expires; expired tokens are cleared out."""
    secret = secrets.new_secret(secrets.LOGIN_TOKEN_PREFIX)
    now = time.time()
    with db.write() as connection:
        connection.execute("DELETE FROM login_tokens WHERE expires_at <= ?", (now,))
        connection.execute(
            "INSERT INTO login_tokens (user_id, prefix, token_hash, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)", (user_id, secrets.lookup_prefix(secret),
                                       secrets.secret_hash(secret), now, now + lifetime))
    return secret, now + lifetime


def revoke_token(db: Database, token_id: int) -> None:
    with db.write() as connection:
        connection.execute("DELETE FROM login_tokens WHERE id = ?", (token_id,))


def identify(db: Database, secret: str) -> Identity | None:
    """Whose key or login token this is; None if it is neither (or revoked, or its user is
    deleted); Expired for a login token past its time."""
    prefix = secrets.lookup_prefix(secret)
    if secret.startswith(secrets.LOGIN_TOKEN_PREFIX):
        for row in db.read("SELECT id, user_id, token_hash, expires_at FROM login_tokens "
                           "WHERE prefix = ?", (prefix,)):
            if secrets.secret_matches(secret, row["token_hash"]):
                if row["expires_at"] <= time.time():
                    raise Expired("This login token has expired; log in again")
                return _identity(db, row["user_id"], token_id=row["id"])
        return None
    for row in db.read(f"SELECT {_KEY_COLUMNS}, key_hash FROM api_keys "
                       "WHERE prefix = ? AND revoked_at IS NULL", (prefix,)):
        if secrets.secret_matches(secret, row["key_hash"]):
            key = _key(row)
            _note_use(db, key)
            return _identity(db, key.user_id, key=key)
    return None


def _identity(db: Database, user_id: int, **credential) -> Identity | None:
    user = users.get(db, user_id)
    return Identity(user, **credential) if user else None


def _note_use(db: Database, key: ApiKey) -> None:
    now = time.time()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        with db.write() as connection:
            connection.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key.id))

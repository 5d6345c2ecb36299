"""Users: names, roles, passwords and per-user quota overrides."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..config import LIMITS, ROLES
from . import secrets
from .db import Connection, Database, Row
from .errors import Conflict, InvalidValue, Missing

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
DEFAULT = object()  # set_quota: put a limit back to the role's default


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    created_at: float
    requests_per_minute: int | None  # None: the role's default
    tokens_per_day: int | None


_COLUMNS = "id, username, role, created_at, requests_per_minute, tokens_per_day"


def _user(row: Row | None) -> User | None:
    return User(**dict(row)) if row is not None else None


def create(db: Database, username: str, password: str, role: str) -> User:
    check_username(username)
    check_role(role)
    check_password(password)
    password_hash = secrets.hash_password(password)  # slow: outside the write lock
    with db.write() as connection:
        if connection.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise Conflict(f"The username {username!r} is taken", "username_taken")
        user_id = connection.execute(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?) "
            "RETURNING id", (username, role, password_hash, time.time())).fetchone()[0]
    return get(db, user_id)


def check_username(username) -> None:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise InvalidValue("username", "A username is 1 to 64 letters, digits, '_', '.' or '-', "
                                       "starting with a letter or digit")


def check_role(role) -> None:
    if role not in ROLES:
        raise InvalidValue("role", "The role must be one of " + ", ".join(ROLES))


def check_password(password) -> None:
    if not isinstance(password, str) or not (
            MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS):
        raise InvalidValue("password", f"A password is {MIN_PASSWORD_CHARS} to "
                                       f"{MAX_PASSWORD_CHARS} characters")


def get(db: Database, user_id: int) -> User | None:
    return _user(db.read_one(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,)))


def find(db: Database, username: str) -> User | None:
    return _user(db.read_one(f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)))


def everyone(db: Database) -> list[User]:
    return [_user(row) for row in db.read(f"SELECT {_COLUMNS} FROM users ORDER BY id")]


def has_admin(db: Database) -> bool:
    return db.read_one("SELECT 1 FROM users WHERE role = 'admin'") is not None


def authenticate(db: Database, username, password) -> User | None:
    """The user, if the password is theirs; the KDF runs either way."""
    row = None
    if isinstance(username, str) and USERNAME.fullmatch(username):
        row = db.read_one("SELECT id, password_hash FROM users WHERE username = ?", (username,))
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return None
    stored = row["password_hash"] if row else secrets.UNKNOWN_USER_HASH
    matches = secrets.verify_password(password, stored)
    return get(db, row["id"]) if row and matches else None


def delete(db: Database, user_id: int) -> User:
    """Delete a user with their keys and tokens; never the last admin."""
    with db.write() as connection:
        user = _existing(connection, user_id)
        _keep_an_admin(connection, user, "delete")
        connection.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return user


def set_role(db: Database, user_id: int, role: str) -> User:
    check_role(role)
    with db.write() as connection:
        user = _existing(connection, user_id)
        if role != "admin":
            _keep_an_admin(connection, user, "demote")
        connection.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    return get(db, user_id)


def set_quota(db: Database, user_id: int, **limits) -> User:
    """Set `requests_per_minute` and/or `tokens_per_day` (0: no limit; DEFAULT: the role's)."""
    with db.write() as connection:
        _existing(connection, user_id)
        for name, value in limits.items():
            if name not in LIMITS:
                raise InvalidValue(name, f"Unknown limit {name!r}")
            if value is not DEFAULT and (not isinstance(value, int) or value < 0):
                raise InvalidValue(name, f"{name} must be a whole number, 0 for no limit")
            # The column name comes from LIMITS, never from the caller.
            connection.execute(f"UPDATE users SET {name} = ? WHERE id = ?",
                               (None if value is DEFAULT else value, user_id))
    return get(db, user_id)


def _existing(connection: Connection, user_id: int) -> User:
    row = connection.execute(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise Missing(f"No user with id {user_id}")
    return _user(row)


def _keep_an_admin(connection: Connection, user: User, verb: str) -> None:
    if user.role == "admin" and connection.execute(
            "SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0] == 1:
        raise Conflict(f"Cannot {verb} {user.username}: they are the only admin", "last_admin")


def ensure_admin(db: Database, password: str) -> User | None:
    """Create the user `admin` with this password if there is no admin yet; the new user.
    Servers starting at once on one database may all find none: the first creates it and the
    others find the name taken, which leaves them nothing to do (as does a user `admin` who is
    not an admin: the server then warns that there is none)."""
    if has_admin(db):
        return None
    try:
        return create(db, "admin", password, "admin")
    except Conflict:
        return None

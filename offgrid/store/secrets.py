"""Passwords and bearer secrets: how they are made, stored and checked.

Passwords are stored as salted scrypt hashes. API keys and login tokens are random strings
stored as SHA-256 (they carry 256 bits of randomness, so a fast hash is enough); a short prefix
of each is kept in clear to find its row. Every comparison is hmac.compare_digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "og_"
LOGIN_TOKEN_PREFIX = "ogt_"
LOOKUP_CHARS = 9  # random characters after the prefix that are stored in clear
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
SALT_BYTES = 16


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, expected = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                            p=int(p))
    return hmac.compare_digest(digest.hex(), expected)


# Checked against when the username is unknown, so that a wrong name takes as long as a wrong
# password and logins cannot be used to find which names exist.
UNKNOWN_USER_HASH = hash_password(secrets.token_urlsafe())


def new_secret(kind_prefix: str) -> str:
    return kind_prefix + secrets.token_urlsafe(32)


def lookup_prefix(secret: str) -> str:
    kind_prefix = LOGIN_TOKEN_PREFIX if secret.startswith(LOGIN_TOKEN_PREFIX) else API_KEY_PREFIX
    return secret[:len(kind_prefix) + LOOKUP_CHARS]


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)

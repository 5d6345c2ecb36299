"""The gate every request passes before its handler: who is calling (from `Authorization:
Bearer`, or `x-api-key` as Anthropic's clients send the key), whether their role may use the
route's group (policy.decide), and whether their rate limits and quotas allow it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import Settings
from ..kb.knowledge_base import Reader
from ..store import credentials
from ..store.credentials import Identity
from ..store.db import Database
from ..store.errors import Expired
from . import policy
from .errors import Forbidden, NotFound, Unauthorized
from .http import Request
from .limits import Limits, LoginThrottle, Meter, Subject
from .policy import Group, Mode

BEARER = re.compile(r"Bearer +(\S{1,512})", re.IGNORECASE)
SECRET = re.compile(r"ogt?_[A-Za-z0-9_-]{20,200}")
# the routes that spend tokens
TOKEN_GROUPS = {Group.CHAT, Group.GENERATE, Group.DOCUMENTS, Group.AGENTS, Group.SESSIONS}


@dataclass(frozen=True)
class Caller:
    identity: Identity | None  # None: no credentials (or single-user mode)
    address: str
    subjects: tuple[Subject, ...] = ()  # what the caller's requests and tokens count against

    @property
    def user(self):
        return self.identity.user if self.identity else None

    @property
    def actor(self) -> str:
        """How the audit trail names the caller."""
        return self.user.username if self.user else f"anonymous@{self.address}"


def _secret(request: Request) -> str | None:
    """The key or token the caller sent: `Authorization: Bearer …`, else `x-api-key: …`."""
    values = request.headers.get_all("Authorization") or []
    if not values:
        keys = request.headers.get_all("x-api-key") or []
        if len(keys) > 1:
            raise Unauthorized("Send one header 'x-api-key'", code="invalid_api_key")
        return keys[0].strip() if keys else None
    bearer = BEARER.fullmatch(values[0].strip()) if len(values) == 1 else None
    if bearer is None:
        raise Unauthorized("Send one header 'Authorization: Bearer' followed by an OffGrid "
                           "API key (og_…) or login token", code="invalid_api_key")
    return bearer.group(1)


class Gate:
    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.mode = Mode.of(settings)
        self.db = db
        self.limits = Limits(db)
        self.logins = LoginThrottle(settings.login_attempts, db=db if db.shared else None)

    def admit(self, request: Request, group: Group, path_params: dict) -> dict[str, str]:
        """Set `request.caller`, or refuse the request; the rate-limit headers for the answer."""
        checked = self.mode.multi_user and group not in (Group.PUBLIC, Group.LOGIN)
        identity = self._identify(request) if checked else None
        self._authorize(identity, group, path_params)
        subjects = self._subjects(identity, request.address) if checked else ()
        request.caller = Caller(identity, request.address, subjects)
        headers = self.limits.admit(list(subjects), group in TOKEN_GROUPS) if checked else {}
        request.meter = Meter(self.limits, subjects)
        return headers

    def _identify(self, request: Request) -> Identity | None:
        secret = _secret(request)
        if secret is None:
            return None
        if not SECRET.fullmatch(secret):
            raise Unauthorized("That is not an OffGrid API key or login token",
                               code="invalid_api_key")
        try:
            identity = credentials.identify(self.db, secret)
        except Expired as error:
            raise Unauthorized(str(error), code="token_expired") from None
        if identity is None:
            raise Unauthorized("Unknown or revoked API key or login token",
                               code="invalid_api_key")
        return identity

    def _authorize(self, identity: Identity | None, group: Group, path_params: dict) -> None:
        role = identity.user.role if identity else None
        outcome = policy.decide(self.mode, group, role)
        if outcome == policy.NOT_FOUND:
            raise NotFound("Multi-user mode is off on this server; start it with "
                           "OFFGRID_MULTI_USER=true", code="multi_user_disabled")
        if outcome == policy.UNAUTHORIZED:
            raise Unauthorized("This needs an API key or login token: send 'Authorization: "
                               "Bearer og_…' (POST /v1/auth/login gives a token)")
        if outcome == policy.FORBIDDEN:
            if group in policy.GUESTS_GROUPS and role == "guest" and not self.mode.guest_access:
                raise Forbidden("Guest access is off on this server", code="guest_access_off")
            raise Forbidden(f"A {role} may not use this endpoint")
        if outcome == policy.OWN_ONLY and path_params.get("user_id") != str(identity.user.id):
            raise Forbidden("You can only see and change your own account and API keys")

    def reader(self, caller: Caller | None) -> Reader:
        """The caller, as the knowledge base tells callers apart."""
        if not self.mode.multi_user:
            return Reader(single_user=True)
        user = caller.user if caller is not None else None
        return Reader(user.id, user.role) if user else Reader()

    def quota_of(self, user) -> dict[str, int]:
        """A user's limits: their own where set, else their role's (0: no limit)."""
        return {name: default if getattr(user, name) is None else getattr(user, name)
                for name, default in self.settings.quota(user.role).items()}

    def _subjects(self, identity: Identity | None, address: str) -> tuple[Subject, ...]:
        if identity is None:  # an anonymous guest: the guest role's limits, per address
            return (Subject(f"address:{address}", **self.settings.quota("guest")),)
        user, key = identity.user, identity.key
        subjects = [Subject(f"user:{user.id}", **self.quota_of(user))]
        if key is not None and (key.requests_per_minute or key.tokens_per_day):
            subjects.append(Subject(f"key:{key.id}", key.requests_per_minute or 0,
                                    key.tokens_per_day or 0))
        return tuple(subjects)

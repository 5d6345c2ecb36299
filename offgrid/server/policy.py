"""Who may call what. Each route in the route table names the group it belongs to; `decide` is
the whole policy for every mode and caller. docs/multi-user.md shows it as a table, and a test
checks every cell of that table against this function and against a running server."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..config import Settings


class Group(str, Enum):
    PUBLIC = "public"  # identity, health, OpenAPI, mode: anyone, always
    LOGIN = "login"  # logging in
    MODELS = "models"  # reading the model list and statistics
    CHAT = "chat"
    KNOWLEDGE = "knowledge"  # reading and searching documents: each caller sees what they may
    GENERATE = "generate"  # completions, embeddings, tokenizer
    DOCUMENTS = "documents"  # adding and removing documents of one's own
    AGENTS = "agents"  # running agents with the tools that are on
    SESSIONS = "sessions"  # chat sessions kept on the server, each its owner's
    TOOLS = "tools"  # the agents' tools and MCP servers: turning them on, adding, testing
    ACCOUNT = "account"  # the caller's own account: who am I, log out
    OWN = "own"  # a user's record and API keys: their own, or anyone's for an admin
    USERS = "users"  # managing users and roles
    ADMIN = "admin"  # managing the server: models, agent tools, MCP servers


# Outcomes, as the table in docs/multi-user.md spells them.
YES, OWN_ONLY, UNAUTHORIZED, FORBIDDEN, NOT_FOUND = "yes", "own", "401", "403", "404"
CALLERS = (None, "guest", "user", "admin")  # None: anonymous, no credentials
RANK = {None: 0, "guest": 1, "user": 2, "admin": 3}
LEAST_ROLE = {Group.MODELS: "guest", Group.CHAT: "guest", Group.KNOWLEDGE: "guest",
              Group.GENERATE: "user", Group.DOCUMENTS: "user", Group.AGENTS: "user",
              Group.SESSIONS: "user",
              Group.ACCOUNT: "guest", Group.OWN: "user", Group.USERS: "admin",
              Group.TOOLS: "admin", Group.ADMIN: "admin"}
# What may run tools or start processes: with no accounts to stop it, a web page of another
# origin must never reach these, whatever cors_origins allows.
STARTS_PROCESSES = {Group.AGENTS, Group.TOOLS}
GUESTS_GROUPS = {Group.CHAT, Group.KNOWLEDGE}  # what guest access opens to guests
ACCOUNT_GROUPS = {Group.LOGIN, Group.ACCOUNT, Group.OWN, Group.USERS}


@dataclass(frozen=True)
class Mode:
    multi_user: bool = False
    require_auth: bool = False
    guest_access: bool = False

    @classmethod
    def of(cls, settings: Settings) -> "Mode":
        return cls(settings.multi_user, settings.require_auth, settings.guest_access)

    @property
    def anonymous_guests(self) -> bool:
        """Callers without credentials count as guests."""
        return self.guest_access and not self.require_auth


def decide(mode: Mode, group: Group, role: str | None) -> str:
    """What a caller with `role` (None: anonymous) gets from a route of `group`."""
    if not mode.multi_user:  # one person's server: credentials are ignored
        return NOT_FOUND if group in ACCOUNT_GROUPS else YES
    if group in (Group.PUBLIC, Group.LOGIN):
        return YES
    if role is None:
        return YES if _anonymous_may(mode, group) else UNAUTHORIZED
    if group in GUESTS_GROUPS and role == "guest" and not mode.guest_access:
        return FORBIDDEN
    if RANK[role] < RANK[LEAST_ROLE[group]]:
        return FORBIDDEN
    return OWN_ONLY if group == Group.OWN and role != "admin" else YES


def same_origin_only(mode: Mode, group: Group) -> bool:
    """Whether the group refuses requests from web pages of other origins in this mode."""
    return not mode.multi_user and group in STARTS_PROCESSES


def _anonymous_may(mode: Mode, group: Group) -> bool:
    if group == Group.MODELS:
        return not mode.require_auth
    return group in GUESTS_GROUPS and mode.anonymous_guests

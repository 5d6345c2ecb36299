"""`offgrid users …`: manage the users of a multi-user server from its machine, through the
database in OFFGRID_HOME (the server may be running)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from ..config import LIMITS, ROLES, ConfigError, Settings
from ..store import audit, usage, users
from ..store.db import Database, open_database
from ..store.errors import StoreError

ACTOR = "cli"


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add the `users` command and its subcommands to the main parser; `common` holds the flags
    every command takes."""
    parser = commands.add_parser("users", parents=[common],
                                 help="manage users, roles and quotas")
    parser.set_defaults(command=lambda args, settings: parser.print_help() or 2)
    actions = parser.add_subparsers(title="actions")

    create = actions.add_parser("create", help="create a user; the password is read from a "
                                               "prompt, or from stdin when it is not a terminal")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default="user")
    create.set_defaults(command=_run(_create))

    actions.add_parser("list", help="list the users").set_defaults(command=_run(_list))

    delete = actions.add_parser("delete", help="delete a user with their keys and tokens")
    delete.add_argument("name")
    delete.set_defaults(command=_run(_delete))

    quota = actions.add_parser("quota", help="show quotas and today's use; set a user's")
    quota.add_argument("name", nargs="?", help="the user (default: show everyone)")
    for limit in LIMITS:
        quota.add_argument("--" + limit.replace("_", "-"), dest=limit, type=_limit,
                           metavar="N", help="a whole number, 0 for no limit, or 'default' "
                                             "for the role's")
    quota.set_defaults(command=_run(_quota))

    log = actions.add_parser("audit", help="the latest changes to users, roles, keys, quotas")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(command=_run(_audit))


def _limit(text: str):
    if text == "default":
        return users.DEFAULT
    if not text.isdigit():
        raise argparse.ArgumentTypeError("expected a whole number or 'default'")
    return int(text)


def _run(action):
    """The action with the database of OFFGRID_HOME; store refusals as messages."""
    def command(args, settings: Settings) -> int:
        try:
            return action(args, settings, open_database(settings))
        except (ConfigError, StoreError) as error:
            print(f"offgrid: {error}", file=sys.stderr)
            return 1
    return command


def _create(args, settings: Settings, db: Database) -> int:
    user = users.create(db, args.name, _read_password(), args.role)
    audit.record(db, ACTOR, "create_user", user.username, f"role={user.role}")
    print(f"created {user.role} {user.username} (id {user.id})")
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise StoreError("the passwords differ")
    return password


def _list(args, settings: Settings, db: Database) -> int:
    for user in users.everyone(db):
        print(f"{user.id:>4}  {user.username:<24} {user.role}")
    return 0


def _delete(args, settings: Settings, db: Database) -> int:
    user = users.delete(db, _named(db, args.name).id)
    audit.record(db, ACTOR, "delete_user", user.username)
    print(f"deleted {user.username}")
    return 0


def _quota(args, settings: Settings, db: Database) -> int:
    changes = {limit: getattr(args, limit) for limit in LIMITS if getattr(args, limit) is not None}
    if changes:
        if not args.name:
            raise StoreError("name the user whose quota to set")
        user = users.set_quota(db, _named(db, args.name).id, **changes)
        audit.record(db, ACTOR, "set_quota", user.username, ", ".join(
            f"{name}={'default' if value is users.DEFAULT else value}"
            for name, value in changes.items()))
    shown = [_named(db, args.name)] if args.name else users.everyone(db)
    print(f"{'USER':<24} {'ROLE':<6} {'REQUESTS/MIN':>16} {'TOKENS/DAY':>20} {'USED TODAY':>11}")
    for user in shown:
        defaults = settings.quota(user.role)
        limits = [_shown(getattr(user, limit), defaults[limit]) for limit in LIMITS]
        print(f"{user.username:<24} {user.role:<6} {limits[0]:>16} {limits[1]:>20} "
              f"{usage.tokens_today(db, f'user:{user.id}'):>11}")
    return 0


def _shown(value: int | None, default: int) -> str:
    return f"{_limit_text(default)} (role)" if value is None else _limit_text(value)


def _limit_text(limit: int) -> str:
    return "no limit" if limit == 0 else str(limit)


def _audit(args, settings: Settings, db: Database) -> int:
    for entry in audit.recent(db, args.limit):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        print(f"{when}  {entry.actor:<20} {entry.action:<12} {entry.target:<24} {entry.detail}")
    return 0


def _named(db: Database, name: str) -> users.User:
    user = users.find(db, name)
    if user is None:
        raise StoreError(f"no user named {name!r}")
    return user

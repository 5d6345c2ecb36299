"""`offgrid db …`: the database itself. `migrate` brings a database's schema up to date (a
server does the same when it starts); `copy` moves everything a server keeps from one database
into another, such as from its sqlite file to the PostgreSQL that several servers will share."""

from __future__ import annotations

import argparse
import sys

from ..config import Settings
from ..store import copy
from ..store.db import applied_migrations, open_database, open_url
from ..store.errors import StoreError


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("db", parents=[common], help="migrate or copy the database")
    parser.set_defaults(command=lambda args, settings: parser.print_help() or 2)
    actions = parser.add_subparsers(title="actions")

    migrate = actions.add_parser("migrate", help="apply the migrations a database lacks")
    migrate.add_argument("url", nargs="?", help="sqlite:PATH or postgresql://… (default: the "
                                                "server's, database_url or OFFGRID_HOME's)")
    migrate.set_defaults(command=_migrate)

    copy_ = actions.add_parser("copy", help="copy every table into an empty database, ids kept")
    copy_.add_argument("source", help="sqlite:PATH or postgresql://…")
    copy_.add_argument("destination", help="sqlite:PATH or postgresql://…; must be empty")
    copy_.set_defaults(command=_copy)


def _migrate(args, settings: Settings) -> int:
    try:
        db = open_url(args.url) if args.url else open_database(settings)
    except (ValueError, StoreError) as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 1
    names = applied_migrations(db)
    print(f"{db.name}: up to date, {len(names)} migrations ({names[-1]})")
    db.close()
    return 0


def _copy(args, settings: Settings) -> int:
    try:
        source, destination = open_url(args.source), open_url(args.destination)
        copied = copy.copy(source, destination, progress=lambda table, rows: print(
            f"\r{table}: {rows} rows", end="", file=sys.stderr, flush=True))
    except (ValueError, StoreError) as error:
        print(f"\noffgrid: {error}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    for table, rows in copied.items():
        print(f"{table}: {rows}")
    print(f"copied {sum(copied.values())} rows from {source.name} to {destination.name}")
    source.close()
    destination.close()
    return 0

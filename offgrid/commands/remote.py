"""What the commands that talk to a running server share: where it is (OFFGRID_URL, else the
configured host and port) and how its refusals reach the terminal."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..client import Client, OffGridError
from ..config import Settings
from . import terminal


def server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return os.environ.get("OFFGRID_URL") or f"http://{host}:{settings.port}"


def on_server(action: Callable[[Client, object], int]):
    """A command that runs `action(client, args)` against the server; what the server refuses,
    or a server that is not there, is one line on stderr and exit status 1."""
    def command(args, settings: Settings) -> int:
        try:
            return action(Client(server_url(settings), retries=1), args)
        except OffGridError as error:
            if error.status == 0:
                return terminal.fail(f"{error.message} (start it with `offgrid serve`)")
            return terminal.fail(error.message)
    return command

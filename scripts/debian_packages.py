"""Debian packages the tests need (Chromium, PostgreSQL, the load balancers): found where they
are, else installed with apt-get when this runs as root, else a message that says what to
install. Used by the fetch_*.py scripts that find them; standard library only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

Found = TypeVar("Found")


class FetchError(RuntimeError):
    """A package could not be found or installed."""


def ensure(packages: list[str], find: Callable[[], Found | None], needed_by: str,
           script: str) -> Found:
    """What `find()` gives, installing `packages` first if it gives None. `needed_by` names
    what needs them, for the message; `script` names the caller, for its progress line."""
    found = find()
    if found is not None:
        return found
    wanted = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FetchError(f"{needed_by} need {' and '.join(packages)} (on Debian: sudo apt-get "
                         f"install {wanted})")
    print(f"{script}: installing {' and '.join(packages)} with apt-get ...", file=sys.stderr,
          flush=True)
    command = f"apt-get update -qq && apt-get install -y -qq {wanted}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    found = find()
    if done.returncode != 0 or found is None:
        raise FetchError(f"`{command}` failed (exit {done.returncode}):\n"
                         f"{(done.stdout + done.stderr)[-4000:]}")
    return found


def main(script: str, ensure_found: Callable[[], object], show=str) -> None:
    """A fetch script run as a command: print what it found, or why it could not."""
    try:
        print(show(ensure_found()))
    except FetchError as error:
        sys.exit(f"{script}: error: {error}")

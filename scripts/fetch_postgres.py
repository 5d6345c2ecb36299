"""Find the PostgreSQL server programs (initdb, pg_ctl) the store's tests start a throw-away
cluster with, installing Debian's `postgresql` package first where they are missing and this
runs as root with apt-get (as another user it says what to install).

    python scripts/fetch_postgres.py    # print the folder holding initdb and pg_ctl

Importable, standard library only: ensure() gives the folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

INSTALL = "apt-get update -qq && apt-get install -y -qq postgresql"


class FetchError(RuntimeError):
    """No PostgreSQL could be found or installed."""


def installed() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb (Debian keeps them there,
    off PATH)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                     key=lambda path: int(Path(path).parent.parent.name))
    return Path(folders[-1]).parent if folders else None


def ensure() -> Path:
    folder = installed()
    if folder:
        return folder
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FetchError("the PostgreSQL tests need PostgreSQL's server (on Debian: sudo "
                         "apt-get install postgresql)")
    print("fetch_postgres: installing postgresql with apt-get ...", file=sys.stderr, flush=True)
    done = subprocess.run(INSTALL, shell=True, capture_output=True, text=True)
    folder = installed()
    if done.returncode != 0 or folder is None:
        raise FetchError(f"`{INSTALL}` failed (exit {done.returncode}):\n"
                         f"{(done.stdout + done.stderr)[-4000:]}")
    return folder


if __name__ == "__main__":
    try:
        print(ensure())
    except FetchError as error:
        sys.exit(f"fetch_postgres: error: {error}")

"""Find the PostgreSQL server programs (initdb, pg_ctl) the store's tests start a throw-away
cluster with, installing Debian's `postgresql` package first where they are missing and this
runs as root with apt-get (as another user it says what to install).

    python scripts/fetch_postgres.py    # print the folder holding initdb and pg_ctl

Importable, standard library only: ensure() gives the folder.
"""

from __future__ import annotations

import glob
from pathlib import Path

import debian_packages


def installed() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb (Debian keeps them there,
    off PATH)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                     key=lambda path: int(Path(path).parent.parent.name))
    return Path(folders[-1]).parent if folders else None


def ensure() -> Path:
    return debian_packages.ensure(["postgresql"], installed, "the PostgreSQL tests",
                                  "fetch_postgres")


if __name__ == "__main__":
    debian_packages.main("fetch_postgres", ensure)

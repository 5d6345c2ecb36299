"""Find the load balancers the scale-out tests run, nginx and HAProxy: Debian's packages,
installed with apt-get where they are missing and this runs as root (as another user it says
what to install). The tests run their own processes, on free loopback ports, with their own
configuration; they never use the system services (which Debian may start on install).

    python scripts/fetch_balancers.py    # print each balancer's path, as JSON

Importable, standard library only: ensure() gives the paths.
"""

from __future__ import annotations

import json
import os
import shutil

import debian_packages

# Debian package -> its program; both live in /usr/sbin, which a user's PATH may lack.
PACKAGES = {"nginx": "nginx", "haproxy": "haproxy"}
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def installed() -> dict[str, str] | None:
    """{"nginx": path, "haproxy": path}, or None while one is missing."""
    found = {package: shutil.which(program, path=SEARCH_PATH)
             for package, program in PACKAGES.items()}
    return found if None not in found.values() else None


def ensure() -> dict[str, str]:
    return debian_packages.ensure(list(PACKAGES), installed, "the scale-out tests",
                                  "fetch_balancers")


if __name__ == "__main__":
    debian_packages.main("fetch_balancers", ensure, json.dumps)

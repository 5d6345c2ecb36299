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
import subprocess
import sys

# Debian package -> its program; both live in /usr/sbin, which a user's PATH may lack.
PACKAGES = {"nginx": "nginx", "haproxy": "haproxy"}
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
INSTALL = "apt-get update -qq && apt-get install -y -qq " + " ".join(PACKAGES)


class FetchError(RuntimeError):
    """A balancer could not be found or installed."""


def installed() -> dict[str, str | None]:
    return {package: shutil.which(program, path=SEARCH_PATH)
            for package, program in PACKAGES.items()}


def ensure() -> dict[str, str]:
    """{"nginx": path, "haproxy": path}."""
    found = installed()
    missing = [package for package, path in found.items() if path is None]
    if not missing:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FetchError(f"the scale-out tests need {' and '.join(missing)} (on Debian: sudo "
                         f"apt-get install {' '.join(missing)})")
    print(f"fetch_balancers: installing {' and '.join(missing)} with apt-get ...",
          file=sys.stderr, flush=True)
    done = subprocess.run(INSTALL, shell=True, capture_output=True, text=True)
    found = installed()
    if done.returncode != 0 or None in found.values():
        raise FetchError(f"`{INSTALL}` failed (exit {done.returncode}):\n"
                         f"{(done.stdout + done.stderr)[-4000:]}")
    return found


if __name__ == "__main__":
    try:
        print(json.dumps(ensure()))
    except FetchError as error:
        sys.exit(f"fetch_balancers: error: {error}")

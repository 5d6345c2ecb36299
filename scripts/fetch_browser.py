"""Find the Chromium that the web page's tests drive with Playwright, installing Debian's
`chromium` package first where it is missing and this runs as root with apt-get (as another
user it says what to install). Playwright's own browser downloads are never used.

    python scripts/fetch_browser.py    # print the browser's path

Importable, standard library only: ensure() gives the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NAMES = ("chromium", "chromium-browser")  # Debian's name, then Ubuntu's
INSTALL = "apt-get update -qq && apt-get install -y -qq chromium"


class FetchError(RuntimeError):
    """No browser could be found or installed."""


def installed() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


def ensure() -> str:
    """The path of Chromium's executable."""
    path = installed()
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FetchError("the web page's tests need Chromium (on Debian: sudo apt-get install "
                         "chromium)")
    print("fetch_browser: installing chromium with apt-get ...", file=sys.stderr, flush=True)
    done = subprocess.run(INSTALL, shell=True, capture_output=True, text=True)
    path = installed()
    if done.returncode != 0 or path is None:
        raise FetchError(f"`{INSTALL}` failed (exit {done.returncode}):\n"
                         f"{(done.stdout + done.stderr)[-4000:]}")
    return path


if __name__ == "__main__":
    try:
        print(ensure())
    except FetchError as error:
        sys.exit(f"fetch_browser: error: {error}")

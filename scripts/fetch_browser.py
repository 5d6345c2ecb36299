"""Find the Chromium that the web page's tests drive with Playwright, installing Debian's
`chromium` package first where it is missing and this runs as root with apt-get (as another
user it says what to install). Playwright's own browser downloads are never used.

    python scripts/fetch_browser.py    # print the browser's path

Importable, standard library only: ensure() gives the path.
"""

from __future__ import annotations

import shutil

import debian_packages

NAMES = ("chromium", "chromium-browser")  # Debian's name, then Ubuntu's


def installed() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


def ensure() -> str:
    """The path of Chromium's executable."""
    return debian_packages.ensure(["chromium"], installed, "the web page's tests",
                                  "fetch_browser")


if __name__ == "__main__":
    debian_packages.main("fetch_browser", ensure)

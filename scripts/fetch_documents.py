"""Fetch real documents for the knowledge base's tests: Debian documentation and data packages,
unpacked into a local cache.

Each package is fetched with `apt-get download` (no root needed where apt's package lists
exist; as root, a failed download runs `apt-get update` once and tries again) and unpacked
with `dpkg-deb -x`. Nothing is installed on the system.

    debian-reference-en   the Debian Reference: HTML chapters, the book as PDF, and as text (gzip)
    git-doc               git's manual pages and guides as HTML and AsciiDoc text
    distro-info-data      Debian's and Ubuntu's releases as CSV
    iso-codes             ISO country, language, script and currency codes as JSON

Cache: $OFFGRID_CACHE, else ~/.cache/offgrid; packages are unpacked in <cache>/documents/<name>/,
which appears only once the package is downloaded and unpacked whole. A folder already there is
used as is, with no apt call.

    python scripts/fetch_documents.py git-doc    # print the folder of its documents
    python scripts/fetch_documents.py all        # print every package's folder as JSON

Importable, standard library only: ensure(name) and ensure_all().
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Package -> the folder inside it that holds its documents.
PACKAGES = {
    "debian-reference-en": "usr/share/debian-reference",
    "git-doc": "usr/share/doc/git-doc",
    "distro-info-data": "usr/share/distro-info",
    "iso-codes": "usr/share/iso-codes/json",
}


class FetchError(RuntimeError):
    """A package could not be downloaded or unpacked."""


def log(message: str) -> None:
    print(f"fetch_documents: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFGRID_CACHE") or "~/.cache/offgrid").expanduser()


def documents_dir() -> Path:
    return cache_dir() / "documents"


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def require_tools() -> None:
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise FetchError(f"needs Debian's {' and '.join(missing)}, which this system lacks")


def download(package: str, folder: Path) -> Path:
    """The package's .deb, downloaded into `folder`; apt's lists refreshed once if need be."""
    result = run(["apt-get", "download", package], folder)
    if result.returncode != 0 and os.geteuid() == 0:
        log(f"{package}: apt-get download failed; running apt-get update once ...")
        update = run(["apt-get", "update", "-qq"], folder)
        if update.returncode != 0:
            raise FetchError(f"apt-get update failed (exit {update.returncode}):\n"
                             f"{update.stdout[-4000:]}")
        result = run(["apt-get", "download", package], folder)
    if result.returncode != 0:
        hint = "" if os.geteuid() == 0 else (
            " (apt's package lists may be missing: run `sudo apt-get update` once)")
        raise FetchError(f"apt-get download {package} failed (exit {result.returncode})"
                         f"{hint}:\n{result.stdout[-4000:]}")
    debs = sorted(folder.glob("*.deb"))
    if len(debs) != 1:
        raise FetchError(f"apt-get download {package} left {len(debs)} .deb files, expected 1")
    return debs[0]


def unpack(deb: Path, out: Path) -> None:
    result = run(["dpkg-deb", "-x", str(deb), str(out)], deb.parent)
    if result.returncode != 0:
        raise FetchError(f"dpkg-deb -x {deb.name} failed (exit {result.returncode}):\n"
                         f"{result.stdout[-4000:]}")


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; rename it to `final` if the block succeeds.

    The scratch folder is on the same filesystem, so the rename is atomic, and its parent is
    removed whatever happens, taking the downloaded .deb and any leftovers with it.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.") as scratch:
        temp = Path(scratch) / final.name
        temp.mkdir()
        yield temp
        os.replace(temp, final)


def ensure(name: str) -> Path:
    """The cached folder of package `name`'s documents, fetching the package if needed."""
    if name not in PACKAGES:
        raise ValueError(f"unknown package {name!r}; expected one of {', '.join(PACKAGES)}")
    final = documents_dir() / name
    if not final.is_dir():
        require_tools()
        log(f"{name}: fetching with apt-get download ...")
        started = time.monotonic()
        with staged(final) as temp:
            deb = download(name, temp.parent)
            unpack(deb, temp)
            if not (temp / PACKAGES[name]).is_dir():
                raise FetchError(f"{deb.name} has no {PACKAGES[name]}/")
        log(f"{name}: done in {time.monotonic() - started:.1f}s -> {final}")
    return final / PACKAGES[name]


def ensure_all() -> dict[str, Path]:
    return {name: ensure(name) for name in PACKAGES}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", choices=[*PACKAGES, "all"],
                        help="the package to fetch, or all of them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.package == "all":
            print(json.dumps({name: str(path) for name, path in ensure_all().items()}))
        else:
            print(ensure(args.package))
    except FetchError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; nothing half-unpacked was kept")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fetch real MCP servers for the MCP client's tests: the reference servers of the Model Context
Protocol project, from npm, run by Node.

    @modelcontextprotocol/server-memory       a knowledge graph of entities and relations
    @modelcontextprotocol/server-filesystem   files under the folders it is given

Each package is installed once, at a pinned version, with
`npm install --prefix <cache>/mcp-servers/<name>`; tests then run `node <its bin script>` with
no network. Node and npm come from the system; on a machine without them, and as root, this
runs `apt-get install -y nodejs npm` first (as another user it says what to install).

Cache: $OFFGRID_CACHE, else ~/.cache/offgrid; a package's folder appears under
<cache>/mcp-servers/ only once installed whole, and one already there is used as is.

    python scripts/fetch_mcp_servers.py memory    # print the memory server's launch command
    python scripts/fetch_mcp_servers.py all       # print every server's launch command as JSON

Importable, standard library only: ensure(name) and ensure_all() give launch commands as
argv lists.
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

VERSION = "2026.8.31"
# Short name -> (npm package, its bin script inside the package).
SERVERS = {
    "memory": ("@modelcontextprotocol/server-memory", "dist/index.js"),
    "filesystem": ("@modelcontextprotocol/server-filesystem", "dist/index.js"),
}


class FetchError(RuntimeError):
    """A server could not be installed."""


def log(message: str) -> None:
    print(f"fetch_mcp_servers: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFGRID_CACHE") or "~/.cache/offgrid").expanduser()


def servers_dir() -> Path:
    return cache_dir() / "mcp-servers"


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def require_node() -> None:
    """Node and npm on the PATH, installed with apt-get if missing and we are root."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FetchError(f"needs {' and '.join(missing)}: install Node.js and npm "
                         "(on Debian: sudo apt-get install nodejs npm)")
    log("installing nodejs and npm with apt-get ...")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                   "nodejs", "npm"]):
        result = run(command)
        if result.returncode != 0:
            raise FetchError(f"{' '.join(command)} failed (exit {result.returncode}):\n"
                             f"{result.stdout[-4000:]}")


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A scratch folder beside `final`, renamed to `final` if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.") as scratch:
        temp = Path(scratch) / final.name
        temp.mkdir()
        yield temp
        os.replace(temp, final)


def launch_command(name: str, folder: Path) -> list[str]:
    package, script = SERVERS[name]
    return [shutil.which("node") or "node", str(folder / "node_modules" / package / script)]


def ensure(name: str) -> list[str]:
    """The argv that starts server `name`, installing its package if needed."""
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; expected one of {', '.join(SERVERS)}")
    package = SERVERS[name][0]
    final = servers_dir() / f"{name}-{VERSION}"
    if not final.is_dir():
        require_node()
        log(f"{name}: npm install {package}@{VERSION} ...")
        started = time.monotonic()
        with staged(final) as temp:
            result = run(["npm", "install", "--prefix", str(temp), "--no-audit", "--no-fund",
                          "--loglevel=error", f"{package}@{VERSION}"])
            if result.returncode != 0:
                raise FetchError(f"npm install {package}@{VERSION} failed "
                                 f"(exit {result.returncode}):\n{result.stdout[-4000:]}")
            if not Path(launch_command(name, temp)[1]).is_file():
                raise FetchError(f"{package}@{VERSION} has no {SERVERS[name][1]}")
        log(f"{name}: done in {time.monotonic() - started:.1f}s -> {final}")
    return launch_command(name, final)


def ensure_all() -> dict[str, list[str]]:
    return {name: ensure(name) for name in SERVERS}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=[*SERVERS, "all"],
                        help="the server to fetch, or all of them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.server == "all":
            print(json.dumps(ensure_all()))
        else:
            print(" ".join(ensure(args.server)))
    except FetchError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; nothing half-installed was kept")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

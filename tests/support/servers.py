"""Real OffGrid servers, `python -m offgrid serve` in child processes on free loopback ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.cli import child_env
from support.http import get
from support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m offgrid serve` in a child process, on a free loopback port."""

    def __init__(self, tmp_path: Path, models_dir: Path, *args: str, env: dict | None = None,
                 wait: bool = True, database_url: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.env = child_env(tmp_path / "home", **(env or {}))
        self.home = Path(self.env["OFFGRID_HOME"])
        config = self.home / "config.toml"
        if database_url and "OFFGRID_DATABASE_URL" not in self.env and not config.exists():
            # In the home's config, so that `offgrid users …` on this home uses it too; a home
            # started again keeps the database it had.
            self.home.mkdir(parents=True, exist_ok=True)
            config.write_text(f"database_url = {database_url!r}\n")
        self.command = [sys.executable, "-m", "offgrid", "serve", "--port", str(self.port),
                        "--models-dir", str(models_dir), *args]
        self._spawn()
        if wait:
            self.wait_healthy()

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # a restart's lines follow the earlier run's
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 120) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            return get(self.url + "/health")[0] == 200

        try:
            wait_until(healthy, timeout, ignoring=(OSError,))
        except AssertionError:
            raise RuntimeError(f"server did not become healthy:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM, without waiting: the server finishes its running requests, then stops."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash or a lost machine."""
        self.process.kill()
        self.process.wait()
        self._log.close()

    def restart(self) -> None:
        """The same server again, on the same port with the same home (stopped first if it
        still runs)."""
        self.stop()
        self._spawn()
        self.wait_healthy()


def starter(models_dir: Path, tmp_path_factory, new_database=None):
    """Yields a function that starts servers with their own flags; stops them all after.
    `new_database` (pytest --store postgresql): gives each server a new PostgreSQL database."""
    started = []

    def start(*args: str, env: dict | None = None, wait: bool = True,
              models: Path | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path_factory.mktemp("server"), models or models_dir, *args,
                               env=env, wait=wait,
                               database_url=new_database() if new_database else None)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()

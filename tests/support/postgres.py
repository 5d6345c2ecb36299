"""A throw-away PostgreSQL cluster for the tests: Debian's server programs (installed by
scripts/fetch_postgres.py where missing), initdb'd into a temporary folder and started on a
free loopback port, as an unprivileged user when the tests run as root (PostgreSQL refuses to
run as root). Each test gets a database of its own, made by `new_database()`."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from . import script

SUPERUSER = "offgrid"
UNPRIVILEGED = "nobody"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, durable: bool = False):
        """`durable`: PostgreSQL's default fsync and synchronous commit (for benchmarks); the
        tests turn them off, as nothing here must outlive a crash."""
        self.bin = script("fetch_postgres").ensure()
        self.folder = Path(tempfile.mkdtemp(prefix="offgrid-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._as = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(UNPRIVILEGED)
            os.chmod(self.folder, 0o755)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", UNPRIVILEGED, "--"]
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self._run("pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-w", "start",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                        + ("" if durable else " -c fsync=off -c synchronous_commit=off "
                                              "-c full_page_writes=off"))

    def _run(self, program: str, *arguments) -> None:
        done = subprocess.run([*self._as, self.bin / program, *map(str, arguments)],
                              capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = "test_" + uuid.uuid4().hex[:12]
        self._as_superuser(f"CREATE DATABASE {name}")
        return self.url(name)

    def set_reachable(self, url: str, reachable: bool) -> None:
        """Let clients connect to the database of `url`, or cut off those connected and refuse
        new ones: the database gone, as far as OffGrid can tell."""
        name = url.rsplit("/", 1)[1]
        self._as_superuser(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(reachable).lower()}")
        if not reachable:
            self._as_superuser("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               f"WHERE datname = '{name}'")

    def _as_superuser(self, sql: str) -> None:
        import pg8000.native
        connection = pg8000.native.Connection(SUPERUSER, host="127.0.0.1", port=self.port,
                                              database="postgres")
        try:
            connection.run(sql)
        finally:
            connection.close()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

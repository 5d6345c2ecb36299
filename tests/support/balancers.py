"""Real load balancers on loopback, nginx and HAProxy, each running the configuration that
docs/scale-out.md shows, with the replicas' loopback ports in for its addresses and a free port
for the one it listens on: the documented configuration is the tested one."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
from pathlib import Path

from support import ROOT
from support.docs import code_blocks
from support.servers import free_port
from support.waiting import wait_until

DOC = ROOT / "docs" / "scale-out.md"
DOC_REPLICAS = ("10.0.0.11:11611", "10.0.0.12:11611")  # the addresses the page writes


class DocDrift(AssertionError):
    """The page no longer holds what the tests put their own values in for."""


def documented(language: str, replicas: list[str], listen: tuple[str, str]) -> str:
    """The page's one `language` block, with `replicas` (host:port) in for its replicas'
    addresses and `listen`'s second text in for its first."""
    blocks = [code for _, code in code_blocks(language, [DOC])]
    if len(blocks) != 1:
        raise DocDrift(f"{DOC.name} has {len(blocks)} {language} blocks, not one")
    config = blocks[0]
    for old, new in [*zip(DOC_REPLICAS, replicas, strict=True), listen]:
        if config.count(old) != 1:
            raise DocDrift(f"the {language} block of {DOC.name} holds {old!r} "
                           f"{config.count(old)} times, not once")
        config = config.replace(old, new)
    return config


class Balancer:
    """A balancer in a child process, in a folder of its own, listening on a free port."""

    def __init__(self, folder: Path, command: list[str]):
        self.folder = folder
        self.log_path = folder / "output.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=folder, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait_listening(self, port: int, timeout: float = 30) -> None:
        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args[0]} exited with "
                                   f"{self.process.returncode}:\n{self.log()}")
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_until(listening, timeout, ignoring=(OSError,),
                   message=f"{self.process.args[0]} listening on port {port}")

    def log(self) -> str:
        """What it wrote: its output, and nginx's error log."""
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # both stop at once on it
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# nginx.conf around the page's block, which goes where Debian's conf.d/ files go: in `http`.
# Everything nginx would write elsewhere (pid, logs, buffered bodies) stays in its folder.
NGINX_CONF = """\
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{block}
}}
"""


class Nginx(Balancer):
    def __init__(self, program: str, folder: Path, replicas: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        block = documented("nginx", replicas, ("listen 80;", f"listen 127.0.0.1:{self.port};"))
        # As root, nginx's workers would run as nobody, who may not enter the test's folder.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, folder=folder, block=block))
        super().__init__(folder, [program, "-p", str(folder), "-c", str(conf),
                                  "-e", str(folder / "error.log"), "-g", "daemon off;"])
        self.wait_listening(self.port)


class HAProxy(Balancer):
    def __init__(self, program: str, folder: Path, replicas: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "haproxy.cfg"
        config.write_text(documented("haproxy", replicas,
                                     ("bind :80", f"bind 127.0.0.1:{self.port}")))
        super().__init__(folder, [program, "-f", str(config), "-db"])  # -db: in the foreground
        self.wait_listening(self.port)

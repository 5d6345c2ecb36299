"""MCP servers for the MCP client's tests: the fixture server (support/mcp_fixture.py) as a
stored server's launch, or running over streamable HTTP on a free port; the processes a
server's launch left; and a context for calling tools as an agent does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from offgrid.agents.tools import ToolContext
from offgrid.store.agents import McpServer
from support.servers import free_port
from support.waiting import wait_until

FIXTURE = Path(__file__).with_name("mcp_fixture.py")
FIXTURE_ARGV = (sys.executable, "-I", str(FIXTURE))


def fixture_server(name: str, *flags: str, **fields) -> McpServer:
    """The fixture run over stdio with `flags`, as a stored server named `name`."""
    return McpServer(name, FIXTURE_ARGV[0], (*FIXTURE_ARGV[1:], *flags), **fields)


def journal(path: Path) -> list[dict]:
    """What a fixture run with --journal wrote down."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def context(tmp_path: Path, seconds: float = 30, **fields) -> ToolContext:
    return ToolContext(workspace=tmp_path, reader=None, deadline=time.monotonic() + seconds,
                       **fields)


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def gone(processes: list[psutil.Process]) -> bool:
    """Whether every one of them has ended (a zombie has)."""
    def ended(process: psutil.Process) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(ended(process) for process in processes)


class HttpFixture:
    """The fixture served over streamable HTTP on a loopback port, as a child process that can
    be restarted on the same port (the new one knows none of the old one's sessions)."""

    def __init__(self, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._argv = [*FIXTURE_ARGV, "--http", str(self.port), *flags]
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.process.poll() is None, f"the fixture exited: {self.process.returncode}"
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True

        wait_until(listening, 60, ignoring=(OSError,), message="the HTTP fixture listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def server(self, name: str, **fields) -> McpServer:
        return McpServer(name, url=self.url, **fields)

"""An MCP server run as a child process, spoken to over its stdin and stdout: one JSON-RPC
message per line, each way.

The program is started from an argv list, never through a shell, in a process group of its
own, so that stopping it reaches what it started (`npx` runs node as its child, say). One
thread reads stdout, bounded: a line over MAX_LINE_BYTES ends the connection instead of
filling memory. Another drains stderr, keeping only its last lines, each cut short: a server
that writes much there never blocks on a full pipe nor grows OffGrid's memory.

Stopping follows the MCP specification: close its stdin, give it STOP_WAIT_S to exit, then
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque

from .errors import McpClosed, McpProtocolError
from .session import Peer, Transport

MAX_LINE_BYTES = 16 << 20
STDERR_LINES = 50
STDERR_LINE_BYTES = 1000
STOP_WAIT_S = 2.0


class Tail:
    """The last lines of a stream, kept across restarts of the server that writes them."""

    def __init__(self, lines: int = STDERR_LINES):
        self._lines: deque[str] = deque(maxlen=lines)
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)


class StdioTransport(Transport):
    def __init__(self, command: str, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 cwd: str | None = None, stderr: Tail | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES):
        self._argv = [command, *args]
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self.stderr = stderr if stderr is not None else Tail()
        self._max_line_bytes = max_line_bytes
        self._process: subprocess.Popen | None = None
        self._write_lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    @property
    def exit_code(self) -> int | None:
        """The process's exit status once it ended (-N: killed by signal N)."""
        return self._process.poll() if self._process is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def open(self, peer: Peer) -> None:
        if self._cwd is not None and not os.path.isdir(self._cwd):
            raise McpClosed(f"cannot start {self._argv[0]!r}: its working folder "
                            f"{self._cwd!r} is not a folder")
        try:
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=self._env, cwd=self._cwd, start_new_session=True)
        except OSError as error:
            raise McpClosed(f"cannot start {self._argv[0]!r}: "
                            f"{error.strerror or error}") from None
        self._readers = [
            threading.Thread(target=self._read_stderr, name=f"mcp-stderr-{self.pid}",
                             daemon=True),
            threading.Thread(target=self._read_stdout, args=(peer,),
                             name=f"mcp-stdout-{self.pid}", daemon=True)]
        for reader in self._readers:
            reader.start()

    def send(self, message: dict) -> None:
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            try:
                self._process.stdin.write(line)
                self._process.stdin.flush()
            except (OSError, ValueError):  # a broken pipe, or stdin already closed
                raise McpClosed(self._ending()) from None

    def abandon(self, request_id: int) -> None:
        pass  # one pipe carries every request: nothing of its own to drop

    def negotiated(self, protocol_version: str) -> None:
        pass  # stdio carries no protocol headers

    def close(self) -> None:
        process = self._process
        if process is None:
            return
        with self._write_lock:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        self._stop_group()
        for reader, pipe in zip(self._readers, (process.stderr, process.stdout), strict=True):
            if reader is not threading.current_thread():
                reader.join(STOP_WAIT_S)
            if not reader.is_alive():  # closing a pipe mid-read would wait for the read
                pipe.close()

    # -- the reader threads -------------------------------------------------------------------

    def _read_stdout(self, peer: Peer) -> None:
        stdout = self._process.stdout
        while True:
            try:
                line = stdout.readline(self._max_line_bytes + 1)
            except (OSError, ValueError):
                line = b""
            if not line:
                peer.lost(McpClosed(self._ending()))
                return
            if len(line) > self._max_line_bytes and not line.endswith(b"\n"):
                peer.lost(McpProtocolError(
                    f"the server wrote a line of more than {self._max_line_bytes} bytes"))
                return
            if line.strip():
                self._deliver(peer, line)

    def _deliver(self, peer: Peer, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            # Not MCP; the specification forbids it, some servers print banners all the same.
            self.stderr.add("[stdout] " + _cut(line))
            return
        peer.receive(message)

    def _read_stderr(self) -> None:
        stderr, cut = self._process.stderr, False  # cut: the line's start was kept already
        while True:
            try:
                chunk = stderr.readline(STDERR_LINE_BYTES)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            if not cut:
                self.stderr.add(_cut(chunk) + ("" if chunk.endswith(b"\n") else " [...]"))
            cut = not chunk.endswith(b"\n")

    def _ending(self) -> str:
        """Why the server stopped talking, once its process ended (or STOP_WAIT_S passed)."""
        try:
            code = self._process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            return "the server closed its stdout"
        self._readers[0].join(STOP_WAIT_S)  # its last words on stderr, for the status
        if code < 0:
            return f"the server was killed by {signal.Signals(-code).name}"
        return f"the server exited with code {code}"

    # -- stopping -----------------------------------------------------------------------------

    def _stop_group(self) -> None:
        """SIGTERM, then SIGKILL, to whatever is left of the server's process group."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not self._group_alive():
                return
            try:
                os.killpg(self._process.pid, signum)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + STOP_WAIT_S
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _group_alive(self) -> bool:
        self._process.poll()  # reaps the leader, which would otherwise linger as a zombie
        try:
            os.killpg(self._process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # not ours to stop
        return True


def _cut(line: bytes) -> str:
    return line[:STDERR_LINE_BYTES].decode(errors="replace").rstrip("\r\n")

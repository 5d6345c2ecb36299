"""`shell`: run a program in the caller's workspace folder. Off by default, and only an admin
may turn it on: it runs with the server's own rights, and is no sandbox.

What it does take care of: the command is an argv list, run with no shell between (no
expansion, no pipes, no `;`); stdin is empty; the environment is a few variables, not the
server's (which may hold its admin password); the program gets a process group of its own,
killed whole when the call is cancelled or runs out of time, and after the program ends too, so
that nothing it started outlives the call; stdout and stderr come back together, their first
and last bytes when there are more than MAX_OUTPUT_BYTES."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, seconds_left, stopped_when_due

MAX_ARGS = 256
MAX_ARG_CHARS = 4096
MAX_OUTPUT_BYTES = 64 * 1024  # half from the start of the output, half from its end
_READ_BYTES = 64 * 1024
_DRAIN_S = 1.0  # for output still in the pipe once the program is gone
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_PASSED_ON = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")  # from the server's environment


class Shell(BuiltinTool):
    name = "shell"
    timeout_s = 30.0
    description = ("Run a program in the workspace folder and read its output and exit code. "
                   "`command` is the program and its arguments, one string each, such as "
                   "[\"ls\", \"-l\"]; no shell runs it, so there are no pipes, redirections, "
                   "wildcards or variables. It runs with the server's rights (this is not a "
                   f"sandbox) and is stopped after {timeout_s:.0f} s.")
    parameters = {
        "type": "object",
        "properties": {"command": {
            "type": "array", "minItems": 1, "maxItems": MAX_ARGS,
            "items": {"type": "string", "maxLength": MAX_ARG_CHARS},
            "description": "the program, then each of its arguments"}},
        "required": ["command"],
        "additionalProperties": False,
    }
    enabled_by_default = False
    admins_only = True

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        argv = _argv(arguments.get("command"))
        seconds = seconds_left(self, context)
        context.workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            process = subprocess.Popen(argv, cwd=context.workspace, env=_environment(
                context.workspace), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            raise Refused(f"There is no program {argv[0]!r} to run (looked for on PATH, or "
                          "in the workspace for a path)") from None
        except OSError as error:
            raise Refused(f"{argv[0]!r} cannot be run: {error.strerror}") from None
        output = _Output()
        reader = threading.Thread(target=output.read_all, args=(process.stdout,),
                                  name="shell-output", daemon=True)
        reader.start()
        with stopped_when_due(context, seconds, lambda: _kill_group(process.pid)) as watch:
            # Waited for but not reaped: its pid stays its own, for the group kill below.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        _kill_group(process.pid)  # what it left running in its group
        code = process.wait()
        reader.join(_DRAIN_S)  # one that left the group may hold the pipe: not waited for
        if watch.reason:
            why = ("The run was cancelled, and the command with it" if watch.reason == "cancelled"
                   else f"The command ran longer than {seconds:.{1 if seconds < 10 else 0}f} s "
                        "and was stopped")
            return ToolResult(f"{why}. Its output until then:\n{output.text()}", is_error=True)
        ended = f"Exit code {code}" if code >= 0 else f"Killed by signal {-code}"
        return ToolResult(f"{ended}. Output:\n{output.text()}", is_error=code != 0)


def _argv(command) -> list[str]:
    if not isinstance(command, list) or not command or not all(
            isinstance(arg, str) for arg in command):
        raise Refused("`command` must be a list of strings: the program, then each argument, "
                      "such as [\"ls\", \"-l\", \"notes\"]")
    if len(command) > MAX_ARGS:
        raise Refused(f"`command` has {len(command)} items; the most is {MAX_ARGS}")
    for arg in command:
        if len(arg) > MAX_ARG_CHARS:
            raise Refused(f"An argument is {len(arg):,} characters long; the most is "
                          f"{MAX_ARG_CHARS:,}")
        if "\x00" in arg:
            raise Refused("An argument holds a NUL character")
    if not command[0].strip():
        raise Refused("The program's name is empty")
    return command


def _environment(workspace: Path) -> dict[str, str]:
    passed = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
    return {"PATH": _DEFAULT_PATH, "LANG": "C.UTF-8", **passed, "HOME": str(workspace),
            "TERM": "dumb"}


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in it
        pass


class _Output:
    """What the program writes, its first and last bytes up to MAX_OUTPUT_BYTES, and how many
    it wrote; filled by a thread of its own, so a program with a lot to say never blocks on a
    full pipe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def read_all(self, pipe) -> None:
        with pipe:
            while piece := pipe.read1(_READ_BYTES):
                self._add(piece)

    def _add(self, piece: bytes) -> None:
        half = MAX_OUTPUT_BYTES // 2
        with self._lock:
            self._total += len(piece)
            room = max(0, half - len(self._head))
            self._head += piece[:room]
            self._tail += piece[room:]
            del self._tail[:-half]

    def text(self) -> str:
        with self._lock:
            if not self._total:
                return "(none)"
            head = self._head.decode("utf-8", "replace")
            left_out = self._total - len(self._head) - len(self._tail)
            if left_out:
                return (f"{head}\n[... {left_out:,} bytes of output left out ...]\n"
                        + self._tail.decode("utf-8", "replace"))
            return head + self._tail.decode("utf-8", "replace")

"""`offgrid run` driven through a pseudo-terminal, as a person would use it."""

import os
import pty
import select
import signal
import sys
import time

import pytest

from support import ROOT
from support.cli import child_env
from support.http import get
from support.models import CHAT_MODEL
from support.servers import free_port
from support.waiting import wait_until


class Terminal:
    """A program on a pseudo-terminal: type into it, read its screen."""

    def __init__(self, argv: list[str], env: dict):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the program
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        self.screen = ""
        self.cursor = 0  # where the last expected text ended

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, text: str, timeout: float = 60) -> str:
        """Read until `text` appears after the last expected text; returns what came between."""
        start = self.cursor
        deadline = time.monotonic() + timeout
        while text not in self.screen[start:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} did not appear; screen:\n{self.screen[-2000:]}")
            if select.select([self.fd], [], [], remaining)[0]:
                try:
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    raise AssertionError(
                        f"the program ended; screen:\n{self.screen[-2000:]}") from None
        self.cursor = self.screen.index(text, start) + len(text)
        return self.screen[start:self.cursor]

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                select.select([self.fd], [], [], 0.1) and os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the program did not exit")


@pytest.fixture
def chat(models_dir, tmp_path):
    port = free_port()
    env = child_env(tmp_path, OFFGRID_PORT=str(port), OFFGRID_MODELS_DIR=str(models_dir),
                    OFFGRID_PARALLEL="2", TERM="dumb")
    # Greedy and bounded, so that no answer rambles on past the test's patience.
    terminal = Terminal([sys.executable, "-m", "offgrid", "run", CHAT_MODEL, "--temperature",
                         "0", "--max-tokens", "300"], env)
    terminal.url = f"http://127.0.0.1:{port}"
    yield terminal
    try:
        os.kill(terminal.pid, signal.SIGKILL)
        os.waitpid(terminal.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stats(url) -> dict:
    return get(url + "/v1/system/stats")[2]


def test_a_chat_session(chat):
    chat.expect("starting a server")
    chat.expect(">>> ", timeout=180)  # the server it starts loads the model first
    chat.type("What is the capital of France?\r")
    assert "Paris" in chat.expect(">>> ")
    cached_before = stats(chat.url)["prompt_tokens_cached"]

    chat.type("And of Italy?\r")
    chat.expect(">>> ")
    # The second question was sent after the first exchange, whose tokens were cached.
    assert stats(chat.url)["prompt_tokens_cached"] - cached_before > 20

    chat.type("/clear\r")
    chat.expect("(conversation forgotten)")
    chat.expect(">>> ")
    chat.type("Write a very long story about a dragon.\r")
    chat.expect("dragon.")
    chat.expect(" ")  # the answer has begun
    chat.type("\x03")  # Ctrl-C stops the answer...
    assert "[stopped]" in chat.expect(">>> ", timeout=10)
    wait_until(lambda: stats(chat.url)["active_sessions"] == 0,
               message="the server stopping generating")

    chat.type('"""\r')  # ...but not the chat; a message of several lines:
    chat.expect("... ")
    chat.type("Say the word\r")
    chat.expect("... ")
    chat.type('banana.\r"""\r')
    chat.expect(">>> ")

    time.sleep(0.5)  # the answer's connection is closed and the prompt waits for a line
    chat.type("\x03")  # Ctrl-C at the prompt explains how to leave
    assert "/bye" in chat.expect(">>> ")
    chat.type("/bye\r")
    assert chat.wait() == 0
    time.sleep(0.5)
    with pytest.raises(OSError):
        get(chat.url + "/health", timeout=2)  # the server it started is gone too


def test_ctrl_d_leaves(chat):
    chat.expect(">>> ", timeout=180)
    chat.type("\x04")
    assert chat.wait() == 0


def run_in_terminal(tmp_path, port: int, *args: str) -> Terminal:
    """`offgrid run ...` with no OFFGRID_MODELS_DIR: the flags say everything."""
    env = child_env(tmp_path / "home", OFFGRID_PORT=str(port), TERM="dumb")
    return Terminal([sys.executable, "-m", "offgrid", "run", *args], env)


def test_a_session_continues_in_a_later_chat_and_a_closed_terminal_stops_its_server(
        models_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = run_in_terminal(tmp_path, port, CHAT_MODEL, "--models-dir", str(models_dir),
                            "--session", "trip", "--temperature", "0", "--max-tokens", "20")
    first.expect("(session trip: new)", timeout=180)
    first.expect(">>> ")
    first.type("The generator is in shed 3.\r")
    first.expect(">>> ")
    assert get(url + "/v1/sessions/trip")[2]["message_count"] == 2
    os.close(first.fd)  # the terminal closes: SIGHUP
    assert first.wait() == 128 + signal.SIGHUP
    wait_until(lambda: _unreachable(url), message="the server it started stopping")

    second = run_in_terminal(tmp_path, port, CHAT_MODEL, "--models-dir", str(models_dir),
                             "--session", "trip", "--max-tokens", "20")
    second.expect("(session trip: 2 messages; the last ones:)", timeout=180)
    second.expect(">>> The generator is in shed 3.")  # the last turn, shown again
    second.expect("\n>>> ")
    second.type("/bye\r")
    assert second.wait() == 0


def _unreachable(url: str) -> bool:
    try:
        get(url + "/health", timeout=2)
        return False
    except OSError:
        return True


def test_a_model_that_cannot_load_is_said_at_once(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    terminal = run_in_terminal(tmp_path, free_port(), "broken", "--models-dir", str(models))
    said = terminal.expect("failed to load", timeout=60)
    assert "offgrid: The default model broken" in said
    assert terminal.wait() == 1 and ">>> " not in terminal.screen

"""`offgrid run MODEL`: chat in the terminal; with `--session NAME`, in a session the server
keeps, which a later `offgrid run --session NAME` (or the web page) continues.

It talks to the running server, or starts one for the chat (with the same config file and
models folder) and stops it when the chat ends, the terminal closes included. Answers stream as
they come; Ctrl-C stops the answer (the server cancels it) but not the chat; Ctrl-D or /bye
leaves. A line holding only three double quotes starts and ends a message of several lines.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from ..client import Client, OffGridError
from ..config import Settings
from .remote import server_url

PROMPT, MORE = ">>> ", "... "
QUOTES = '"""'
HELP = ('Type a message. /bye or Ctrl-D leaves, /clear forgets the conversation, '
        'Ctrl-C stops an answer, """ starts and ends a message of several lines.')
STARTUP_SECONDS = 120


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add `run` to the main parser; `common` holds the flags every command takes."""
    parser = commands.add_parser("run", parents=[common], help="chat with a model in the terminal")
    parser.add_argument("model")
    parser.add_argument("--session", help="a session kept on the server: continued if it is "
                                          "there, else started")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default 0.7)")
    parser.add_argument("--seed", type=int, help="same seed, same answers")
    parser.add_argument("--max-tokens", dest="max_tokens", type=int,
                        help="longest answer (default: as long as the context allows)")
    parser.set_defaults(command=lambda a, s: run(s, a.model, {
        name: getattr(a, name) for name in ("temperature", "seed", "max_tokens")
        if getattr(a, name) is not None}, a.session, _passed_on(a)))


def _passed_on(args) -> list[str]:
    """The flags a server started for the chat needs to see what the chat sees."""
    flags = []
    for flag, value in (("--config", args.config), ("--models-dir", args.models_dir)):
        if value:
            flags += [flag, os.path.abspath(value)]
    return flags


def run(settings: Settings, model: str, params: dict, session: str | None = None,
        serve_flags: list[str] = ()) -> int:
    """`params` go with every question: temperature, seed, max_tokens."""
    client = Client(server_url(settings))
    probe = Client(server_url(settings), timeout=5, retries=0)
    server = None if _reachable(probe) else _start_server(model, serve_flags)
    # A closed terminal (SIGHUP) or a kill ends the chat through `finally`, so the server
    # started for it stops too.
    for hang_up in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(hang_up, lambda number, frame: sys.exit(128 + number))
    try:
        if server is not None:
            problem = _wait_healthy(probe, server)
            if problem:
                print(f"offgrid: {problem}", file=sys.stderr)
                return 1
        talk = _Session(client, model, session) if session else _Memory(client, model)
        return _chat(talk, params)
    except OffGridError as error:
        print(f"offgrid: {error.message}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.terminate()
            server.wait()


def _reachable(client: Client) -> bool:
    try:
        client.health()
        return True
    except OffGridError as error:
        return error.status != 0  # it answered, even if only "still loading"


def _start_server(model: str, serve_flags: list[str]) -> subprocess.Popen:
    print(f"starting a server for {model}...", file=sys.stderr)
    # A session of its own, so that Ctrl-C in the chat does not reach it.
    return subprocess.Popen([sys.executable, "-m", "offgrid", "serve", "--model", model,
                             "--log-level", "warning", *serve_flags], env=os.environ,
                            start_new_session=True)


def _wait_healthy(client: Client, server: subprocess.Popen) -> str | None:
    """None once the server answers healthy; else what went wrong, as soon as it is known."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return "the server did not start; see the messages above"
        try:
            client.health()
            return None
        except OffGridError as error:
            if error.code == "model_load_failed":
                return error.message
            time.sleep(0.2)
    return f"the server was not ready after {STARTUP_SECONDS} s"


def _chat(talk, params: dict) -> int:
    print(HELP)
    talk.opening()
    while True:
        try:
            message = _read_message()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print("\n(/bye or Ctrl-D leaves)")
            continue
        if message.strip() == "/bye":
            return 0
        if message.strip() == "/clear":
            talk.clear()
            continue
        if message.strip():
            talk.say(message, params)


class _Memory:
    """A conversation the chat keeps itself, gone when it ends."""

    def __init__(self, client: Client, model: str):
        self._client, self._model = client, model
        self._history: list[dict] = []

    def opening(self) -> None:
        pass

    def clear(self) -> None:
        self._history.clear()
        print("(conversation forgotten)")

    def say(self, message: str, params: dict) -> None:
        question = [*self._history, {"role": "user", "content": message}]
        answer = _answer(lambda: self._client.chat(question, model=self._model, stream=True,
                                                   **params))
        if answer is not None:  # what was said before a Ctrl-C counts as the answer
            self._history = [*question, {"role": "assistant", "content": answer}]


class _Session:
    """A session the server keeps: continued if it is there, else started with the model."""

    def __init__(self, client: Client, model: str, name: str):
        self._sessions, self._name = client.sessions, name
        try:
            session = self._sessions.get(name)
        except OffGridError as error:
            if error.status != 404:
                raise
            session = self._sessions.create(name, model)
        if session["model"] != model:
            self._sessions.update(name, model=model)

    def opening(self) -> None:
        history = self._sessions.messages(self._name)
        if not history:
            print(f"(session {self._name}: new)")
            return
        print(f"(session {self._name}: {len(history)} messages; the last ones:)")
        for message in history[-2:]:
            print(("" if message["role"] == "assistant" else PROMPT) + message["content"])

    def clear(self) -> None:
        print(f"(a session keeps its conversation: start another with --session, or delete "
              f"this one with DELETE /v1/sessions/{self._name})")

    def say(self, message: str, params: dict) -> None:
        _answer(lambda: self._sessions.say(self._name, message, stream=True, **params),
                stopped=" [stopped: this turn is not kept]")


def _read_message() -> str:
    first = input(PROMPT)
    if first.strip() != QUOTES:
        return first
    lines = []
    while (line := input(MORE)).strip() != QUOTES:
        lines.append(line)
    return "\n".join(lines)


def _answer(open_stream, stopped: str = " [stopped]") -> str | None:
    """Stream the answer of `open_stream()` to the terminal: what was said (up to a Ctrl-C);
    None if the server refused the question."""
    pieces: list[str] = []
    stream = None
    try:
        stream = open_stream()
        for piece in stream:
            pieces.append(piece)
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print(stopped, end="")
    except OffGridError as error:
        print(f"error: {error.message}")
        return None
    finally:
        if stream is not None:
            stream.close()  # hangs up, so the server stops generating
    print()
    return "".join(pieces)

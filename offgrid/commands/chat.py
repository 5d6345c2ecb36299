"""`offgrid run MODEL`: chat in the terminal.

It talks to the running server, or starts one for the session. Answers stream as they come;
Ctrl-C stops the answer (the server cancels it) but not the chat; Ctrl-D or /bye leaves. A line
holding only three double quotes starts and ends a message of several lines.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--temperature", type=float, help="sampling temperature (default 0.7)")
    parser.add_argument("--seed", type=int, help="same seed, same answers")
    parser.add_argument("--max-tokens", dest="max_tokens", type=int,
                        help="longest answer (default: as long as the context allows)")
    parser.set_defaults(command=lambda a, s: run(s, a.model, {
        name: getattr(a, name) for name in ("temperature", "seed", "max_tokens")
        if getattr(a, name) is not None}))


def run(settings: Settings, model: str, params: dict) -> int:
    """`params` go with every question: temperature, seed, max_tokens."""
    client = Client(server_url(settings))
    probe = Client(server_url(settings), timeout=5, retries=0)
    server = None if _reachable(probe) else _start_server(settings, model)
    try:
        if server is not None and not _wait_healthy(probe, server):
            print("offgrid: the server did not start; see the messages above", file=sys.stderr)
            return 1
        return _chat(client, model, params)
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


def _start_server(settings: Settings, model: str) -> subprocess.Popen:
    print(f"starting a server for {model}...", file=sys.stderr)
    # A session of its own, so that Ctrl-C in the chat does not reach it.
    return subprocess.Popen([sys.executable, "-m", "offgrid", "serve", "--model", model,
                             "--log-level", "warning"], env=os.environ, start_new_session=True)


def _wait_healthy(client: Client, server: subprocess.Popen) -> bool:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            client.health()
            return True
        except OffGridError:
            time.sleep(0.2)
    return False


def _chat(client: Client, model: str, params: dict) -> int:
    print(HELP)
    history: list[dict] = []
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
            history.clear()
            print("(conversation forgotten)")
            continue
        if not message.strip():
            continue
        history.append({"role": "user", "content": message})
        answer = _answer(client, model, history, params)
        if answer is None:
            history.pop()
        else:
            history.append({"role": "assistant", "content": answer})


def _read_message() -> str:
    first = input(PROMPT)
    if first.strip() != QUOTES:
        return first
    lines = []
    while (line := input(MORE)).strip() != QUOTES:
        lines.append(line)
    return "\n".join(lines)


def _answer(client: Client, model: str, history: list[dict], params: dict) -> str | None:
    """Stream the answer to the terminal; what was said before a Ctrl-C counts as the answer.
    None if the server refused the question."""
    pieces: list[str] = []
    stream = None
    try:
        stream = client.chat(history, model=model, stream=True, **params)
        for piece in stream:
            pieces.append(piece)
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print(" [stopped]", end="")
    except OffGridError as error:
        print(f"error: {error.message}")
        return None
    finally:
        if stream is not None:
            stream.close()  # hangs up, so the server stops generating
    print()
    return "".join(pieces)

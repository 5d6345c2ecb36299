"""Test fixtures: real GGUF models, and real OffGrid servers started as processes on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1"
GEMMA_MODEL = "gemma-3-270m-q4_k_m"
EMBEDDING_MODEL = "all-MiniLM-L6-v2-q8_0"


def _script_module(name: str):
    """scripts/<name>.py, imported."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _fetch_models_module():
    return _script_module("fetch_models")


@pytest.fixture(scope="session")
def model_files() -> dict[str, Path]:
    return _fetch_models_module().ensure_all()


@pytest.fixture(scope="session")
def documents() -> dict[str, Path]:
    """Real documents: Debian packages' folders of them (HTML, PDF, text, CSV, JSON), by
    package name (scripts/fetch_documents.py)."""
    return _script_module("fetch_documents").ensure_all()


@pytest.fixture(scope="session")
def models_dir(model_files, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    for path in model_files.values():
        (folder / path.name).symlink_to(path)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m offgrid serve` in a child process, on a free loopback port."""

    def __init__(self, tmp_path: Path, models_dir: Path, *args: str, env: dict | None = None,
                 wait: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"server-{self.port}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("OFFGRID_")}
        child_env.update({"OFFGRID_HOME": str(tmp_path / "home"), **(env or {})})
        self.home = Path(child_env["OFFGRID_HOME"])
        command = [sys.executable, "-m", "offgrid", "serve", "--port", str(self.port),
                   "--models-dir", str(models_dir), *args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if get(self.url + "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def _starter(models_dir, tmp_path_factory):
    """Yields a function that starts servers with their own flags; stops them all after."""
    started = []

    def start(*args: str, env: dict | None = None, wait: bool = True,
              models: Path | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path_factory.mktemp("server"), models or models_dir, *args,
                               env=env, wait=wait)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_server(models_dir, tmp_path_factory):
    """Servers for one test, stopped when it ends."""
    yield from _starter(models_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def start_module_server(models_dir, tmp_path_factory):
    """Servers for a test module's fixtures, stopped after its last test."""
    yield from _starter(models_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def start_session_server(models_dir, tmp_path_factory):
    yield from _starter(models_dir, tmp_path_factory)


# The repository and file the docs' download examples use, served by the hub mirror.
DOCS_REPOSITORY = "bartowski/SmolLM2-135M-Instruct-GGUF"
DOCS_FILE = "SmolLM2-135M-Instruct-Q4_K_M.gguf"


@pytest.fixture(scope="session")
def hub_mirror(model_files):
    """A Hugging Face mirror on loopback holding the docs' example repository."""
    from hubmock import HubMock
    mirror = HubMock()
    mirror.host(DOCS_REPOSITORY, DOCS_FILE, model_files["starter"])
    yield mirror
    mirror.close()


@pytest.fixture(scope="session")
def server(start_session_server, hub_mirror) -> ServerProcess:
    """The shared server: the starter model by default, 4 slots of 2048 tokens, downloads from
    the hub mirror, imports and exports in the temporary folder (where tests make theirs)."""
    return start_session_server("--model", CHAT_MODEL, "--parallel", "4", "--max-context",
                                "2048", env={"HF_ENDPOINT": hub_mirror.url,
                                             "OFFGRID_TRANSFER_DIRS": tempfile.gettempdir()})


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.url


# -- plain HTTP helpers -----------------------------------------------------------------------------

def request(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 120):
    """(status, headers, parsed JSON body or raw text)."""
    data = body if isinstance(body, bytes) else (
        json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, _parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, _parse(error.read())


def _parse(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def get(url: str, **kwargs):
    return request("GET", url, **kwargs)


def post(url: str, body, **kwargs):
    return request("POST", url, body, **kwargs)


def stream(url: str, body: dict, timeout: float = 120, headers: dict | None = None) -> list:
    """POST with stream=true; the parsed `data:` events, ending with the string "[DONE]"."""
    req = urllib.request.Request(url, data=json.dumps({**body, "stream": True}).encode(),
                                 method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    events = []
    with urllib.request.urlopen(req, timeout=timeout) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat_body(content: str, **params) -> dict:
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": content}], **params}


def assert_error(status: int, body, expected_status: int, code: str | None = None,
                 param: str | None = None) -> dict:
    """The one error shape of the API, with the expected status, code and param."""
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error

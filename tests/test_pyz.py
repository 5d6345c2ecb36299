"""offgrid.pyz, built once per session, run the way it is carried on a USB stick: by a Python with
no third-party packages, without network, from a folder holding only the file and
offgrid-data/models/."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from offgrid import _zipapp
from support import ROOT
from support.http import chat_body
from support.models import CHAT_MODEL, EMBEDDING_MODEL, fetch_models
from support.servers import free_port
from support.waiting import wait_until

UNPACKING = "unpacking native libraries"
# Runs inside a server's network namespace: calls one of support.http's helpers, prints the
# result as JSON. argv: helper name, JSON list of arguments.
CLIENT = """
import json, sys
from support import http
name, args = sys.argv[1], json.loads(sys.argv[2])
result = getattr(http, name)(*args)
print(json.dumps(result if name == "stream" else [result[0], result[2]]))
"""


def _can_unshare_network() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


OFFLINE = _can_unshare_network()
needs_unshare = pytest.mark.skipif(not OFFLINE, reason="`unshare -n` is not available here (it "
                                   "needs root): the other .pyz tests ran with the network on")


@pytest.fixture(scope="session")
def pyz(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("build") / "offgrid.pyz"
    build = subprocess.run([ROOT / "build_pyz.sh", output], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return output


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A fresh venv without even pip: only the standard library."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", venv], check=True)
    python = venv / "bin" / "python"
    has_numpy = subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode == 0
    assert not has_numpy, "the bare venv must not see the system's packages"
    return python


@pytest.fixture(scope="session")
def stick(pyz, model_files, tmp_path_factory) -> Path:
    """A folder like a USB stick: offgrid.pyz and offgrid-data/models/ with two models."""
    folder = tmp_path_factory.mktemp("stick")
    shutil.copyfile(pyz, folder / pyz.name)
    models = folder / "offgrid-data" / "models"
    models.mkdir(parents=True)
    for name in ("starter", "embedding"):
        (models / model_files[name].name).symlink_to(model_files[name])
    return folder


class PyzServer:
    """`python offgrid.pyz serve` run by the bare Python in the stick folder, inside a network
    namespace of its own (loopback only) when unshare works; HTTP calls enter that namespace."""

    def __init__(self, python: Path, stick: Path, env: dict, logs: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = logs / f"server-{port}.log"
        command = [str(python), "offgrid.pyz", "serve", "--port", str(port),
                   "--model", CHAT_MODEL, "--parallel", "2", "--max-context", "512"]
        if OFFLINE:
            command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                       *command]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=stick, stdout=log,
                                            stderr=subprocess.STDOUT, env=env)

    def call(self, helper: str, *args):
        """support.http.<helper>(url + path, ...) from inside the server's namespace."""
        enter = ["nsenter", f"--net=/proc/{self.process.pid}/ns/net"] if OFFLINE else []
        client = subprocess.run([*enter, sys.executable, "-c", CLIENT, helper, json.dumps(args)],
                                cwd=ROOT / "tests", capture_output=True, text=True, timeout=120)
        if client.returncode != 0:
            raise ConnectionError(client.stderr)
        return json.loads(client.stdout)

    def get(self, path: str):
        return self.call("get", self.url + path)

    def post(self, path: str, body: dict):
        return self.call("post", self.url + path, body)

    def stream(self, path: str, body: dict):
        return self.call("stream", self.url + path, body)

    def wait_healthy(self, timeout: float = 120) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"offgrid.pyz exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            # Until unshare has run, the process is still in this namespace.
            return self.in_own_namespace() and self.get("/health")[0] == 200

        try:
            wait_until(healthy, timeout, every=0.1, ignoring=(ConnectionError,))
        except AssertionError:
            raise RuntimeError(f"offgrid.pyz did not become healthy:\n{self.log()}") from None

    def in_own_namespace(self) -> bool:
        namespace = os.readlink(f"/proc/{self.process.pid}/ns/net")
        return not OFFLINE or namespace != os.readlink("/proc/self/ns/net")

    def network_interfaces(self) -> set[str]:
        lines = Path(f"/proc/{self.process.pid}/net/dev").read_text().splitlines()[2:]
        return {line.split(":")[0].strip() for line in lines}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """The servers' HOME: their default cache, ~/.cache/offgrid, starts empty."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def start_pyz(bare_python, stick, home, tmp_path_factory):
    """Start offgrid.pyz servers, all at once, with a minimal environment; stopped at the end."""
    started = []
    logs = tmp_path_factory.mktemp("pyz-logs")  # outside the stick, which holds only its own

    def start(count: int = 1, **env: str) -> list[PyzServer]:
        full_env = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
        servers = [PyzServer(bare_python, stick, full_env, logs) for _ in range(count)]
        started.extend(servers)
        for server in servers:
            server.wait_healthy()
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def pyz_server(start_pyz) -> PyzServer:
    (server,) = start_pyz()
    return server


def native_folders(cache: Path) -> list[Path]:
    return sorted((cache / "pyz").iterdir())


def test_serves_health_chat_stream_and_embeddings(pyz_server):
    assert pyz_server.get("/health") == [200, {"status": "healthy"}]
    status, answer = pyz_server.post("/v1/chat/completions",
                                     chat_body("What is the capital of France?", max_tokens=8))
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"]
    events = pyz_server.stream("/v1/chat/completions", chat_body("Hello!", max_tokens=8))
    assert events[-1] == "[DONE]"
    assert "".join(event["choices"][0]["delta"].get("content", "") for event in events[:-1])
    status, vectors = pyz_server.post("/v1/embeddings",
                                      {"model": EMBEDDING_MODEL, "input": ["Hello", "world"]})
    assert status == 200, vectors
    assert [len(item["embedding"]) for item in vectors["data"]] == [384, 384]


def test_serves_the_chat_page_out_of_the_zip(pyz_server):
    status, page = pyz_server.get("/ui/")
    assert status == 200 and '<script type="module" src="/ui/app.js">' in page
    status, script = pyz_server.get("/ui/app.js")
    assert status == 200 and "initChat" in script


def test_models_come_from_offgrid_data_next_to_the_pyz(pyz_server, stick):
    status, models = pyz_server.get("/v1/models")
    assert status == 200
    assert {model["id"] for model in models["data"]} == {CHAT_MODEL, EMBEDDING_MODEL}
    assert str(stick / "offgrid-data" / "models") in pyz_server.log()


@needs_unshare
def test_runs_without_network(pyz_server):
    assert pyz_server.network_interfaces() == {"lo"}


def test_the_first_start_unpacks_into_the_user_cache_and_a_second_does_not(pyz_server, start_pyz,
                                                                           home):
    (folder,) = native_folders(home / ".cache" / "offgrid")
    assert UNPACKING in pyz_server.log()
    unpacked = folder.stat()
    (second,) = start_pyz()
    assert UNPACKING not in second.log()
    assert native_folders(home / ".cache" / "offgrid") == [folder]
    assert (folder.stat().st_ino, folder.stat().st_mtime_ns) == (unpacked.st_ino,
                                                                 unpacked.st_mtime_ns)


def test_two_processes_starting_at_once_both_come_up(start_pyz, tmp_path):
    first, second = start_pyz(2, OFFGRID_CACHE=str(tmp_path))
    assert first.get("/health")[0] == second.get("/health")[0] == 200
    assert len(native_folders(tmp_path)) == 1, "one folder, no half-unpacked leftovers"


def test_converts_an_embedding_model_the_same_as_the_checkout_does(pyz, bare_python, tmp_path):
    """offgrid convert from the .pyz: gguf and PyYAML come vendored, numpy native. Its own HOME,
    so that the servers' first start above still unpacks."""
    fetched = fetch_models()
    output = tmp_path / "minilm.gguf"
    result = subprocess.run([bare_python, pyz, "convert", fetched.embedding_source(),
                             "--output", output], capture_output=True, text=True, timeout=300,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert digest == fetched.MODELS["embedding"].sha256


def test_migrates_a_postgresql_database_with_the_driver_it_carries(pyz, bare_python, tmp_path,
                                                                  database_url):
    """pg8000 and what it needs come vendored: the bare Python has no driver of its own."""
    result = subprocess.run([bare_python, pyz, "db", "migrate", database_url],
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_offgrid_data_is_the_home_unless_offgrid_home_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFGRID_HOME", "/elsewhere")
    _zipapp.use_portable_home(tmp_path)
    assert os.environ["OFFGRID_HOME"] == "/elsewhere"
    monkeypatch.delenv("OFFGRID_HOME")
    _zipapp.use_portable_home(tmp_path / "missing")
    assert "OFFGRID_HOME" not in os.environ
    _zipapp.use_portable_home(tmp_path)
    assert os.environ["OFFGRID_HOME"] == str(tmp_path)


def test_the_cache_folder_name_follows_the_native_contents(tmp_path):
    def key(library: bytes, code: str) -> str:
        archive = tmp_path / "offgrid.pyz"
        with zipfile.ZipFile(archive, "w") as pyz:
            pyz.writestr("native/libllama.so", library)
            pyz.writestr("offgrid/cli.py", code)
        with zipfile.ZipFile(archive) as pyz:
            return _zipapp.content_key(_zipapp.native_members(pyz))

    assert key(b"one", "a") == key(b"one", "b") != key(b"two", "a")


def test_another_python_is_told_which_to_use():
    library = zipfile.ZipInfo("native/numpy/_core/_umath.cpython-399-x86_64-linux-gnu.so")
    with pytest.raises(SystemExit, match="built for another Python"):
        _zipapp.check_interpreter([library])

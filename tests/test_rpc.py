"""Models spread over llama.cpp RPC workers (docs/scale-out.md), on loopback: two real rpc-server
processes, a real OffGrid server given them with `--rpc`, and the same answers as a server that
has the model all to itself; a worker nobody answers for stops the server at its start, and one
gone by the time a model loads fails that load with a 503."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.http import assert_error, chat_body, get, post
from support.models import CHAT_MODEL
from support.servers import free_port
from support.waiting import wait_until

# scripts/setup.sh compiles it beside the venv's python.
RPC_SERVER = Path(sys.executable).parent / "rpc-server"

pytestmark = pytest.mark.skipif(
    not RPC_SERVER.exists() and not os.environ.get("CI"),
    reason=f"{RPC_SERVER} is not built (scripts/setup.sh builds it; in CI this test must run)")

# One line per buffer a client has the worker allocate (GGML_RPC_DEBUG's log).
ALLOCATION = re.compile(r"\[alloc_buffer\] device: \d+, size: (\d+) -> remote_ptr")
SERVER_FLAGS = ("--model", CHAT_MODEL, "--parallel", "2", "--max-context", "512")
PROMPTS = ("Name three colours.", "What is the capital of France?")


class Worker:
    """`rpc-server` on a free loopback port, its cache off and its log (debug on) in a file."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log_path = folder / f"rpc-server-{self.port}.log"
        env = {**os.environ, "GGML_RPC_DEBUG": "1", "LLAMA_CACHE": str(folder / "cache")}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(RPC_SERVER), "--host", "127.0.0.1", "--port", str(self.port),
                 "--threads", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._listening, 30, message=f"rpc-server on port {self.port}")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"rpc-server exited with {self.process.returncode}: {self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except OSError:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def allocated(self) -> int:
        """Bytes of buffers its clients had it allocate, model weights among them."""
        return sum(int(size) for size in ALLOCATION.findall(self.log()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rpc")
    started = [Worker(folder), Worker(folder)]
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def spread(start_module_server, workers):
    """A server whose model is spread over both workers and this machine."""
    return start_module_server(*SERVER_FLAGS, "--rpc",
                               ",".join(worker.endpoint for worker in workers))


@pytest.fixture(scope="module")
def alone(start_module_server):
    return start_module_server(*SERVER_FLAGS)


def greedy_answers(url: str) -> list[str]:
    answers = []
    for prompt in PROMPTS:
        status, _, body = post(url + "/v1/chat/completions",
                               chat_body(prompt, max_tokens=32, temperature=0))
        assert status == 200, body
        answers.append(body["choices"][0]["message"]["content"])
    return answers


def test_a_spread_model_answers_as_it_does_on_one_machine(spread, alone):
    # The workers run the same CPU kernels of the same llama.cpp build on their layers, and
    # activations cross the wire as they are: greedy decoding picks the same tokens.
    answers = greedy_answers(spread.url)
    assert all(answers)
    assert answers == greedy_answers(alone.url)


def test_each_worker_holds_part_of_the_model(spread, workers):
    # `spread` is healthy once its model is loaded, so the workers hold their parts by now.
    for worker in workers:
        # SmolLM2-135M Q4_1 is ~90 MB; each of three devices takes a third of its layers.
        assert worker.allocated() > 10 << 20, worker.log()[-2000:]
        assert re.search(rf"RPC device RPC\d at {worker.endpoint}: \d+ MiB free", spread.log())


def test_a_worker_nobody_answers_for_stops_the_server_at_start(start_server):
    missing = f"127.0.0.1:{free_port()}"
    server = start_server(*SERVER_FLAGS, "--rpc", missing, wait=False)
    assert server.process.wait(timeout=60) == 2
    assert f"offgrid: The RPC worker {missing} cannot be used: Connection refused" in server.log()


def test_a_worker_gone_before_a_load_fails_it_with_503(start_server, tmp_path):
    worker = Worker(tmp_path)
    server = start_server(*SERVER_FLAGS, "--rpc", worker.endpoint)
    status, _, body = post(server.url + "/api/generate", {"model": CHAT_MODEL, "keep_alive": 0})
    assert status == 200, body
    assert get(f"{server.url}/v1/models/{CHAT_MODEL}")[2]["loaded"] is False
    worker.stop()
    status, _, body = post(server.url + "/v1/chat/completions", chat_body("Hi", max_tokens=4))
    error = assert_error(status, body, 503, "rpc_worker_unreachable")
    assert f"The RPC worker {worker.endpoint} cannot be used: Connection refused" in \
        error["message"]
    assert server.process.poll() is None and get(server.url + "/health")[0] == 200

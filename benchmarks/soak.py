"""Soak: many clients against one OffGrid server for a fixed time, hanging up at random and
sending attack inputs in between; then a check that nothing broke, leaked or went uncharged.

    .venv/bin/python benchmarks/soak.py --seconds 300 --clients 16 --report  # docs/benchmarks.md
    .venv/bin/python benchmarks/soak.py --seconds 20 --clients 8             # CI's short form

It starts its own multi-user server in a fresh OFFGRID_HOME, with a user whose API key all the
clients use. The run passes (exit status 0) when:
- every request its client did not cut short completed, with usage that adds up;
- every attack got its documented error, in the API's error shape;
- once idle, no slot is busy and no request is queued;
- the server's memory did not grow (after a warm-up) by more than MEMORY_GROWTH_LIMIT;
- the user was charged exactly the tokens the engine read and generated (/metrics), cut streams
  included;
- the process never died or restarted, /health answered 200 throughout, and the log holds no
  traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

import fetch_models  # noqa: E402
from report import with_section  # noqa: E402
from servers import Server  # noqa: E402

ADMIN = ("admin", "soak-admin-password")
MEMORY_GROWTH_LIMIT = 64 * 2 ** 20  # bytes of RSS, from the end of the warm-up to the end
WARM_UP_SHARE = 0.25  # of the run, before memory is measured
COUNTING = "1, 2, 3, 4,"
SCHEMA = {"type": "object", "required": ["word", "count"],
          "properties": {"word": {"type": "string", "maxLength": 20},
                         "count": {"type": "integer", "minimum": 0, "maximum": 9}}}
SOAK_HEADING = "## Soak"


# -- HTTP -----------------------------------------------------------------------------------------

class Api:
    def __init__(self, port: int, key: str, model: str, embedding_model: str):
        self.port, self.key = port, key
        self.model, self.embedding_model = model, embedding_model

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def headers(self) -> dict:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}

    def call(self, method: str, path: str, body=None, headers: dict | None = None):
        """(status, parsed JSON or text)."""
        connection = self.connection()
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body)
            connection.request(method, path, data, {**self.headers(), **(headers or {})})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode("utf-8", "replace")


def error_shaped(body) -> bool:
    return (isinstance(body, dict) and set(body) == {"error"}
            and set(body["error"]) == {"message", "type", "code", "param"})


def events_of(response) -> list:
    """The `data:` events of an SSE response, "[DONE]" last."""
    events = []
    for raw in response:
        line = raw.decode("utf-8", "replace").strip()
        if line.startswith("data: "):
            events.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
    return events


# -- what the clients do --------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0
    completion_tokens: int = 0
    embedding_tokens: int = 0


def chat(api: Api, rng: random.Random) -> Outcome:
    max_tokens = rng.randint(4, 40)
    status, body = api.call("POST", "/v1/chat/completions", {
        "model": api.model, "max_tokens": max_tokens, "temperature": 0.8,
        "seed": rng.randrange(9999),
        "messages": [{"role": "user", "content": rng.choice(
            ["Say hello.", "Name a colour.", "What is two plus two?", "Tell me about rain."])}]})
    if status != 200:
        return Outcome("chat", False, f"{status}: {str(body)[:200]}")
    usage, choice = body["usage"], body["choices"][0]
    ok = (usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
          and 0 < usage["completion_tokens"] <= max_tokens
          and choice["finish_reason"] in ("stop", "length")
          and (choice["finish_reason"] == "stop" or usage["completion_tokens"] == max_tokens)
          and isinstance(choice["message"]["content"], str))
    return Outcome("chat", ok, "" if ok else json.dumps(body)[:300],
                   completion_tokens=usage["completion_tokens"])


def stream(api: Api, rng: random.Random) -> Outcome:
    max_tokens = rng.randint(4, 48)
    connection = api.connection()
    try:
        connection.request("POST", "/v1/completions", json.dumps({
            "model": api.model, "prompt": rng.choice([COUNTING, "The sea is", "Once upon a"]),
            "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True},
            "temperature": 0.5}), api.headers())
        response = connection.getresponse()
        if response.status != 200:
            return Outcome("stream", False, f"{response.status}: {response.read()[:200]!r}")
        events = events_of(response)
    finally:
        connection.close()
    usage = events[-2].get("usage") if len(events) >= 2 else None
    ok = (events[-1:] == ["[DONE]"] and usage is not None
          and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
          and 0 < usage["completion_tokens"] <= max_tokens
          and any(c["finish_reason"] for e in events[:-2] for c in e["choices"]))
    return Outcome("stream", ok, "" if ok else str(events[-3:])[:300],
                   completion_tokens=usage["completion_tokens"] if usage else 0)


def structured(api: Api, rng: random.Random) -> Outcome:
    status, body = api.call("POST", "/v1/chat/completions", {
        "model": api.model, "max_tokens": 60, "temperature": 1.0, "seed": rng.randrange(9999),
        "messages": [{"role": "user", "content": "Give a word and a digit as JSON."}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "pair", "schema": SCHEMA}}})
    if status != 200:
        return Outcome("structured", False, f"{status}: {str(body)[:200]}")
    choice = body["choices"][0]
    try:
        value = json.loads(choice["message"]["content"], strict=True)
        ok = (choice["finish_reason"] == "length" or (
            isinstance(value["word"], str) and len(value["word"]) <= 20
            and isinstance(value["count"], int) and 0 <= value["count"] <= 9))
    except (ValueError, KeyError, TypeError):
        ok = choice["finish_reason"] == "length"  # an answer cut short is not JSON yet
    return Outcome("structured", ok, "" if ok else choice["message"]["content"][:200],
                   completion_tokens=body["usage"]["completion_tokens"])


def embed(api: Api, rng: random.Random) -> Outcome:
    texts = [f"text {rng.randrange(1000)} about {rng.choice(['rain', 'maps', 'bread'])}"
             for _ in range(rng.randint(1, 3))]
    status, body = api.call("POST", "/v1/embeddings", {"model": api.embedding_model,
                                                       "input": texts})
    ok = status == 200 and len(body["data"]) == len(texts) and all(
        len(item["embedding"]) == 384 for item in body["data"])
    return Outcome("embed", ok, "" if ok else str(body)[:200],
                   embedding_tokens=body["usage"]["total_tokens"] if ok else 0)


def hang_up(api: Api, rng: random.Random) -> Outcome:
    """A stream the client leaves after a few events."""
    connection = api.connection()
    connection.request("POST", "/v1/completions", json.dumps({
        "model": api.model, "prompt": COUNTING, "max_tokens": 300, "stream": True}),
        api.headers())
    response = connection.getresponse()
    wanted, seen = rng.randint(1, 12), 0
    while response.status == 200 and seen < wanted:
        line = response.readline()
        if not line:
            break
        seen += line.startswith(b"data: ")
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    return Outcome("hang_up", response.status == 200, f"status {response.status}")


def hang_up_early(api: Api, rng: random.Random) -> Outcome:
    """A request the client leaves before any answer."""
    connection = api.connection()
    connection.request("POST", "/v1/chat/completions", json.dumps({
        "model": api.model, "max_tokens": 200,
        "messages": [{"role": "user", "content": "Write a long story."}]}), api.headers())
    time.sleep(rng.uniform(0, 0.5))  # part of the load's shape: leave at a random moment
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    return Outcome("hang_up_early", True)


def _costly(schema) -> dict:
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": schema}}}


def attacks(api: Api) -> list[tuple[str, str, bytes, int]]:
    """(name, path, body, expected status): the reproductions of the hardening issue that a
    client can send as a request body."""
    def chat_with(**fields) -> bytes:
        return json.dumps({"model": api.model, "max_tokens": 5,
                           "messages": [{"role": "user", "content": "hi"}], **fields}).encode()

    def chat_saying(text: str) -> bytes:
        return json.dumps({"model": api.model,
                           "messages": [{"role": "user", "content": text}]}).encode()

    return [
        ("lone surrogate", "/v1/chat/completions", chat_saying("hi \ud800"), 400),
        ("lone surrogate (completion)", "/v1/completions",
         json.dumps({"model": api.model, "prompt": "a\udfff"}).encode(), 400),
        ("lone surrogate (embedding)", "/v1/embeddings",
         json.dumps({"model": api.embedding_model, "input": "\ud800"}).encode(), 400),
        ("maxLength 30000", "/v1/chat/completions",
         chat_with(**_costly({"type": "string", "maxLength": 30000})), 400),
        ("maxItems 30000", "/v1/chat/completions",
         chat_with(**_costly({"type": "array", "items": {}, "maxItems": 30000})), 400),
        ("enum of 20000", "/v1/chat/completions",
         chat_with(**_costly({"enum": [str(i) for i in range(20000)]})), 400),
        ("minLength 10^7", "/v1/chat/completions",
         chat_with(**_costly({"type": "string", "minLength": 10 ** 7})), 400),
        ("$ref loop", "/v1/chat/completions",
         chat_with(**_costly({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})), 400),
        ("tool maxLength 30000", "/v1/chat/completions", chat_with(tools=[{
            "type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"x": {"type": "string", "maxLength": 30000}}}}}]),
         400),
        ("nested repetitions", "/v1/chat/completions",
         chat_with(**_costly({"type": "string", "pattern": "^(a{1,50}){1,50}$"})), 400),
        ("100k-deep JSON", "/v1/chat/completions", b"[" * 100000 + b"]" * 100000, 400),
        ("5000-digit integer", "/v1/chat/completions",
         b'{"model": "x", "max_tokens": ' + b"9" * 5000 + b"}", 400),
        ("NaN", "/v1/chat/completions", chat_with()[:-1] + b', "temperature": NaN}', 400),
        ("keep_alive 1e999", "/v1/chat/completions",
         chat_with()[:-1] + b', "keep_alive": 1e999}', 400),
        ("logit_bias superscript", "/v1/chat/completions", chat_with(logit_bias={"\u00b2": 1}),
         400),
        ("malformed JSON", "/v1/chat/completions", b'{"model": ', 400),
        ("unknown model", "/v1/chat/completions",
         json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
         404),
    ]


def raw_attacks(api: Api) -> list[tuple[str, bytes, int]]:
    """(name, bytes, expected status): the hardening issue's attacks on HTTP itself."""
    key = f"Authorization: Bearer {api.key}\r\n".encode()
    post = b"POST /v1/tokenize HTTP/1.1\r\nHost: localhost\r\n" + key
    body = json.dumps({"model": api.model, "content": "hi"}).encode()
    return [
        ("two Content-Lengths", post + b"Content-Length: %d\r\nContent-Length: 0\r\n\r\n"
         % len(body) + body, 400),
        ("Content-Length and Transfer-Encoding", post + b"Content-Length: %d\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n" % len(body) + body, 400),
        ("Content-Length 1_0", post + b"Content-Length: 1_0\r\n\r\n" + body, 400),
        ("a header without a colon", post + b"Junk\r\n\r\n", 400),
        ("HTTP/1.1 without Host", b"GET /health HTTP/1.1\r\n\r\n", 400),
        ("a garbage request line", b"\x16\x03\x01 hello\r\n\r\n", 400),
        ("a rebinding Host", b"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n" + key
         + b"\r\n", 403),
        ("an oversized body", post + b"Content-Length: %d\r\n\r\n" % (64 * 2 ** 20), 413),
    ]


def attack(api: Api, rng: random.Random) -> Outcome:
    if rng.random() < 0.3:
        name, data, expected = rng.choice(raw_attacks(api))
        status, answer = _exchange(api.port, data)
    else:
        name, path, body, expected = rng.choice(attacks(api))
        status, answer = api.call("POST", path, body)
    ok = status == expected and error_shaped(answer)
    return Outcome("attack", ok, "" if ok else f"{name}: {status} {str(answer)[:200]}")


def _exchange(port: int, data: bytes) -> tuple[int, object]:
    """Send raw bytes on a new connection; the status and JSON body of the one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = sock.makefile("rb").read()
    head, _, body = reply.partition(b"\r\n\r\n")
    try:
        return int(head.split()[1]), json.loads(body)
    except (IndexError, ValueError):
        return 0, reply[:200]


ACTIONS = [(chat, 4), (stream, 4), (structured, 1), (embed, 1), (hang_up, 2),
           (hang_up_early, 1), (attack, 3)]


def client(api: Api, deadline: float, seed: int, outcomes: list) -> None:
    rng = random.Random(seed)
    actions, weights = zip(*ACTIONS, strict=True)
    while time.monotonic() < deadline:
        action = rng.choices(actions, weights)[0]
        started = time.monotonic()
        try:
            outcome = action(api, rng)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            outcome = Outcome(action.__name__, False, f"{type(error).__name__}: {error}")
        outcome.seconds = time.monotonic() - started
        outcomes.append(outcome)


# -- the server's side -----------------------------------------------------------------------------

class Watcher(threading.Thread):
    """Samples the server's memory and /health every second while the soak runs."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []  # (monotonic time, RSS bytes)
        self.unhealthy: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.samples.append((time.monotonic(), self.server.rss()))
            try:
                with urllib.request.urlopen(self.server.url + "/health", timeout=10) as answer:
                    if answer.status != 200:
                        self.unhealthy.append(str(answer.status))
            except OSError as error:
                self.unhealthy.append(str(error))


def metric_totals(api: Api, token: str, names: tuple[str, ...]) -> dict[str, float]:
    status, text = api.call("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, text
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def wait_idle(api: Api, token: str, timeout: float = 60) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        gauges = metric_totals(api, token, ("offgrid_slots_busy", "offgrid_queue_depth"))
        if not any(gauges.values()) or time.monotonic() > deadline:
            return gauges
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(models: Path, model: str, home: Path, slots: int) -> Server:
    port = free_port()
    return Server("OffGrid", [sys.executable, "-m", "offgrid", "serve", "--port", str(port),
                              "--models-dir", str(models), "--model", model, "--parallel",
                              str(slots), "--max-context", "1024", "--log-level", "warning"],
                  port, "/health", env={
                      "OFFGRID_HOME": str(home), "OFFGRID_MULTI_USER": "true",
                      "OFFGRID_ADMIN_PASSWORD": ADMIN[1], "OFFGRID_USER_REQUESTS_PER_MINUTE": "0",
                      "OFFGRID_USER_TOKENS_PER_DAY": str(10 ** 12),
                      "OFFGRID_MAX_BODY_BYTES": str(16 * 2 ** 20),
                      # Kept KV states fill their memory tier, by design; a small one fills
                      # within the warm-up and spills to disk from then on, so that what grows
                      # after it is not the cache.
                      "OFFGRID_KV_CACHE_RAM_MB": "16"})


def make_user(server: Server) -> tuple[str, str, int]:
    """(admin's token, the soak user's API key, their id)."""
    anonymous = Api(server.port, "", "", "")
    _, login = anonymous.call("POST", "/v1/auth/login", {"username": ADMIN[0],
                                                         "password": ADMIN[1]})
    admin = Api(server.port, login["access_token"], "", "")
    _, user = admin.call("POST", "/v1/users", {"username": "soak", "password": "soak-password",
                                               "role": "user"})
    _, key = admin.call("POST", f"/v1/users/{user['id']}/api-keys", {"name": "soak"})
    return login["access_token"], key["key"], user["id"]


# -- the run ---------------------------------------------------------------------------------------

def soak(seconds: float, clients: int, slots: int) -> dict:
    files = fetch_models.ensure_all()
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        models.mkdir()
        for path in (files["starter"], files["embedding"]):
            (models / path.name).symlink_to(path)
        server = start(models, files["starter"].stem, Path(folder) / "home", slots)
        try:
            return _measure(server, files, seconds, clients)
        finally:
            server.stop()


def _measure(server: Server, files: dict, seconds: float, clients: int) -> dict:
    admin_token, key, user_id = make_user(server)
    api = Api(server.port, key, files["starter"].stem, files["embedding"].stem)
    pid = server.process.pid
    counted = ("offgrid_prompt_tokens_total", "offgrid_generated_tokens_total")
    before = metric_totals(api, admin_token, counted)
    watcher = Watcher(server)
    watcher.start()
    outcomes: list[Outcome] = []
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(api, started + seconds, seed, outcomes))
               for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    leaked = wait_idle(api, admin_token)
    watcher.stopping.set()
    watcher.join()
    after = metric_totals(api, admin_token, counted)
    engine_tokens = sum(after.values()) - sum(before.values())
    embedded = sum(o.embedding_tokens for o in outcomes)
    charged = Api(server.port, admin_token, "", "").call(
        "GET", f"/v1/users/{user_id}")[1]["tokens_used_today"]
    warm = [rss for t, rss in watcher.samples if t >= started + WARM_UP_SHARE * seconds]
    log = server.log_text()
    failures = [o for o in outcomes if not o.ok]
    kinds = Counter(o.kind for o in outcomes)
    generated = after["offgrid_generated_tokens_total"] - before["offgrid_generated_tokens_total"]
    latencies = sorted(o.seconds for o in outcomes if o.kind in ("chat", "stream") and o.ok)
    report = {
        "asked_seconds": seconds, "seconds": round(wall, 1), "clients": clients,
        "requests": len(outcomes),
        "by_kind": dict(sorted(kinds.items())), "failures": len(failures),
        "failure_examples": [f"{o.kind}: {o.detail}" for o in failures[:5]],
        "generated_tokens": int(generated), "tokens_per_second": round(generated / wall, 1),
        "request_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "request_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 2)
        if latencies else None,
        "charged_tokens": charged, "engine_tokens": int(engine_tokens + embedded),
        "leaked": {name: value for name, value in leaked.items() if value},
        "rss_start_mb": round(warm[0] / 2 ** 20) if warm else None,
        "rss_end_mb": round(warm[-1] / 2 ** 20) if warm else None,
        "unhealthy": watcher.unhealthy[:5],
        "restarted": server.process.poll() is not None or server.process.pid != pid,
        "log_problems": [line for line in log.splitlines() if any(
            sign in line for sign in ("Traceback", "Fatal Python error", "crashed"))][:5],
    }
    memory_grew = bool(warm) and max(warm[-3:]) - min(warm[:3]) > MEMORY_GROWTH_LIMIT
    report["memory_grew"] = memory_grew
    report["passed"] = (not failures and not report["leaked"] and not memory_grew
                        and charged == report["engine_tokens"] and not report["unhealthy"]
                        and not report["restarted"] and not report["log_problems"])
    return report


def markdown(report: dict) -> str:
    kinds = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in
                      report["by_kind"].items())
    return "\n".join([
        f"`benchmarks/soak.py --seconds {report['asked_seconds']:g} --clients "
        f"{report['clients']}` ({report['seconds']:.0f} s with the last requests' ends):"
        " clients chat, stream, ask for structured output and embeddings, hang up mid-stream "
        "or before the answer, and send the hardening issue's attack inputs, all at once "
        "against one multi-user server (4 slots); CI runs a 20-second form of it "
        "(`tests/test_soak.py`).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests | {report['requests']} ({kinds}) |",
        f"| failed requests (not cut short by their client, or attacks answered otherwise "
        f"than documented) | {report['failures']} |",
        f"| tokens generated | {report['generated_tokens']} "
        f"({report['tokens_per_second']} tokens/s) |",
        f"| chat and stream request p50 / p99 s | {report['request_p50_s']} / "
        f"{report['request_p99_s']} |",
        f"| tokens charged to the user / read and generated by the engine | "
        f"{report['charged_tokens']} / {report['engine_tokens']} |",
        f"| slots busy and requests queued once idle | {sum(report['leaked'].values()):.0f} |",
        f"| resident memory after the warm-up, at the end MB | {report['rss_start_mb']}, "
        f"{report['rss_end_mb']} |",
        f"| crashes, restarts, unhealthy /health, tracebacks in the log | "
        f"{int(report['restarted'])}, {int(report['restarted'])}, {len(report['unhealthy'])}, "
        f"{len(report['log_problems'])} |",
        f"| passed | {'yes' if report['passed'] else '**no**'} |",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--report", action="store_true",
                        help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    report = soak(args.seconds, args.clients, args.slots)
    print(json.dumps(report, indent=2))
    if args.report:
        page = ROOT / "docs" / "benchmarks.md"
        page.write_text(with_section(page.read_text(), SOAK_HEADING, markdown(report)))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

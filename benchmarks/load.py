"""A streaming load generator: concurrent clients against an OpenAI-compatible server, timing
each request's first token, the gaps between tokens, and the whole request."""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Timing:
    started: float
    first_token: float | None = None
    finished: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float:
        return self.first_token - self.started

    @property
    def duration(self) -> float:
        return self.finished - self.started

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.chunk_times)]


def stream_once(url: str, path: str, body: dict, timeout: float = 600) -> Timing:
    """One streaming request; tokens counted from the usage chunk, else one per content chunk."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    timing = Timing(started=time.perf_counter())
    try:
        connection.request("POST", path, json.dumps({**body, "stream": True,
                                                     "stream_options": {"include_usage": True}}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            timing.error = f"HTTP {response.status}: {response.read()[:200]!r}"
            return timing
        usage_tokens = None
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            if event.get("usage"):
                usage_tokens = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                text = choice.get("text") or (choice.get("delta") or {}).get("content")
                if text:
                    now = time.perf_counter()
                    timing.first_token = timing.first_token or now
                    timing.chunk_times.append(now)
                    timing.tokens += 1
        timing.tokens = usage_tokens or timing.tokens
    except (OSError, http.client.HTTPException, ValueError) as error:
        timing.error = str(error)
    finally:
        timing.finished = time.perf_counter()
        connection.close()
    return timing


@dataclass
class LoadResult:
    concurrency: int
    timings: list[Timing]
    wall: float

    @property
    def ok(self) -> list[Timing]:
        return [t for t in self.timings if t.error is None and t.first_token is not None]

    @property
    def errors(self) -> int:
        return len(self.timings) - len(self.ok)

    def summary(self) -> dict:
        ok = self.ok
        durations = sorted(t.duration for t in ok)
        gaps = [g for t in ok for g in t.gaps]
        return {
            "concurrency": self.concurrency, "requests": len(self.timings),
            "errors": self.errors,
            "tokens_per_second": sum(t.tokens for t in ok) / self.wall if self.wall else 0,
            "ttft_p50_ms": 1000 * statistics.median(t.ttft for t in ok) if ok else None,
            "itl_mean_ms": 1000 * statistics.fmean(gaps) if gaps else None,
            "request_p50_s": _percentile(durations, 50),
            "request_p99_s": _percentile(durations, 99),
        }


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return values[index]


def run_load(url: str, path: str, make_body, concurrency: int, requests_per_client: int
             ) -> LoadResult:
    """`concurrency` clients, each sending `requests_per_client` requests one after another;
    `make_body(client, i)` gives each request's body."""
    timings: list[Timing] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        for i in range(requests_per_client):
            timing = stream_once(url, path, make_body(number, i))
            with lock:
                timings.append(timing)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(concurrency, timings, time.perf_counter() - started)

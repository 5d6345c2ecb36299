"""Counters, gauges and histograms, rendered in Prometheus' text exposition format.

Stdlib only. Gauges are read from the live server when scraped, so they are never stale.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

Labels = tuple[tuple[str, str], ...]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _labels(values: dict) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in values.items()))


def _format(labels: Labels, extra: dict | None = None) -> str:
    pairs = list(labels) + sorted((extra or {}).items())
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str):
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        yield from self._samples()


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str):
        super().__init__(name, help_text)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def total(self) -> float:
        with self._lock:
            return sum(self._values.values())

    def _samples(self):
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            yield f"{self.name}{_format(labels)} {_number(value)}"


class Gauge(_Metric):
    """Read when scraped: `read` returns {labels dict as a tuple of pairs: value}."""
    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]):
        super().__init__(name, help_text)
        self._read = read

    def _samples(self):
        for labels, value in sorted(self._read().items()):
            yield f"{self.name}{_format(labels)} {_number(value)}"


class ReadCounter(Gauge):
    """A counter kept elsewhere (such as the KV cache's hits), read when scraped."""
    kind = "counter"


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = DURATION_BUCKETS):
        super().__init__(name, help_text)
        self._buckets = buckets
        self._series: dict[Labels, list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, value: float, **labels) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._series.setdefault(key, [0] * len(self._buckets) + [0.0, 0])
            index = bisect.bisect_left(self._buckets, value)  # the first bound >= value
            if index < len(self._buckets):
                series[index] += 1
            series[-2] += value
            series[-1] += 1

    def _samples(self):
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for labels, series in items:
            cumulative = 0
            for bound, count in zip(self._buckets, series, strict=False):  # then sum, count
                cumulative += count
                yield f"{self.name}_bucket{_format(labels, {'le': _number(bound)})} {cumulative}"
            yield f"{self.name}_bucket{_format(labels, {'le': '+Inf'})} {series[-1]}"
            yield f"{self.name}_sum{_format(labels)} {_number(series[-2])}"
            yield f"{self.name}_count{_format(labels)} {series[-1]}"


class Metrics:
    """The server's instruments, and the text a scrape of /metrics returns."""

    def __init__(self):
        self._all: list[_Metric] = []
        self.requests = self._add(Counter(
            "offgrid_requests_total", "HTTP requests answered, by route, method and status"))
        self.request_seconds = self._add(Histogram(
            "offgrid_request_duration_seconds", "Time to answer a request, by route"))
        self.ttft_seconds = self._add(Histogram(
            "offgrid_time_to_first_token_seconds",
            "From a generation request's arrival to its first token, by model"))
        self.prompt_tokens = self._add(Counter(
            "offgrid_prompt_tokens_total", "Prompt tokens of finished generations, by model"))
        self.cached_prompt_tokens = self._add(Counter(
            "offgrid_prompt_tokens_cached_total",
            "Prompt tokens found in the prefix cache and not evaluated again, by model"))
        self.prefix_cache_hits = self._add(Counter(
            "offgrid_prefix_cache_hits_total",
            "Generations that reused part of their prompt from the prefix cache, by model"))
        self.generated_tokens = self._add(Counter(
            "offgrid_generated_tokens_total", "Tokens generated, by model"))
        self.drafted_tokens = self._add(Counter(
            "offgrid_draft_tokens_total",
            "Tokens drafted ahead by speculative decoding and checked, by model and source "
            "(prompt: the request's own history; draft_model)"))
        self.accepted_draft_tokens = self._add(Counter(
            "offgrid_draft_tokens_accepted_total",
            "Drafted tokens that were what the model generated, and kept, by model and "
            "source"))
        self.rate_limited = self._add(Counter(
            "offgrid_rate_limited_requests_total", "Requests refused with 429, by route"))
        self.kb_search_seconds = self._add(Histogram(
            "offgrid_kb_search_seconds", "Time to search the knowledge base, query embedding "
            "included"))
        self.scheduler_failures = self._add(Counter(
            "offgrid_scheduler_failures_total",
            "Scheduler loops that stopped on an internal error (each restarts on the model's "
            "next request), by model"))

    def _add(self, metric):
        self._all.append(metric)
        return metric

    def gauge(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]) -> None:
        self._add(Gauge(name, help_text, read))

    def read_counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._add(ReadCounter(name, help_text, lambda: {(): read()}))

    def render(self) -> str:
        return "\n".join(line for metric in self._all for line in metric.render()) + "\n"

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.inc(route=route, method=method, status=status)
        self.request_seconds.observe(seconds, route=route)
        if status == 429:
            self.rate_limited.inc(route=route)

    def record_generation(self, model: str, finished) -> None:
        """A generation ended (engine Finished event)."""
        self.ttft_seconds.observe(finished.prompt_ms / 1000, model=model)
        self.prompt_tokens.inc(finished.prompt_tokens, model=model)
        self.generated_tokens.inc(finished.completion_tokens, model=model)
        for source, drafted, accepted in (
                ("prompt", finished.drafted_tokens - finished.model_drafted_tokens,
                 finished.accepted_tokens - finished.model_accepted_tokens),
                ("draft_model", finished.model_drafted_tokens, finished.model_accepted_tokens)):
            if drafted:
                self.drafted_tokens.inc(drafted, model=model, source=source)
                self.accepted_draft_tokens.inc(accepted, model=model, source=source)
        if finished.cached_tokens:
            self.cached_prompt_tokens.inc(finished.cached_tokens, model=model)
            self.prefix_cache_hits.inc(model=model)

    def record_scheduler_failure(self, model: str, error: Exception) -> None:
        self.scheduler_failures.inc(model=model)


def labelled(values: dict[str, float], label: str) -> dict[Labels, float]:
    """{"model-a": 3} -> {(("model", "model-a"),): 3}, for gauge readers."""
    return {((label, key),): value for key, value in values.items()}

"""What a request to the engine is, and what it gets back: a GenerationRequest goes to a model's
scheduler (scheduler.py), which answers through the caller's queue with a Started, then Text
pieces, then one Finished or Failed; the Generation it returns is the caller's handle on it."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

from .adapter_turns import NO_ADAPTERS, AdapterSet
from .sampling import SamplingParams, TokenLogprob


@dataclass
class GenerationRequest:
    """A raw `prompt`, as text (with a `suffix`: fill in the middle) or as tokens, or chat
    `messages` as (role, content) pairs rendered with the model's template."""
    prompt: str | list[int] | None = None
    messages: list[tuple[str, str]] | None = None
    suffix: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: none; n: each token's logprob and the n likeliest
    adapters: AdapterSet = NO_ADAPTERS  # LoRA adapters loaded for the model (adapter_set)


@dataclass(frozen=True)
class Started:
    prompt_tokens: int


@dataclass(frozen=True)
class Text:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()  # of the tokens this text completes


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    prompt_ms: float
    generation_ms: float
    stop_sequence: str | None = None  # the request's stop string that ended it, if one did
    drafted_tokens: int = 0  # tokens guessed ahead (speculative.py) and fed to be checked
    accepted_tokens: int = 0  # of those, the ones that were right and kept
    model_drafted_tokens: int = 0  # of the two, those guessed by the draft model
    model_accepted_tokens: int = 0


@dataclass(frozen=True)
class Failed:
    error: Exception


NOTHING_DONE = Finished("cancelled", 0, 0, 0, 0.0, 0.0)  # cancelled before it had a slot


class Generation:
    """The caller's handle on one submitted request: a way to cancel it, what it has cost so far,
    and whether it has ended. Its events go to the caller's queue as (index, event) pairs, so one
    queue can serve several generations; the last is always one Finished or Failed."""

    def __init__(self, request: GenerationRequest, events: queue.SimpleQueue, index: int):
        self.request = request
        self.index = index
        self.prompt_tokens = 0  # the prompt's length once it had a slot (cached part included)
        self.completion_tokens = 0
        self._events = events
        self._cancelled = threading.Event()
        self._ended = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def wait_ended(self, timeout: float) -> bool:
        """Wait until the scheduler is done with it; False if that took longer than `timeout`."""
        return self._ended.wait(timeout)

    # -- for the scheduler --

    def emit(self, event) -> None:
        self._events.put((self.index, event))

    def mark_ended(self) -> None:
        """The scheduler is done with it: its last event is sent and its slot counted free."""
        self._ended.set()

"""One generation path for every wire format: submit the choices of a request to a model's
scheduler, multiplex their events, cancel them when the caller stops listening, and count what
they cost.

It knows nothing of HTTP. The caller says how to tell that its client left (`caller_gone`) and
where the tokens go (`meter`): every token the engine read or generated for a request is counted,
whether it finished, was cancelled by a hang-up, or was cut short by a shutdown.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from .errors import TooManyChoices
from .requests import Failed, Finished, Generation, GenerationRequest, Started
from .scheduler import Scheduler

POLL_SECONDS = 0.2  # how often a waiting run checks whether its caller is still there
END_WAIT_SECONDS = 30.0  # how long cancelled choices get to end before they are counted as is


class Meter(Protocol):
    def add(self, tokens: int) -> None:
        """Count tokens a request used: its prompts (each once) and everything generated."""


def choices(request: GenerationRequest, n: int) -> list[GenerationRequest]:
    """n choices drawn from one request; choice i draws with seed + i."""
    seed = request.sampling.seed
    return [request if i == 0 or seed is None else dataclasses.replace(
        request, sampling=dataclasses.replace(request.sampling, seed=seed + i))
        for i in range(n)]


def prompt_room(scheduler: Scheduler, messages: list[tuple[str, str]], max_tokens: int | None
                ) -> int:
    """About how many more tokens a prompt of `messages` could take and still fit a slot with
    its answer (a quarter of the slot, unless max_tokens says)."""
    return max(0, prompt_budget(scheduler, max_tokens) - sum(
        message_cost(scheduler, text) for _, text in messages))


def prompt_budget(scheduler: Scheduler, max_tokens: int | None) -> int:
    """About how many tokens of messages a slot takes beside an answer of max_tokens (a
    quarter of the slot when None)."""
    answer = max_tokens if max_tokens is not None else scheduler.ctx_per_slot // 4
    return scheduler.ctx_per_slot - answer - 16


def message_cost(scheduler: Scheduler, text: str) -> int:
    """A message's tokens in a prompt: counted on the vocabulary, with the few the chat
    template adds around each message."""
    return len(scheduler.model.tokenize(text, add_special=False, parse_special=False)) + 8


class Run:
    """The choices of one request, generating side by side on one scheduler. Iterate it for
    (choice index, event) pairs (Text, then one Finished or Failed per choice); closing it, or
    the caller going away, cancels what is still running and counts the cost."""

    def __init__(self, scheduler: Scheduler, requests: list[GenerationRequest], *,
                 per_prompt: int, meter: Meter, caller_gone: Callable[[], bool]):
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._per_prompt = per_prompt  # choices drawn from each prompt, which counts once
        self._meter = meter
        self._caller_gone = caller_gone
        self._next_check = time.monotonic() + POLL_SECONDS
        self._early: list[tuple[int, object]] = []  # events seen while waiting for the start
        self._running = len(requests)
        self._counted = False
        self.prompt_tokens = 0  # the longest prompt's length, known once the run has started
        self._generations: list[Generation] = []
        if len(requests) > scheduler.capacity:  # never possible, however long one waits
            raise TooManyChoices(len(requests), scheduler.capacity)
        try:
            for index, request in enumerate(requests):
                self._generations.append(scheduler.submit(request, self._events, index))
        except BaseException:
            self.close()
            raise

    def started(self) -> bool:
        """Wait until every choice has its prompt read or has ended. Raises the engine's error
        when a choice was refused (so that the caller can answer with an error status, not a
        failed stream); False if the caller left first."""
        waiting = set(range(len(self._generations)))
        try:
            while waiting:
                pair = self._next()
                if pair is None:
                    self.close()
                    return False
                index, event = pair
                if isinstance(event, Failed):
                    raise event.error
                waiting.discard(index)
                if isinstance(event, Started):
                    self.prompt_tokens = max(self.prompt_tokens, event.prompt_tokens)
                else:
                    self._early.append(pair)
        except BaseException:
            self.close()
            raise
        return True

    def __iter__(self) -> Iterator[tuple[int, object]]:
        try:
            yield from self._early
            while self._running:
                pair = self._next()
                if pair is None:
                    return
                if not isinstance(pair[1], Started):
                    yield pair
        finally:
            self.close()

    def _next(self) -> tuple[int, object] | None:
        """The next event of any choice; None once the caller is gone (checked every
        POLL_SECONDS, busy or not)."""
        while True:
            if time.monotonic() >= self._next_check:
                if self._caller_gone():
                    return None
                self._next_check = time.monotonic() + POLL_SECONDS
            try:
                index, event = self._events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self._running -= isinstance(event, (Finished, Failed))
            return index, event

    def close(self) -> None:
        """Cancel the choices still running, wait for them to end, and count what they used."""
        if self._counted:
            return
        self._counted = True
        deadline = time.monotonic() + END_WAIT_SECONDS
        for generation in self._generations:
            generation.cancel()
        for generation in self._generations:
            generation.wait_ended(max(0.0, deadline - time.monotonic()))
        self._meter.add(self._cost())

    def _cost(self) -> int:
        generations = self._generations
        prompts = sum(max(g.prompt_tokens for g in generations[start:start + self._per_prompt])
                      for start in range(0, len(generations), self._per_prompt))
        return prompts + sum(g.completion_tokens for g in generations)

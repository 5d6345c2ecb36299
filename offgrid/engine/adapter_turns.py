"""LoRA adapter sets, and which one has the context.

Adapters apply to a whole llama.cpp context, not to one sequence, so a step decodes only the
requests under one adapter set (adapters and scales), and the sets take turns: the set of the
request decoded longest ago goes next, and keeps the context for up to TURN_STEPS steps while
there is work under it.
"""

from __future__ import annotations

from typing import Protocol

# Switching adapter sets costs llama.cpp far more than a step (measured: 4 requests under two
# sets alternating every step made 14.5 tokens/s, under one set 73.5), so a set keeps the
# context for up to this many steps while other sets wait.
TURN_STEPS = 8

AdapterSet = tuple[tuple[str, float], ...]  # (adapter id, scale), sorted by id; () is the base
NO_ADAPTERS: AdapterSet = ()


def adapter_set(pairs) -> AdapterSet:
    """(adapter id, scale) pairs as one comparable set: an adapter named twice adds its scales
    (B·A·x twice is B·A·x at the sum), and a scale of 0 adds nothing, so it is left out — which
    also puts those requests in the base model's batches."""
    scales: dict[str, float] = {}
    for adapter_id, scale in pairs:
        scales[adapter_id] = scales.get(adapter_id, 0.0) + scale
    return tuple(sorted((a, s) for a, s in scales.items() if s != 0.0))


class Waiting(Protocol):
    """A request as the turns see it."""
    adapters: AdapterSet
    queued_at: float
    last_step: int  # the step that last decoded it; -1: none yet


def next_adapter_set(jobs: list[Waiting]) -> AdapterSet:
    """The adapter set whose turn it is: that of the job decoded longest ago (a new job first),
    the earliest queued among equals."""
    return min(jobs, key=lambda job: (job.last_step, job.queued_at)).adapters


class AdapterTurns:
    """Which adapter set each step decodes; `current` is the one on the context."""

    def __init__(self):
        self.current: AdapterSet = NO_ADAPTERS
        self._steps = 0
        self._in_a_row = 0  # steps the current set has had in a row

    def take(self, jobs: list[Waiting]) -> AdapterSet:
        """The set this step decodes, among the sets of `jobs` (which it stamps as decoded)."""
        adapters = self.current
        if self._in_a_row >= TURN_STEPS or not any(job.adapters == adapters for job in jobs):
            adapters = next_adapter_set(jobs)
        self._in_a_row = self._in_a_row + 1 if adapters == self.current else 1
        self.current = adapters
        self._steps += 1
        for job in jobs:
            if job.adapters == adapters:
                job.last_step = self._steps
        return adapters

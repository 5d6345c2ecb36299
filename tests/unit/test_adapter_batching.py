"""The scheduler's rule for LoRA adapters, below the end-to-end tests in tests/test_lora.py:
adapter sets normalised, one set per step, sets taking turns, the prefix cache kept per set."""

from __future__ import annotations

import queue

from offgrid.engine.adapter_turns import adapter_set, next_adapter_set
from offgrid.engine.requests import Generation, GenerationRequest
from offgrid.engine.sampling import OutputText
from offgrid.engine.scheduler import _Job, _Slot

A = (("a", 1.0),)
B = (("b", 0.5),)


def job(adapters, queued_at: float = 0.0, prompt=(1, 2, 3), last_step: int = -1) -> _Job:
    request = GenerationRequest(prompt=list(prompt), adapters=adapters)
    return _Job(Generation(request, queue.SimpleQueue(), 0), list(prompt), 8, queued_at,
                sampler=None, output=OutputText([]), last_step=last_step)


def test_an_adapter_set_is_sorted_merged_and_leaves_out_scale_zero():
    assert adapter_set([("b", 0.5), ("a", 1.0)]) == (("a", 1.0), ("b", 0.5))
    assert adapter_set([("a", 0.25), ("a", 0.75)]) == (("a", 1.0),)
    assert adapter_set([("a", 0.0), ("b", 1.0), ("b", -1.0)]) == ()


def test_the_set_decoded_longest_ago_goes_next():
    jobs = [job(A, queued_at=1, last_step=5), job(B, queued_at=2, last_step=4),
            job(A, queued_at=3, last_step=5)]
    assert next_adapter_set(jobs) == B


def test_a_new_job_gets_its_turn_at_once_and_ties_go_to_the_earliest_queued():
    assert next_adapter_set([job(A, queued_at=1, last_step=3), job(B, queued_at=2)]) == B
    assert next_adapter_set([job(B, queued_at=2), job(A, queued_at=1)]) == A


def test_two_sets_alternate_step_by_step():
    jobs = [job(A, 1), job(A, 2), job(B, 3), job(B, 4)]
    turns = []
    for step in range(1, 7):
        chosen = next_adapter_set(jobs)
        turns.append(chosen)
        for j in jobs:
            if j.adapters == chosen:
                j.last_step = step
    assert turns == [A, B] * 3


def test_a_cached_prefix_is_reused_only_under_the_same_set():
    slot = _Slot(0, cached=[1, 2, 3, 4], adapters=A)
    assert slot.reusable(job(A, prompt=(1, 2, 3, 9))) == 3
    assert slot.reusable(job(B, prompt=(1, 2, 3, 9))) == 0
    assert slot.reusable(job((), prompt=(1, 2, 3, 9))) == 0

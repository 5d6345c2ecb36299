"""Threads that decode let their OpenMP team go when they are done (llama.py,
release_compute_threads): libgomp slows every team's barriers once all teams' threads together
outnumber the CPUs, so a team left behind by the embedding model would slow chat for good.

A team's worker threads are native threads Python does not know; these tests count them in this
process, with real models on 2 threads, before and after the embedder and a scheduler work."""

import os
import queue
import threading

import pytest

from offgrid.engine.embeddings import Embedder
from offgrid.engine.llama import Batch, Context, Model, release_compute_threads
from offgrid.engine.requests import Finished, GenerationRequest
from offgrid.engine.sampling import SamplingParams
from offgrid.engine.scheduler import Scheduler
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                reason="counts threads through /proc")


def native_only_threads() -> set[int]:
    """Ids of this process's threads that are not Python threads: OpenMP's workers, BLAS's."""
    python = {thread.native_id for thread in threading.enumerate()}
    return {int(tid) for tid in os.listdir("/proc/self/task")} - python


def decode_on_a_thread(model: Model, then_release: bool) -> set[int]:
    """Decode a few tokens on a thread that stays alive, and what native threads were added."""
    before, done, added = native_only_threads(), threading.Event(), set()

    def work():
        ctx, batch = Context(model, n_ctx=256, n_batch=16, n_seq=1, n_threads=2), Batch(16)
        for position, token in enumerate(model.tokenize("Check the water filter weekly.")):
            batch.add(token, position, 0, False)
        ctx.decode(batch)
        if then_release:
            release_compute_threads()
        added.update(native_only_threads() - before)
        done.set()
        ctx.close()
        batch.close()

    thread = threading.Thread(target=work)
    thread.start()
    done.wait()
    thread.join()
    return added


@pytest.fixture(scope="module")
def starter(model_files):
    return Model(model_files["starter"])


def test_a_decoding_thread_keeps_a_team_until_it_releases_it(starter):
    assert len(decode_on_a_thread(starter, then_release=False)) == 1  # n_threads - 1 workers
    assert decode_on_a_thread(starter, then_release=True) == set()


def test_the_embedder_leaves_no_team_behind(model_files):
    embedder = Embedder(Model(model_files["embedding"]), max_context=256, threads=2)
    try:
        before = native_only_threads()
        result = embedder.embed(["the pump needs oil", "the radio check is at eight"])
        assert len(result.vectors) == 2
        assert native_only_threads() - before == set()
    finally:
        embedder.close()


def test_an_idle_scheduler_leaves_no_team_behind(starter):
    before = native_only_threads()
    scheduler = Scheduler(starter, slots=2, ctx_per_slot=256, batch_size=64, threads=2,
                          queue_size=2)
    try:
        events = queue.SimpleQueue()
        scheduler.submit(GenerationRequest(prompt="The generator is in", max_tokens=8,
                                           sampling=SamplingParams(temperature=0)), events)
        while not isinstance(last := events.get(timeout=60)[1], Finished):
            pass
        assert last.completion_tokens > 0
        wait_until(lambda: native_only_threads() - before == set(), timeout=10,
                   message="the scheduler's OpenMP team ending once it is idle")
    finally:
        scheduler.close()

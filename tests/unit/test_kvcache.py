"""The kept KV cache's tiers on their own: states are opaque bytes here, the model file any file
(its path, size and mtime are what matters). The real states are tested in test_kept_kv.py."""

from __future__ import annotations

import os
import threading

import pytest

from offgrid.engine.kvcache import (
    MIN_TOKENS,
    KVCache,
    model_identity,
    starts_with,
    worth_copying,
)
from tests.support.waiting import wait_until

MB = 1 << 20


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights")
    return path


def tokens(first: int, n: int = 100) -> list[int]:
    return list(range(first, first + n))


def test_the_longest_shared_prefix_is_found_and_short_gains_are_not(tmp_path, model):
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=0)
    me = model_identity(model)
    cache.keep(me, (), tokens(0, 100), b"a" * 10)
    cache.keep(me, (), tokens(0, 80) + tokens(1000, 100), b"b" * 10)
    entry, state, shared = cache.find(me, (), tokens(0, 150), better_than=0)
    assert (state, shared) == (b"a" * 10, 100)
    assert cache.find(me, (("lora", 1.0),), tokens(0, 150), better_than=0) is None
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.find(me, (), tokens(0, 100), better_than=99) is None  # only the last token
    assert cache.misses == 1  # nothing could spare anything: not even looked up


def test_a_state_is_restored_when_what_it_spares_outweighs_its_copy(tmp_path, model):
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=0)
    me = model_identity(model)
    cache.keep(me, (), tokens(0, 40), b"a")  # a short question kept whole
    assert worth_copying(40, 1) and cache.find(me, (), tokens(0, 41), better_than=20)
    cache.keep(me, (), tokens(0, 30) + tokens(5000, 1500), b"b")  # a long conversation
    long_prompt = tokens(0, 30) + tokens(5000, 1500) + tokens(9000, 5)
    assert not worth_copying(1530, 23)
    assert cache.find(me, (), long_prompt, better_than=1530 - 23) is None
    _, state, shared = cache.find(me, (), long_prompt, better_than=1530 - 24)
    assert (state, shared) == (b"b", 1530)
    assert not worth_copying(MIN_TOKENS - 1, MIN_TOKENS - 1)  # a system prompt is in every slot


def test_starts_with_compares_the_whole_prefix():
    assert starts_with((1, 2, 3), (1, 2)) and starts_with((1, 2), (1, 2)) and starts_with((1,), ())
    assert not starts_with((1, 2), (1, 2, 3))  # longer than the tokens
    assert not starts_with((1, 2, 3), (1, 9))  # its last token differs
    assert not starts_with((1, 2, 3), (9, 2))  # the last is equal, one before it is not


def test_a_longer_state_replaces_those_of_its_prefixes(tmp_path, model):
    cache = KVCache(None, ram_bytes=MB, disk_bytes=0)
    me = model_identity(model)
    cache.keep(me, (), tokens(0, 100), b"a" * 10)
    assert cache.covers(me, (), tokens(0, 70))
    cache.keep(me, (), tokens(0, 200), b"b" * 20)
    assert cache.ram_bytes == 20


def test_memory_spills_to_disk_and_the_disk_drops_the_oldest(tmp_path, model):
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=2 * MB + 4096)
    me = model_identity(model)
    for i in range(4):
        cache.keep(me, (), tokens(i * 1000), bytes([i]) * MB)
        wait_until(cache.written, message="the writer writing what memory spilled")
    assert cache.ram_bytes == MB  # the newest
    assert len(list((tmp_path / "kv").glob("*.kv"))) == 2  # the two before it
    assert cache.find(me, (), tokens(0), better_than=0) is None  # the oldest is gone
    _, state, _ = cache.find(me, (), tokens(1000), better_than=0)
    assert state == bytes([1]) * MB


def test_a_spilled_state_is_written_off_the_keeping_thread_and_used_meanwhile(tmp_path,
                                                                           model):
    """A slow disk (a USB stick) must not hold up keep(), which the decode thread calls."""
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    me, disk_free = model_identity(model), threading.Event()
    write = cache._write
    cache._write = lambda entry: disk_free.wait(30) and write(entry)  # the disk, held up
    cache.keep(me, (), tokens(0), b"a" * MB)
    cache.keep(me, (), tokens(1000), b"b" * MB)  # spills the first, and returns
    assert not cache.written() and not list((tmp_path / "kv").glob("*.kv"))
    _, state, _ = cache.find(me, (), tokens(0), better_than=0)  # still in memory
    assert state == b"a" * MB
    disk_free.set()
    wait_until(cache.written, message="the writer writing the spilled states")
    # Found, the first became the newest: once it was written, the second spilled in turn.
    assert len(list((tmp_path / "kv").glob("*.kv"))) == 2
    assert cache.ram_bytes == MB and cache.disk_bytes > 2 * MB


def test_a_state_the_disk_refuses_is_let_go(tmp_path, model):
    (tmp_path / "kv").write_bytes(b"")  # not a folder: every write fails
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    me = model_identity(model)
    cache.keep(me, (), tokens(0), b"a" * MB)
    cache.keep(me, (), tokens(1000), b"b" * MB)
    wait_until(cache.written, message="the writer giving up on the refused state")
    assert cache.find(me, (), tokens(0), better_than=0) is None
    assert (cache.ram_bytes, cache.disk_bytes) == (MB, 0)


def test_prefetch_reads_the_state_a_prompt_will_restore_before_it_is_looked_up(tmp_path,
                                                                               model):
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    me = model_identity(model)
    cache.keep(me, (), tokens(0), b"a" * 10)
    cache.keep(me, (), tokens(1000), b"b" * 10)
    cache.flush()
    again = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    again.prefetch(me, (), tokens(0, 10) + tokens(7000, 5))  # too little shared to read
    assert again.ram_bytes == 0
    again.prefetch(me, (), tokens(1000) + tokens(7000, 5))
    assert again.ram_bytes == 10  # that one, read now
    _, state, _ = again.find(me, (), tokens(1000) + tokens(7000, 5), better_than=0)
    assert state == b"b" * 10


def test_a_new_cache_finds_the_files_of_the_last_one(tmp_path, model):
    cache = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    cache.keep(model_identity(model), (("x", 0.5),), tokens(0), b"state")
    cache.flush()
    again = KVCache(tmp_path / "kv", ram_bytes=MB, disk_bytes=8 * MB)
    assert again.ram_bytes == 0 and again.disk_bytes > 0
    _, state, shared = again.find(model_identity(model), (("x", 0.5),), tokens(0), 0)
    assert (state, shared) == (b"state", 100)


def test_states_of_a_changed_model_file_are_deleted(tmp_path, model):
    cache = KVCache(tmp_path / "kv", ram_bytes=0, disk_bytes=8 * MB)
    old = model_identity(model)
    cache.keep(old, (), tokens(0), b"state")
    wait_until(lambda: cache.disk_bytes > 0)  # no memory tier: straight to disk
    os.utime(model, ns=(0, old[2] + 10**9))
    assert KVCache(tmp_path / "kv", ram_bytes=0, disk_bytes=8 * MB).disk_bytes == 0
    assert not list((tmp_path / "kv").iterdir())


def test_a_running_cache_drops_states_of_the_model_file_before_it_changed(tmp_path, model):
    cache = KVCache(None, ram_bytes=MB, disk_bytes=0)
    old = model_identity(model)
    cache.keep(old, (), tokens(0), b"state")
    os.utime(model, ns=(0, old[2] + 10**9))
    assert cache.find(model_identity(model), (), tokens(0), 0) is None
    assert cache.ram_bytes == 0


def test_half_written_and_foreign_files_are_deleted(tmp_path, model):
    folder = tmp_path / "kv"
    folder.mkdir()
    (folder / "abc.tmp").write_bytes(b"half")
    (folder / "abc.kv").write_bytes(b"not a state")
    assert KVCache(folder, ram_bytes=MB, disk_bytes=MB).disk_bytes == 0
    assert not list(folder.iterdir())

"""Prompt prefixes' KV states kept after their slot moves on, so that a conversation that
comes back restores its prefix (llama_state_seq_set_data) instead of decoding it again.

Two tiers, each capped in bytes and emptied least recently used first: states in host memory,
and past that files under <home>/kv/ that outlive the server (the memory tier is written there
when it overflows and when the server stops). An entry is keyed by the model file (path, size,
mtime), the adapter set and its tokens; entries of a model file that has changed are deleted.

The disk may be a USB stick, where a 1,500-token state (35 MB) takes seconds, and the decode
thread that keeps and restores states decodes every stream: so a writer thread writes the states
memory spills, and the thread that prepares a request reads the state it will restore (prefetch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("offgrid.kvcache")

# Keeping or restoring a state copies all of it, about 0.002-0.03 ms a token for a 135M model,
# while decoding a prompt token again costs 3-4 ms (SmolLM2 on 2 cores; 40 ms for 1,500 tokens'
# state against 60 ms for 16 tokens). A copy pays when it spares decoding at least 1/64 of the
# tokens it copies: 2 tokens of a 100-token state, 24 of 1,500. A short prompt's state counts
# too: a question asked again, or an answer regenerated, then starts as a cache hit.
COPIED_PER_DECODED = 64
MIN_TOKENS = 16  # shorter prefixes are in every slot already: a system prompt is about 20
MAGIC = b"OGKV1\n"
SUFFIX = ".kv"

ModelIdentity = tuple[str, int, int]  # the model file's path, size and mtime in ns
Adapters = tuple[tuple[str, float], ...]


def model_identity(path: Path) -> ModelIdentity:
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def worth_copying(copied: int, spared: int) -> bool:
    """Whether copying a state of `copied` tokens pays, sparing `spared` tokens' decoding."""
    return copied >= MIN_TOKENS and spared * COPIED_PER_DECODED > copied


def starts_with(tokens: tuple, prefix: tuple) -> bool:
    """Whether `tokens` begins with `prefix`. The lengths and the prefix's last token are
    checked first: the cache asks this of every entry it holds, and a state of another
    conversation nearly always differs there, so the whole prefix is rarely compared."""
    end = len(prefix)
    return (end <= len(tokens) and (not end or tokens[end - 1] == prefix[-1])
            and tokens[:end] == prefix)


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # they may differ in length
        if x != y:
            break
        n += 1
    return n


@dataclass
class Kept:
    model: ModelIdentity
    adapters: Adapters
    tokens: tuple[int, ...]
    size: int  # bytes of state
    data: bytes | None = None  # held in memory
    on_disk: int = 0  # bytes of its file; 0: no file
    spilling: bool = False  # in memory until the writer has written its file

    @property
    def name(self) -> str:
        key = json.dumps([self.model, self.adapters, self.tokens]).encode()
        return hashlib.sha256(key).hexdigest()[:32]


class KVCache:
    def __init__(self, folder: Path | None, ram_bytes: int, disk_bytes: int):
        self.folder = folder if disk_bytes > 0 else None
        self.ram_cap, self.disk_cap = ram_bytes, disk_bytes
        self._entries: OrderedDict[str, Kept] = OrderedDict()  # least recently used first
        self._lock = threading.Condition()
        self._spilled: deque[Kept] = deque()  # for the writer, oldest first
        self._writing: Kept | None = None
        self._writer: threading.Thread | None = None
        self.hits = self.misses = 0
        if self.folder is not None:
            self._read_folder()

    @property
    def enabled(self) -> bool:
        return self.ram_cap > 0 or self.disk_cap > 0

    @property
    def ram_bytes(self) -> int:
        return sum(e.size for e in list(self._entries.values()) if e.data is not None)

    @property
    def disk_bytes(self) -> int:
        return sum(e.on_disk for e in list(self._entries.values()))

    # -- what the scheduler asks --

    def covers(self, model: ModelIdentity, adapters: Adapters, tokens) -> bool:
        """Whether a kept state already holds these tokens (perhaps followed by more)."""
        tokens = tuple(tokens)
        with self._lock:
            return any(e.model == model and e.adapters == adapters
                       and starts_with(e.tokens, tokens) for e in self._entries.values())

    def keep(self, model: ModelIdentity, adapters: Adapters, tokens, data: bytes) -> None:
        """Keep a state; kept states of prefixes of its tokens are no longer needed."""
        entry = Kept(model, adapters, tuple(tokens), len(data), data=data)
        with self._lock:
            self._forget_stale(model)
            for old in [e for e in self._entries.values() if e.model == model
                        and e.adapters == adapters and starts_with(entry.tokens, e.tokens)]:
                self._remove(old)
            self._entries[entry.name] = entry
            self._fit()

    def find(self, model: ModelIdentity, adapters: Adapters, prompt, better_than: int
             ) -> tuple[Kept, bytes, int] | None:
        """The kept state that spares decoding the most of `prompt` beyond the `better_than`
        tokens its slot holds, if that is worth its copy: the entry, its state and the length
        of the prefix it shares with the prompt."""
        last = len(prompt) - 1  # the prompt's last token is decoded whatever is restored
        if last <= better_than:
            return None  # nothing kept could spare anything: neither a hit nor a miss
        with self._lock:
            self._forget_stale(model)
            best, shared, most = None, 0, 0
            next_token = prompt[better_than]  # a state that differs here spares nothing
            for entry in self._entries.values():
                if (entry.model == model and entry.adapters == adapters
                        and len(entry.tokens) > better_than
                        and entry.tokens[better_than] == next_token):
                    n = common_prefix(entry.tokens, prompt)
                    spared = min(n, last) - better_than
                    if spared > most and worth_copying(len(entry.tokens), spared):
                        best, shared, most = entry, n, spared
            if best is None or not self._load(best):
                self.misses += 1
                return None
            self.hits += 1
            data = best.data
            self._entries.move_to_end(best.name)
            self._fit()  # with no memory tier, that lets go of the data read from disk
            return best, data, shared

    def prefetch(self, model: ModelIdentity, adapters: Adapters, prompt) -> None:
        """Read into memory the kept state only a file holds that shares the longest prefix
        with `prompt`, on the calling thread, so that find() need not wait for the disk."""
        with self._lock:
            self._forget_stale(model)
            on_disk = [(common_prefix(e.tokens, prompt), e) for e in self._entries.values()
                       if e.data is None and e.model == model and e.adapters == adapters]
        shared, entry = max(on_disk, key=lambda pair: pair[0], default=(0, None))
        if shared < MIN_TOKENS:
            return
        data = self._read(entry)  # an entry's file and size never change
        with self._lock:
            if self._entries.get(entry.name) is not entry or entry.data is not None:
                return
            if data is None:
                self._remove(entry)
                return
            entry.data = data
            self._entries.move_to_end(entry.name)
            self._fit()

    def forget(self, entry: Kept) -> None:
        with self._lock:
            self._remove(entry)

    def flush(self) -> None:
        """Write what only memory holds to disk (the server is stopping)."""
        with self._lock:
            self._lock.wait_for(self.written)
            for entry in list(self._entries.values()):
                if not entry.on_disk:
                    entry.on_disk = self._write(entry)
            self._fit()

    def written(self) -> bool:
        """Whether the writer has written every state spilled so far."""
        return not self._spilled and self._writing is None

    # -- the tiers --

    def _fit(self) -> None:
        """Spill the least recently used states from memory to disk, and delete the least
        recently used files, until both tiers fit their caps. A spilled state stays in memory
        until the writer has written it (beside the cap, up to the cap's size again, or one
        state: past that the disk is slower than states come, and the state is let go)."""
        ram = sum(e.size for e in self._entries.values() if e.data is not None and not e.spilling)
        for entry in list(self._entries.values()):
            if ram <= self.ram_cap:
                break
            if entry.data is None or entry.spilling:
                continue
            ram -= entry.size
            if entry.on_disk or self.folder is None:
                entry.data = None
            else:
                self._spill(entry)
        disk = sum(e.on_disk for e in self._entries.values())
        for entry in list(self._entries.values()):
            if disk <= self.disk_cap:
                break
            if entry.on_disk:
                disk -= entry.on_disk
                self._delete_file(entry)
        for entry in [e for e in self._entries.values() if e.data is None and not e.on_disk]:
            del self._entries[entry.name]

    def _spill(self, entry: Kept) -> None:
        if self._spilled and sum(e.size for e in self._spilled) + entry.size > self.ram_cap:
            entry.data = None
            return
        entry.spilling = True
        self._spilled.append(entry)
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_spilled, name="kv-writer",
                                            daemon=True)
            self._writer.start()
        self._lock.notify_all()

    def _write_spilled(self) -> None:
        """The writer thread: each spilled state to its file, the lock let go while writing."""
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._spilled)
                entry = self._writing = self._spilled.popleft()
                forgotten = self._entries.get(entry.name) is not entry
            try:
                size = 0 if forgotten else self._write(entry)
            except Exception:  # the writer must go on, or flush() would wait for ever
                log.exception("could not write a kept KV state")
                size = 0
            with self._lock:
                self._writing, entry.spilling = None, False
                if self._entries.get(entry.name) is not entry:  # forgotten while written
                    if size:
                        self._path(entry).unlink(missing_ok=True)
                elif size:
                    entry.on_disk = size
                else:  # the disk refused it (full?): let it go rather than try again
                    entry.data = None
                self._fit()
                self._lock.notify_all()

    def _remove(self, entry: Kept) -> None:
        self._delete_file(entry)
        self._entries.pop(entry.name, None)

    def _forget_stale(self, model: ModelIdentity) -> None:
        for entry in [e for e in self._entries.values()
                      if e.model[0] == model[0] and e.model != model]:
            self._remove(entry)

    # -- files: MAGIC, the header's length (4 bytes), a JSON header, the state --

    def _path(self, entry: Kept) -> Path:
        return self.folder / (entry.name + SUFFIX)

    def _write(self, entry: Kept) -> int:
        """Write a state's file, whole or not at all: its size, 0 if it could not be."""
        if self.folder is None:
            return 0
        header = json.dumps({"model": entry.model, "adapters": entry.adapters,
                             "tokens": entry.tokens, "size": entry.size}).encode()
        path = self._path(entry)
        tmp = path.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(MAGIC + struct.pack("<I", len(header)) + header)
                fh.write(entry.data)
            os.replace(tmp, path)  # a reader never sees half a file
            return path.stat().st_size
        except OSError as error:
            log.warning("could not keep a KV state on disk: %s", error)
            with contextlib.suppress(OSError):  # the folder may be what failed
                tmp.unlink(missing_ok=True)
            return 0

    def _load(self, entry: Kept) -> bool:
        """Read a state that only its file holds back into memory; False if it cannot."""
        if entry.data is None:
            entry.data = self._read(entry)
            if entry.data is None:
                self._remove(entry)
                return False
        return True

    def _read(self, entry: Kept) -> bytes | None:
        """A state's file, checked; None if it cannot be read or is not whole."""
        try:
            with open(self._path(entry), "rb") as fh:
                _read_header(fh)
                data = fh.read()
            os.utime(self._path(entry))  # its mtime orders the disk tier after a restart
        except (OSError, ValueError) as error:
            log.warning("dropping a kept KV state that cannot be read: %s", error)
            return None
        return data if len(data) == entry.size else None

    def _delete_file(self, entry: Kept) -> None:
        if entry.on_disk:
            self._path(entry).unlink(missing_ok=True)
            entry.on_disk = 0

    def _read_folder(self) -> None:
        """Index the files kept by earlier runs, oldest first; delete those of model files that
        changed or are gone, and any a crash left half-written."""
        if not self.folder.is_dir():
            return
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        files = sorted(self.folder.glob("*" + SUFFIX), key=lambda p: p.stat().st_mtime_ns)
        for path in files:
            entry = _indexed(path)
            if entry is None or entry.name + SUFFIX != path.name:
                path.unlink(missing_ok=True)
                continue
            self._entries[entry.name] = entry
        self._fit()


def _read_header(fh) -> dict:
    if fh.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a kept KV state")
    (length,) = struct.unpack("<I", fh.read(4))
    return json.loads(fh.read(length))


def _indexed(path: Path) -> Kept | None:
    """The entry a file holds, without its state; None if it is unreadable or stale."""
    try:
        with open(path, "rb") as fh:
            header = _read_header(fh)
        model = tuple(header["model"])
        if model_identity(Path(model[0])) != model:
            return None
        return Kept(model, tuple(tuple(a) for a in header["adapters"]), tuple(header["tokens"]),
                    header["size"], on_disk=path.stat().st_size)
    except (OSError, ValueError, KeyError, TypeError):
        return None

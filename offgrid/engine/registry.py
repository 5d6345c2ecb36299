"""Loaded models: loaded on first use, kept while in use, unloaded when idle past their
keep-alive or when the least recently used must make room for another (`max_models`, or the
memory budget). A model is never unloaded while it has requests. A model loads each LoRA
adapter it is asked for once, and keeps it until it unloads. With RPC workers (`rpc_servers`)
every model is spread over them and this machine, and their free memory counts too."""

from __future__ import annotations

import functools
import logging
import threading
import time

import psutil

from ..config import ConfigError, Settings
from ..models.folder import ModelError, ModelFile, ModelFolder
from ..models.loras import FOLDER_NAME, LoraFolder
from .adapter_turns import AdapterSet, adapter_set
from .draft_model import vocabulary_mismatch
from .embeddings import Embedder
from .errors import (
    AdapterMismatch,
    AdapterNotFound,
    EngineClosed,
    InsufficientMemory,
    ModelLoadFailed,
    ModelsBusy,
    WrongModelKind,
)
from .kvcache import KVCache
from .llama import LlamaError, LoraAdapter, Model
from .rpc import Workers
from .scheduler import Scheduler

log = logging.getLogger("offgrid.registry")

REAP_SECONDS = 1.0  # how often idle models are checked, and the least idle time before unloading
OVERHEAD_BYTES = 64 * 1024 * 1024  # compute buffers and the like, beyond weights and KV cache


class LoadedModel:
    """A model in memory, with its generation scheduler and embedder made when first needed."""

    def __init__(self, model: Model, model_file: ModelFile, settings: Settings, need: int,
                 on_finished=None, on_failure=None, loras: LoraFolder | None = None,
                 kv_cache: KVCache | None = None, draft_file: ModelFile | None = None):
        self.model = model
        self._draft_file = draft_file
        self._draft: Model | None = None  # loaded with the scheduler, if it can draft for it
        self._kv_cache = kv_cache
        self._loras = loras
        self.adapters: dict[str, LoraAdapter] = {}  # by adapter id; the scheduler reads it
        self._adapters_lock = threading.Lock()
        self._on_finished = on_finished
        self._on_failure = on_failure
        self.file = model_file
        self.memory_estimate = need
        self._settings = settings
        self._lock = threading.Lock()
        self._scheduler: Scheduler | None = None
        self._embedder: Embedder | None = None
        self.keep_alive = settings.keep_alive
        self._touched = time.monotonic()

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    def touch(self, keep_alive: float | None) -> None:
        self._touched = time.monotonic()
        if keep_alive is not None:
            self.keep_alive = keep_alive

    @property
    def busy(self) -> bool:
        return any(part is not None and part.in_flight for part in (self._scheduler,
                                                                     self._embedder))

    @property
    def last_used(self) -> float:
        """When it was last asked for, or last finished a request (monotonic seconds)."""
        parts = [p.last_active for p in (self._scheduler, self._embedder) if p is not None]
        return max([self._touched, *parts])

    def expires_at(self) -> float | None:
        """When it unloads if it stays idle (monotonic seconds); None: never."""
        if self.keep_alive < 0:
            return None
        return self.last_used + max(self.keep_alive, REAP_SECONDS)

    def generator(self) -> Scheduler:
        if self.model.is_embedding_only:
            raise WrongModelKind(f"{self.file.id} is an embedding model: it cannot "
                                 "generate text; use /v1/embeddings")
        with self._lock:
            if self._scheduler is not None and self._scheduler.failure is not None:
                log.warning("restarting the scheduler of %s", self.file.id)
                self._scheduler.close()
                self._scheduler = None
            if self._scheduler is None:
                s = self._settings
                self._scheduler = Scheduler(
                    self.model, slots=s.parallel, threads=s.num_threads,
                    ctx_per_slot=context_per_slot(s, self.model.n_ctx_train),
                    batch_size=s.batch_size, queue_size=s.queue_size, adapters=self.adapters,
                    on_finished=self._on_finished, on_failure=self._on_failure,
                    kv_cache=self._kv_cache, speculative=s.speculative,
                    draft=self._draft_model())
            return self._scheduler

    def _draft_model(self) -> Model | None:
        """The draft model, loaded now if it can guess tokens for this one (it may be this
        one); None if there is none, or it cannot."""
        if self._draft_file is None or not self._settings.speculative:
            return None
        if self._draft_file.id == self.file.id:
            return self.model
        if self._draft is None:
            try:
                draft = Model(self._draft_file.path)
            except LlamaError as error:
                log.warning("draft model %s not used: %s", self._draft_file.id, error)
                self._draft_file = None
                return None
            reason = vocabulary_mismatch(self.model, draft)
            if reason is not None:
                log.warning("draft model %s not used for %s: %s", self._draft_file.id,
                            self.file.id, reason)
                draft.close()
                self._draft_file = None
                return None
            log.info("drafting for %s with %s", self.file.id, self._draft_file.id)
            self._draft = draft
        return self._draft

    def adapter_set(self, asked: tuple[tuple[str, float], ...]) -> AdapterSet:
        """The adapters asked for, by id or name with their scales, loaded for this model and
        as the engine takes them (see adapter_turns.adapter_set)."""
        return adapter_set([(self._adapter(key), scale) for key, scale in asked])

    def _adapter(self, key: str) -> str:
        """The id of the adapter `key` names, loaded for this model (once)."""
        lora = self._loras.find(key) if self._loras is not None else None
        if lora is None:
            raise AdapterNotFound(key)
        with self._adapters_lock:
            if lora.id in self.adapters:
                return lora.id
            reason = lora.misfit(self.file.info)
            if reason is not None:
                raise AdapterMismatch(lora.id, self.file.id, reason)
            try:
                self.adapters[lora.id] = LoraAdapter(self.model, lora.path)
            except LlamaError as error:
                raise AdapterMismatch(lora.id, self.file.id, str(error)) from None
            log.info("loaded LoRA adapter %s for %s", lora.id, self.file.id)
            return lora.id

    @property
    def failure(self) -> Exception | None:
        """What stopped its scheduler, until the next request restarts it."""
        return self._scheduler.failure if self._scheduler is not None else None

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model, max_context=self._settings.max_context,
                                          threads=self._settings.num_threads)
            return self._embedder

    def close(self) -> None:
        with self._lock:
            for part in (self._scheduler, self._embedder):
                if part is not None:
                    part.close()
            self._scheduler = self._embedder = None
            for adapter in self.adapters.values():  # no context is left to use them
                adapter.close()
            self.adapters.clear()
            if self._draft is not None:
                self._draft.close()
                self._draft = None
            self.model.close()


def context_per_slot(settings: Settings, trained: int | None) -> int:
    return min(settings.max_context, trained or settings.max_context)


def memory_needed(model_file: ModelFile, settings: Settings) -> int:
    """Weights, plus the KV cache of every slot (f16 keys and values), plus some overhead."""
    info = model_file.info
    if info is None or not info.heads:
        return model_file.size + OVERHEAD_BYTES
    head_size = info.embedding_length // info.heads
    tokens = context_per_slot(settings, info.context_length) * settings.parallel
    kv_cache = 2 * 2 * info.layers * tokens * info.kv_heads * head_size
    return model_file.size + kv_cache + OVERHEAD_BYTES


class Registry:
    def __init__(self, settings: Settings, on_finished=None, on_failure=None):
        """`on_finished(model_id, finished)` hears of every generation that ends,
        `on_failure(model_id, error)` of every scheduler that stops on an error."""
        self.settings = settings
        self._on_finished = on_finished
        self._on_failure = on_failure
        endpoints = settings.rpc_endpoints()
        self.workers = Workers(endpoints) if endpoints else None  # refuses unreachable ones
        self.folder = ModelFolder(settings.models_dir, settings.replica_name)
        self.loras = LoraFolder(settings.models_dir / FOLDER_NAME)
        self.kv_cache = KVCache(settings.home / "kv", ram_bytes=settings.kv_cache_ram_mb << 20,
                                disk_bytes=settings.kv_cache_disk_mb << 20)
        self.draft_file = self._find_draft()
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()  # one load at a time: each needs the memory check
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="model-reaper", daemon=True)
        self._reaper.start()

    def files(self) -> list[ModelFile]:
        return self.folder.files()

    def find(self, model_id: str) -> ModelFile:
        return self.folder.find(model_id)

    def _find_draft(self) -> ModelFile | None:
        """The draft model's file, checked before the server starts."""
        if not self.settings.draft_model:
            return None
        try:
            draft_file = self.find(self.settings.draft_model)
        except ModelError as error:
            raise ConfigError(f"draft_model: {error} (in {self.folder.folder})") from None
        if draft_file.error:
            raise ConfigError(f"draft_model: {draft_file.path.name}: {draft_file.error}")
        return draft_file

    def default_model_id(self) -> str | None:
        if self.settings.default_model:
            return self.settings.default_model
        files = self.files()
        return files[0].id if files else None

    def loaded(self) -> dict[str, LoadedModel]:
        with self._lock:
            return dict(self._loaded)

    # -- loading and unloading --

    def get(self, model_id: str, keep_alive: float | None = None) -> LoadedModel:
        """The loaded model, loading it now if needed; `keep_alive` (seconds, negative: for
        ever) replaces how long it stays loaded once idle."""
        loaded = self._touch(model_id, keep_alive)
        if loaded is not None:
            return loaded
        with self._load_lock:
            loaded = self._touch(model_id, keep_alive)
            if loaded is not None:
                return loaded
            model_file = self.find(model_id)
            if model_file.error:
                raise ModelLoadFailed(f"{model_file.path.name} could not be loaded: "
                                      f"{model_file.error}")
            if self.workers is not None and not self.loaded():
                self.workers.check()  # llama.cpp would abort on a worker gone since
            need = memory_needed(model_file, self.settings)
            if self.draft_file is not None and self.draft_file.id != model_id:
                need += memory_needed(self.draft_file, self.settings)
            self._make_room(need)
            log.info("loading %s (about %d MiB)", model_file.path, need >> 20)
            devices = self.workers.devices if self.workers is not None else None
            try:
                loaded = LoadedModel(Model(model_file.path, devices), model_file,
                                     self.settings, need, *self._listeners(model_id),
                                     loras=self.loras, kv_cache=self.kv_cache,
                                     draft_file=self.draft_file)
            except LlamaError as error:
                raise ModelLoadFailed(str(error)) from None
            loaded.touch(keep_alive)
            with self._lock:
                if self._closed.is_set():
                    loaded.close()
                    raise EngineClosed()
                self._loaded[model_id] = loaded
            return loaded

    def _listeners(self, model_id: str):
        """The registry's listeners, told which model they hear from."""
        return [None if listener is None else functools.partial(listener, model_id)
                for listener in (self._on_finished, self._on_failure)]

    def _touch(self, model_id: str, keep_alive: float | None) -> LoadedModel | None:
        with self._lock:
            loaded = self._loaded.get(model_id)
            if loaded is not None:
                loaded.touch(keep_alive)
            return loaded

    def _make_room(self, need: int) -> None:
        """Unload idle models, least recently used first, until `need` bytes fit and a model
        slot is free."""
        while True:
            with self._lock:
                loaded = dict(self._loaded)
            free = self._free_memory(loaded)
            if len(loaded) < self.settings.max_models and need <= free:
                return
            idle = sorted((m for m in loaded.values() if self._unloadable(m)),
                          key=lambda m: m.last_used)
            if not idle:
                if len(loaded) >= self.settings.max_models:
                    raise ModelsBusy(f"{len(loaded)} models are loaded (max_models) and all are "
                                     "answering requests")
                raise InsufficientMemory(
                    f"This model needs about {need >> 20} MiB of memory; {max(free, 0) >> 20} "
                    "MiB are available")
            self.unload(idle[0].file.id)

    def _free_memory(self, loaded: dict[str, LoadedModel]) -> int:
        if self.settings.max_memory:
            return self.settings.max_memory - sum(m.memory_estimate for m in loaded.values())
        remote = self.workers.free_memory() if self.workers is not None else 0
        return psutil.virtual_memory().available + remote

    @staticmethod
    def _unloadable(loaded: LoadedModel) -> bool:
        return not loaded.busy and time.monotonic() - loaded.last_used >= REAP_SECONDS

    def unload(self, model_id: str) -> bool:
        """Unload a model that has no requests; False if it is busy or not loaded."""
        with self._lock:
            loaded = self._loaded.get(model_id)
            if loaded is None or loaded.busy:
                return False
            del self._loaded[model_id]
        log.info("unloading %s", model_id)
        loaded.close()
        return True

    def delete(self, model_id: str) -> ModelFile:
        """Unload (if idle) and delete a model's files."""
        model_file = self.find(model_id)
        if model_id in self.loaded() and not self.unload(model_id):
            raise ModelsBusy(f"{model_id} is answering requests; try again when it is idle")
        return self.folder.delete(model_file.id)

    def _reap(self) -> None:
        while not self._closed.wait(REAP_SECONDS):
            now = time.monotonic()
            for model_id, loaded in self.loaded().items():
                expires = loaded.expires_at()
                if expires is not None and now >= expires and not loaded.busy:
                    self.unload(model_id)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for model in loaded:
            model.close()  # its slots' states go to the KV cache
        self.kv_cache.flush()

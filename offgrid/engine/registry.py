"""The model store: the .gguf files in the models folder, loaded on first use.

A model's id is its file name without `.gguf`. Ids are looked up among the files found, so a
name with a path in it can never reach outside the folder.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .embeddings import Embedder
from .errors import EngineClosed, ModelLoadFailed, ModelNotFound, WrongModelKind
from .llama import LlamaError, Model
from .scheduler import Scheduler

log = logging.getLogger("offgrid.registry")


@dataclass(frozen=True)
class ModelFile:
    id: str
    path: Path
    size: int
    modified: float


class LoadedModel:
    """A model in memory, with its generation scheduler and embedder made when first needed."""

    def __init__(self, model: Model, settings: Settings):
        self.model = model
        self._settings = settings
        self._lock = threading.Lock()
        self._scheduler: Scheduler | None = None
        self._embedder: Embedder | None = None

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    def generator(self) -> Scheduler:
        if self.model.is_embedding_only:
            raise WrongModelKind(f"{self.model.path.stem} is an embedding model: it cannot "
                                 "generate text; use /v1/embeddings")
        with self._lock:
            if self._scheduler is None:
                s = self._settings
                self._scheduler = Scheduler(
                    self.model, slots=s.parallel, threads=s.num_threads,
                    ctx_per_slot=min(s.max_context, self.model.n_ctx_train or s.max_context),
                    batch_size=s.batch_size, queue_size=s.queue_size)
            return self._scheduler

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
            self.model.close()


class Registry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedModel] = {}
        self._load_locks: dict[str, threading.Lock] = {}
        self._closed = False

    # -- files --

    def files(self) -> list[ModelFile]:
        folder = Path(self.settings.models_dir)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.gguf")):
            if path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            found.append(ModelFile(path.stem, path, stat.st_size, stat.st_mtime))
        return found

    def find(self, model_id: str) -> ModelFile:
        for model_file in self.files():
            if model_file.id == model_id:
                return model_file
        raise ModelNotFound(model_id)

    def default_model_id(self) -> str | None:
        if self.settings.default_model:
            return self.settings.default_model
        files = self.files()
        return files[0].id if files else None

    # -- loading --

    def get(self, model_id: str) -> LoadedModel:
        """The loaded model, loading it now if needed (one load at a time per model)."""
        with self._lock:
            if model_id in self._loaded:
                return self._loaded[model_id]
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            with self._lock:
                if model_id in self._loaded:
                    return self._loaded[model_id]
            model_file = self.find(model_id)
            log.info("loading %s", model_file.path)
            try:
                loaded = LoadedModel(Model(model_file.path), self.settings)
            except LlamaError as error:
                raise ModelLoadFailed(str(error)) from None
            with self._lock:
                if self._closed:
                    loaded.close()
                    raise EngineClosed()
                self._loaded[model_id] = loaded
            log.info("loaded %s", model_id)
            return loaded

    def loaded(self) -> dict[str, LoadedModel]:
        with self._lock:
            return dict(self._loaded)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            loaded, self._loaded = list(self._loaded.values()), {}
        for model in loaded:
            model.close()

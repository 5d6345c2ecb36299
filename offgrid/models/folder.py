"""The models folder: the .gguf files in it (split models too), what their headers say, their
checksums, and changing it: removing a model, and placing a complete file under its name.

A model's id is its file name without `.gguf` (for a split model, without `-00001-of-0000N`).
Ids and file names with path separators or `..` are refused, so nothing here reaches outside
the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from . import gguf

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_BLOCK = 1 << 20


class ModelError(Exception):
    """Base of what the models folder refuses."""


class InvalidName(ModelError):
    """An id or file name that could reach outside the models folder, or is not a GGUF name."""

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


class NotFound(ModelError):
    """No such model; behind a load balancer, on which replica, since another may have it."""

    def __init__(self, model_id: str, replica: str = ""):
        where = f" on replica {replica}, whose models folder has no such file" if replica else ""
        super().__init__(f"Model not found: {model_id}{where}")
        self.model_id = model_id


class Conflict(ModelError):
    """A different file already has this name."""


class FolderUnusable(ModelError):
    """A folder to export to or import from that is missing, not a folder, or that the system
    will not let us read or write."""


def check_name(name: str, what: str = "model id") -> str:
    if not isinstance(name, str) or ".." in name or not _NAME.match(name):
        raise InvalidName(f"Invalid {what} {name!r}: use letters, digits, '.', '_', '+' and "
                          "'-' only, with no path separators or '..'", what)
    return name


def check_file_name(name: str) -> str:
    check_name(name, "file name")
    if not name.endswith(".gguf"):
        raise InvalidName(f"Invalid file name {name!r}: only .gguf model files are accepted",
                          "file name")
    return name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    id: str
    paths: tuple[Path, ...]  # llama.cpp loads the first; it finds the other splits itself
    size: int
    modified: float
    info: gguf.GgufInfo | None = None
    error: str | None = None  # why the header could not be read

    @property
    def path(self) -> Path:
        return self.paths[0]


class ModelFolder:
    def __init__(self, folder: Path, replica: str = ""):
        self.folder = Path(folder)
        self.replica = replica  # named in NotFound (see Settings.replica_name)
        self._headers: dict[tuple, tuple] = {}  # (path, size, mtime) -> (info, error)
        self._hashes: dict[tuple, str] = {}  # (path, size, mtime) -> sha256
        self._lock = threading.Lock()

    # -- what is here --

    def files(self) -> list[ModelFile]:
        if not self.folder.is_dir():
            return []
        groups: dict[str, list[Path]] = {}
        for path in sorted(self.folder.glob("*.gguf")):
            if path.name.startswith(".") or not path.is_file():
                continue
            split = _SPLIT.match(path.name)
            groups.setdefault(split["stem"] if split else path.stem, []).append(path)
        found = [self._model_file(model_id, tuple(paths)) for model_id, paths in groups.items()]
        # A LoRA adapter is no model of its own (its place is loras/, see loras.py).
        return [f for f in found if not (f.info and f.info.metadata.get("general.type")
                                         == "adapter")]

    def find(self, model_id: str) -> ModelFile:
        check_name(model_id)
        for model_file in self.files():
            if model_file.id == model_id:
                return model_file
        raise NotFound(model_id, self.replica)

    def _model_file(self, model_id: str, paths: tuple[Path, ...]) -> ModelFile:
        stats = [p.stat() for p in paths]
        info, error = self._header(paths[0], stats[0])
        return ModelFile(model_id, paths, sum(s.st_size for s in stats),
                         max(s.st_mtime for s in stats), info, error)

    def _header(self, path: Path, stat: os.stat_result):
        key = (path, stat.st_size, stat.st_mtime)
        with self._lock:
            if key not in self._headers:
                try:
                    self._headers[key] = (gguf.read(path), None)
                except (gguf.GgufError, OSError) as error:
                    self._headers[key] = (None, str(error))
            return self._headers[key]

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            known = sha256_of(path)
            with self._lock:
                self._hashes[key] = known
        return known

    # -- changes --

    def delete(self, model_id: str) -> ModelFile:
        model_file = self.find(model_id)
        for path in model_file.paths:
            path.unlink()
        return model_file

    def copy(self, model_id: str, new_id: str) -> ModelFile:
        """The model under a second id as well: its files hard-linked under the new name, or
        copied where the file system cannot link them."""
        source = self.find(model_id)
        check_name(new_id)
        targets = [self.folder / (new_id + path.name[len(source.id):]) for path in source.paths]
        if any(target.exists() for target in targets) or new_id in {f.id for f in self.files()}:
            raise Conflict(f"A model named {new_id} exists already")
        for path, target in zip(source.paths, targets, strict=True):
            try:
                os.link(path, target)
            except OSError:  # another file system, or one without hard links
                shutil.copyfile(path, target)
        return self.find(new_id)

    def partial_path(self, file_name: str) -> Path:
        """Where a file being written goes until it is complete: hidden, so never listed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f".{check_file_name(file_name)}.part"

    def place(self, partial: Path, file_name: str) -> Path:
        """Move a complete, checked file under its final name."""
        final = self.folder / check_file_name(file_name)
        os.replace(partial, final)
        return final

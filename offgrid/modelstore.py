"""The models folder: the .gguf files in it (split models too), what their headers say, and
moving models in and out of it — removal, and export to / import from a folder such as a USB
stick, checked against a sha256 manifest.

A model's id is its file name without `.gguf` (for a split model, without `-00001-of-0000N`).
Ids and file names with path separators or `..` are refused, so nothing here reaches outside
the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import gguf

MANIFEST = "offgrid-manifest.json"
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_BLOCK = 1 << 20


class StoreError(Exception):
    """Base of what the model store refuses."""


class InvalidName(StoreError):
    """An id or file name that could reach outside the models folder, or is not a GGUF name."""

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


class NotFound(StoreError):
    def __init__(self, model_id: str):
        super().__init__(f"Model not found: {model_id}")
        self.model_id = model_id


class Conflict(StoreError):
    """A different file already has this name."""


class FolderUnusable(StoreError):
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


@dataclass
class Report:
    """What an import or export did, file by file."""
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"copied": self.copied, "skipped": self.skipped, "failed": self.failed}


class ModelStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
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
        return [self._model_file(model_id, tuple(paths)) for model_id, paths in groups.items()]

    def find(self, model_id: str) -> ModelFile:
        check_name(model_id)
        for model_file in self.files():
            if model_file.id == model_id:
                return model_file
        raise NotFound(model_id)

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

    def partial_path(self, file_name: str) -> Path:
        """Where a file being written goes until it is complete: hidden, so never listed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f".{check_file_name(file_name)}.part"

    def place(self, partial: Path, file_name: str) -> Path:
        """Move a complete, checked file under its final name."""
        final = self.folder / check_file_name(file_name)
        os.replace(partial, final)
        return final

    def export(self, model_id: str, destination: Path) -> Report:
        """Copy a model to `destination` and record its files' sha256 in the manifest there."""
        model_file = self.find(model_id)
        digests = {path: self.sha256(path) for path in model_file.paths}
        report = Report()
        with _using(destination):
            destination.mkdir(parents=True, exist_ok=True)
            manifest = _read_manifest(destination)
            for path, digest in digests.items():
                target = destination / path.name
                if target.exists() and manifest.get(path.name, {}).get("sha256") == digest:
                    report.skipped.append(path.name)
                    continue
                _copy(path, target)
                manifest[path.name] = {"sha256": digest, "size": path.stat().st_size}
                report.copied.append(path.name)
            _write_manifest(destination, manifest)
        return report

    def import_from(self, source: Path) -> Report:
        """Copy the models in `source` here: each checked (GGUF header, and the manifest's
        sha256 when there is one); one already here with the same hash is skipped."""
        if not source.is_dir():
            raise FolderUnusable(f"There is no folder {source}")
        with _using(source):
            manifest = _read_manifest(source)
            candidates = sorted(source.glob("*.gguf"))
        present = {self.sha256(p) for m in self.files() for p in m.paths}
        report = Report()
        for path in candidates:
            try:
                self._import_file(path, manifest.get(path.name), present, report)
            except (StoreError, gguf.GgufError, OSError) as error:
                report.failed[path.name] = str(error)
        return report

    def _import_file(self, path: Path, expected: dict | None, present: set, report: Report):
        check_file_name(path.name)
        if not gguf.is_gguf(path):
            raise gguf.GgufError("not a GGUF file")
        if expected and expected.get("sha256") in present:
            report.skipped.append(path.name)
            return
        partial = self.partial_path(path.name)
        try:
            digest = _copy_hashing(path, partial)
            if expected and expected.get("sha256") != digest:
                raise StoreError("sha256 does not match the manifest: the copy is damaged")
            if digest in present:
                report.skipped.append(path.name)
                return
            if (self.folder / path.name).exists():
                raise Conflict("a different model with this file name is already here")
            self.place(partial, path.name)
            present.add(digest)
            report.copied.append(path.name)
        finally:
            partial.unlink(missing_ok=True)


@contextmanager
def _using(folder: Path):
    """What goes wrong in `folder` (no room, no permission, a file in the way) as the store's
    FolderUnusable."""
    try:
        yield
    except OSError as error:
        raise FolderUnusable(f"Cannot use the folder {folder}: {error.strerror or error}"
                             ) from None


def _copy(source: Path, target: Path) -> None:
    """Copy under a hidden name first, so that a copy cut short is never taken for the file."""
    partial = target.with_name(f".{target.name}.part")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while block := src.read(_BLOCK):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"{folder / MANIFEST} is not a valid manifest") from None


def _write_manifest(folder: Path, files: dict) -> None:
    partial = folder / f".{MANIFEST}.part"
    partial.write_text(json.dumps({"format": 1, "files": files}, indent=2, sort_keys=True))
    os.replace(partial, folder / MANIFEST)

"""Moving models between the models folder and another folder, such as a USB stick: export
copies a model's files there with a manifest of their sha256, import copies models back here,
each checked against that manifest, skipping what is already here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import gguf
from .folder import Conflict, FolderUnusable, ModelError, ModelFolder, check_file_name

MANIFEST = "offgrid-manifest.json"
_BLOCK = 1 << 20


@dataclass
class Report:
    """What an import or export did, file by file."""
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"copied": self.copied, "skipped": self.skipped, "failed": self.failed}


def export(folder: ModelFolder, model_id: str, destination: Path) -> Report:
    """Copy a model to `destination` and record its files' sha256 in the manifest there."""
    model_file = folder.find(model_id)
    digests = {path: folder.sha256(path) for path in model_file.paths}
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


def import_from(folder: ModelFolder, source: Path) -> Report:
    """Copy the models in `source` here: each checked (GGUF header, and the manifest's
    sha256 when there is one); one already here with the same hash is skipped."""
    if not source.is_dir():
        raise FolderUnusable(f"There is no folder {source}")
    with _using(source):
        manifest = _read_manifest(source)
        candidates = sorted(source.glob("*.gguf"))
    present = {folder.sha256(p) for m in folder.files() for p in m.paths}
    report = Report()
    for path in candidates:
        try:
            _import_file(folder, path, manifest.get(path.name), present, report)
        except (ModelError, gguf.GgufError, OSError) as error:
            report.failed[path.name] = str(error)
    return report


def _import_file(folder: ModelFolder, path: Path, expected: dict | None, present: set,
                 report: Report) -> None:
    check_file_name(path.name)
    if not gguf.is_gguf(path):
        raise gguf.GgufError("not a GGUF file")
    if expected and expected.get("sha256") in present:
        report.skipped.append(path.name)
        return
    partial = folder.partial_path(path.name)
    try:
        digest = _copy_hashing(path, partial)
        if expected and expected.get("sha256") != digest:
            raise ModelError("sha256 does not match the manifest: the copy is damaged")
        if digest in present:
            report.skipped.append(path.name)
            return
        if (folder.folder / path.name).exists():
            raise Conflict("a different model with this file name is already here")
        folder.place(partial, path.name)
        present.add(digest)
        report.copied.append(path.name)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _using(folder: Path):
    """What goes wrong in `folder` (no room, no permission, a file in the way) as
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
        raise ModelError(f"{folder / MANIFEST} is not a valid manifest") from None


def _write_manifest(folder: Path, files: dict) -> None:
    partial = folder / f".{MANIFEST}.part"
    partial.write_text(json.dumps({"format": 1, "files": files}, indent=2, sort_keys=True))
    os.replace(partial, folder / MANIFEST)

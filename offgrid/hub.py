"""Models from the Hugging Face Hub, or a mirror named by HF_ENDPOINT: search, pick a GGUF file,
and download it into the models folder with progress, cancel, resume and a sha256 check.

huggingface_hub resolves names and metadata (size, sha256, commit; HF_ENDPOINT, HF_TOKEN and
HF_HUB_OFFLINE as it reads them); the bytes come in ranged requests written to a hidden partial
file, so an interrupted download resumes where it stopped and only a complete, verified GGUF
file ever appears under its name.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import gguf
from .modelstore import ModelStore, check_file_name, sha256_of

ATTEMPTS = 3  # tries per download; each resumes where the last stopped
CHUNK = 1 << 20
TIMEOUT = 30
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFERRED_QUANTIZATION = "q4_k_m"


class HubError(Exception):
    """A download or search that could not be done; the message says why."""


class Offline(HubError):
    pass


class InvalidRepository(HubError):
    pass


class NotOnHub(HubError):
    pass


class Cancelled(HubError):
    pass


def check_repository(repository: str) -> str:
    if not isinstance(repository, str) or ".." in repository or not _REPOSITORY.match(
            repository):
        raise InvalidRepository(f"Invalid repository {repository!r}: expected owner/name")
    return repository


def _hub():
    """huggingface_hub, imported on first use (it is slow to import), unless offline."""
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        raise Offline("HF_HUB_OFFLINE is set, so nothing is downloaded; bring models in with "
                      "`offgrid import`")
    import huggingface_hub
    return huggingface_hub


def _reach(call, what: str):
    """Run a huggingface_hub call, turning its many failures into one clear HubError."""
    try:
        return call()
    except HubError:
        raise
    except Exception as error:  # network, HTTP and hub errors all mean "could not"
        name = type(error).__name__
        if "NotFound" in name or "404" in str(error)[:200]:
            raise NotOnHub(f"{what} not found on the hub") from None
        raise HubError(f"Could not reach the hub for {what}: {error}") from None


def search(query: str, limit: int = 20) -> list[dict]:
    hub = _hub()
    models = _reach(lambda: list(hub.HfApi().list_models(
        search=query, filter="gguf", limit=limit, sort="downloads")), f"models matching {query!r}")
    return [{"id": m.id, "downloads": m.downloads, "likes": m.likes} for m in models]


def gguf_files(repository: str) -> list[str]:
    hub = _hub()
    check_repository(repository)
    files = _reach(lambda: hub.HfApi().list_repo_files(repository), repository)
    return sorted(f for f in files if f.endswith(".gguf") and "/" not in f)


def choose_file(repository: str) -> str:
    """The repository's Q4_K_M file when it has one (a good default), else its first GGUF."""
    files = gguf_files(repository)
    if not files:
        raise HubError(f"{repository} has no GGUF files")
    preferred = [f for f in files if PREFERRED_QUANTIZATION in f.lower()]
    return (preferred or files)[0]


@dataclass
class Download:
    """One download and how far it got; safe to read from other threads."""
    repository: str
    file_name: str
    id: str = field(default_factory=lambda: "dl-" + uuid.uuid4().hex[:12])
    status: str = "starting"  # starting, downloading, verifying, completed, failed, cancelled
    bytes_done: int = 0
    bytes_total: int | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def as_dict(self) -> dict:
        percent = (round(100 * self.bytes_done / self.bytes_total, 1)
                   if self.bytes_total else None)
        return {"id": self.id, "repository": self.repository, "file_name": self.file_name,
                "status": self.status, "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total, "percent": percent, "error": self.error}


def download(store: ModelStore, job: Download) -> Path:
    """Fetch `job`'s file into the store, updating `job` as it goes."""
    check_repository(job.repository)
    check_file_name(job.file_name)
    hub = _hub()
    url = hub.hf_hub_url(job.repository, job.file_name)
    meta = _reach(lambda: hub.get_hf_file_metadata(url, timeout=TIMEOUT),
                  f"{job.repository}/{job.file_name}")
    job.bytes_total = meta.size
    partial = store.partial_path(job.file_name)
    job.status = "downloading"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _fetch(meta.location or url, partial, job)
            break
        except (OSError, urllib.error.URLError) as error:
            if attempt == ATTEMPTS:
                raise HubError(f"The download broke off {ATTEMPTS} times: {error}; run it "
                               "again to resume") from None
    job.status = "verifying"
    _verify(partial, meta.size, meta.etag)
    return store.place(partial, job.file_name)


def _fetch(url: str, partial: Path, job: Download) -> None:
    start = partial.stat().st_size if partial.exists() else 0
    if job.bytes_total is not None and start >= job.bytes_total:
        return
    from huggingface_hub.utils import build_hf_headers
    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=TIMEOUT) as response:
        if start and response.status != 206:  # the server ignored the range: start over
            start = 0
        with open(partial, "ab" if start else "wb") as out:
            job.bytes_done = start
            while block := response.read(CHUNK):
                if job.bytes_done == 0 and not block.startswith(gguf.MAGIC):
                    out.close()
                    partial.unlink()
                    raise HubError(f"{job.file_name} is not a GGUF model file")
                if job._cancel.is_set():
                    raise Cancelled("cancelled; run the download again to resume it")
                out.write(block)
                job.bytes_done += len(block)
    if job.bytes_total is not None and job.bytes_done < job.bytes_total:
        raise ConnectionError(f"the connection closed at {job.bytes_done} of "
                              f"{job.bytes_total} bytes")


def _verify(partial: Path, size: int | None, etag: str | None) -> None:
    """Size and (for files the hub stores in LFS, as GGUFs are) sha256; a bad file is removed."""
    problem = None
    if size is not None and partial.stat().st_size != size:
        problem = f"it is {partial.stat().st_size} bytes, not {size}"
    elif etag and _SHA256.match(etag):
        digest = sha256_of(partial)
        if digest != etag:
            problem = f"its sha256 is {digest}, the hub says {etag}"
    if problem:
        partial.unlink()
        raise HubError(f"The downloaded file is damaged ({problem}); it was deleted")


class Downloads:
    """Downloads running in the background, for the REST API."""

    def __init__(self, store: ModelStore):
        self._store = store
        self._jobs: dict[str, Download] = {}
        self._lock = threading.Lock()

    def start(self, repository: str, file_name: str | None) -> Download:
        check_repository(repository)
        _hub()  # refuses at once when offline
        if file_name is None:
            file_name = choose_file(repository)
        check_file_name(file_name)
        with self._lock:
            running = [j for j in self._jobs.values() if not j.finished and
                       j.file_name == file_name]
            if running:
                return running[0]
            job = Download(repository, file_name)
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"download:{file_name}",
                         daemon=True).start()
        return job

    def _run(self, job: Download) -> None:
        try:
            download(self._store, job)
            job.status = "completed"
        except Cancelled as error:
            job.status, job.error = "cancelled", str(error)
        except (HubError, OSError) as error:
            job.status, job.error = "failed", str(error)

    def all(self) -> list[Download]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str | None) -> list[Download]:
        """Cancel one download, or every running one."""
        targets = [j for j in self.all() if not j.finished and job_id in (None, j.id)]
        for job in targets:
            job.cancel()
        return targets

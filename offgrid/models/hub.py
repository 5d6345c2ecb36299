"""Models from the Hugging Face Hub, or a mirror named by HF_ENDPOINT: search, pick a GGUF file,
and download it into the models folder with progress, cancel, resume and a sha256 check.

huggingface_hub resolves names and metadata (size, sha256, commit; HF_ENDPOINT, HF_TOKEN and
HF_HUB_OFFLINE as it reads them); the bytes come in ranged requests written to a hidden partial
file, so an interrupted download resumes where it stopped and only a complete, verified GGUF
file ever appears under its name. The mirror is not trusted with more than bytes: only http(s)
URLs are opened, nothing past the declared size is written, and cancel hangs up a mirror that
has gone silent instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from . import gguf
from .folder import ModelFolder, check_file_name, sha256_of

ATTEMPTS = 3  # tries per download; each resumes where the last stopped
PIECE = 64 * 1024  # read at most this much at a time: whatever has come is written at once
TIMEOUT = 30  # seconds a mirror may stay silent before the try counts as broken off
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# What a try that broke off raises: a cut, refused or silent connection, a garbled answer.
_BROKEN = (OSError, http.client.HTTPException)
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


class _Unresumable(HubError):
    """What came cannot be resumed from: the partial file is removed."""


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


def choose_file(repository: str, tag: str | None = None) -> str:
    """The repository's first GGUF file with `tag` (a quantization, say) in its name; without
    a tag its Q4_K_M file when it has one (a good default), else its first GGUF."""
    files = gguf_files(repository)
    if not files:
        raise HubError(f"{repository} has no GGUF files")
    if tag is not None:
        tagged = [f for f in files if tag.lower() in f.lower()]
        if not tagged:
            raise NotOnHub(f"{repository} has no GGUF file with {tag!r} in its name")
        return tagged[0]
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
    sha256: str | None = None  # the file's, when the hub says (it does for LFS files, as GGUFs)
    error: str | None = None
    started: float = field(default_factory=time.time)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _connection: socket.socket | None = field(default=None, repr=False)  # the one open now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cancel(self) -> None:
        """Stop the download. Its connection is shut down, which wakes a read that waits on a
        silent mirror at once; the lock keeps that from reaching a socket already closed."""
        with self._lock:
            self._cancel.set()
            if self._connection is not None:
                with contextlib.suppress(OSError):  # the mirror hung up first
                    # the plain socket's shutdown: an SSL socket's own also drops its SSL
                    # state under the reading thread's feet
                    socket.socket.shutdown(self._connection, socket.SHUT_RDWR)

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled; run the download again to resume it")

    @contextlib.contextmanager
    def _cancel_hangs_up(self, connection: socket.socket):
        with self._lock:
            self.check_cancelled()
            self._connection = connection
        try:
            yield
        finally:
            with self._lock:
                self._connection = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def as_dict(self) -> dict:
        percent = (round(100 * self.bytes_done / self.bytes_total, 1)
                   if self.bytes_total else None)
        return {"id": self.id, "repository": self.repository, "file_name": self.file_name,
                "status": self.status, "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total, "percent": percent, "error": self.error}


def download(folder: ModelFolder, job: Download) -> Path:
    """Fetch `job`'s file into the models folder, updating `job` as it goes."""
    check_repository(job.repository)
    check_file_name(job.file_name)
    hub = _hub()
    url = hub.hf_hub_url(job.repository, job.file_name)
    meta = _reach(lambda: hub.get_hf_file_metadata(url, timeout=TIMEOUT),
                  f"{job.repository}/{job.file_name}")
    job.bytes_total = meta.size
    job.sha256 = meta.etag if meta.etag and _SHA256.match(meta.etag) else None
    partial = folder.partial_path(job.file_name)
    if meta.size is not None and partial.exists() and partial.stat().st_size > meta.size:
        partial.unlink()  # left by another version of the file: nothing to resume from
    job.status = "downloading"
    try:
        _fetch_resuming(meta.location or url, url, partial, job)
        job.status = "verifying"
        _verify(partial, meta.size, meta.etag)
    except _Unresumable:
        partial.unlink(missing_ok=True)
        raise
    return folder.place(partial, job.file_name)


def _fetch_resuming(url: str, hub_url: str, partial: Path, job: Download) -> None:
    """Fetch until complete, resuming after a broken connection; after the last try the partial
    file stays, for the next download of this file to resume."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _fetch(url, hub_url, partial, job)
        except _BROKEN as error:
            job.check_cancelled()  # a hang-up by cancel breaks the read too
            if attempt == ATTEMPTS:
                raise HubError(f"The download broke off {ATTEMPTS} times: {error}; run it "
                               "again to resume") from None


def _fetch(url: str, hub_url: str, partial: Path, job: Download) -> None:
    start = partial.stat().st_size if partial.exists() else 0
    job.bytes_done = start
    if start == job.bytes_total:  # an earlier try got it all
        return
    with _answer(url, hub_url, start, job) as response:
        start = _resume_point(response, start)
        with open(partial, "ab" if start else "wb") as out:
            job.bytes_done = start
            _copy(response, out, job)
    if job.bytes_total is not None and job.bytes_done < job.bytes_total:
        raise ConnectionError(f"the connection closed at {job.bytes_done} of "
                              f"{job.bytes_total} bytes")


@contextlib.contextmanager
def _answer(url: str, hub_url: str, start: int, job: Download):
    """The mirror's answer to a GET of `url` from byte `start`, after following its redirects
    (http and https ones only: urllib's would follow ftp too)."""
    for _hop in range(MAX_REDIRECTS + 1):
        with _connected(url, job) as connection:
            connection.request("GET", _path(url), headers=_headers(url, hub_url, start))
            with connection.getresponse() as response:
                location = response.getheader("Location")
                if response.status not in _REDIRECTS or not location:
                    yield response
                    return
        try:
            url = urljoin(url, location)
        except ValueError:  # a broken [IPv6] host
            raise HubError(f"The mirror redirected the download to {location!r}, not a URL"
                           ) from None
    raise HubError(f"The mirror redirected the download more than {MAX_REDIRECTS} times")


@contextlib.contextmanager
def _connected(url: str, job: Download):
    """A connection to `url`'s host that cancel() hangs up."""
    scheme, host, port = _web_address(url)
    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = kind(host, port, timeout=TIMEOUT)  # the timeout bounds each silent wait
    try:
        connection.connect()
        with job._cancel_hangs_up(connection.sock):
            yield connection
    finally:
        connection.close()


def _web_address(url: str) -> tuple[str, str, int | None]:
    """`url`'s scheme, host and port, if it is an http(s) URL to a host one can connect to.
    Nothing else is opened: a mirror's answer pointing at file:// or ftp:// must not bring
    anything from elsewhere into the models folder."""
    try:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            parts.hostname.encode("idna")
            return parts.scheme, parts.hostname, parts.port
    except ValueError:  # a broken [IPv6], a port that is not a number, a host like a..b
        pass
    raise HubError(f"Refused to download from {url!r}: only http and https URLs to a valid "
                   "host are followed")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _headers(url: str, hub_url: str, start: int) -> dict:
    """huggingface_hub's headers; its token goes to the hub's own host only, never to a host the
    hub redirects to (as huggingface_hub itself does)."""
    from huggingface_hub.utils import build_hf_headers
    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
    if urlsplit(url).netloc != urlsplit(hub_url).netloc:
        headers.pop("authorization", None)
    if start:
        headers["Range"] = f"bytes={start}-"
    return headers


def _resume_point(response: http.client.HTTPResponse, start: int) -> int:
    """Where in the file the body begins: `start` for a ranged answer, 0 when the mirror
    ignored the range and sends the whole file (which then starts over cleanly)."""
    if response.status == 200:
        return 0
    if response.status == 206 and start:
        sent = response.getheader("Content-Range") or ""
        if not sent.startswith(f"bytes {start}-"):
            raise HubError(f"Asked for the bytes from {start} on, the mirror sent {sent!r}")
        return start
    problem = f"the mirror answered {response.status} {response.reason}"
    if response.status >= 500:
        raise ConnectionError(problem)  # worth another try
    raise HubError(f"Could not download the file: {problem}")


def _copy(response: http.client.HTTPResponse, out, job: Download) -> None:
    """Write the body as it comes, never past the size the hub declared."""
    while piece := response.read1(PIECE):
        job.check_cancelled()
        if job.bytes_total is not None and job.bytes_done + len(piece) > job.bytes_total:
            raise _Unresumable(f"The mirror sent more than the {job.bytes_total} bytes the hub "
                               f"declared for {job.file_name}; the partial file was deleted")
        if not _starts_like_gguf(job.bytes_done, piece):
            raise _Unresumable(f"{job.file_name} is not a GGUF model file")
        out.write(piece)
        job.bytes_done += len(piece)
    job.check_cancelled()  # a hang-up by cancel reads as the end of the body


def _starts_like_gguf(offset: int, piece: bytes) -> bool:
    """Whether `piece`, written at `offset`, agrees with the GGUF magic (pieces may be short)."""
    expected = gguf.MAGIC[offset:offset + len(piece)]
    return piece[:len(expected)] == expected


def _verify(partial: Path, size: int | None, etag: str | None) -> None:
    """Size and (for files the hub stores in LFS, as GGUFs are) sha256."""
    problem = None
    if size is not None and partial.stat().st_size != size:
        problem = f"it is {partial.stat().st_size} bytes, not {size}"
    elif etag and _SHA256.match(etag):
        digest = sha256_of(partial)
        if digest != etag:
            problem = f"its sha256 is {digest}, the hub says {etag}"
    if problem:
        raise _Unresumable(f"The downloaded file is damaged ({problem}); it was deleted")


class Downloads:
    """Downloads running in the background, for the REST API."""

    def __init__(self, folder: ModelFolder):
        self._folder = folder
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
            download(self._folder, job)
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

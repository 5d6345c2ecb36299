"""A Hugging Face Hub mirror on loopback, for download tests: it answers the endpoints
huggingface_hub calls (file metadata, repository tree, model search) and serves real files with
byte ranges. Knobs make it slow, cut connections, fall silent, send more than it declared, point
the download somewhere else, or lie about a checksum."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0" * 40


@dataclass
class HostedFile:
    path: Path
    sha256: str = ""
    cut_after: int | None = None  # close the connection after this many body bytes, once
    stall_after: int | None = None  # go silent after this many body bytes until released, once
    release: threading.Event = field(default_factory=threading.Event)  # ends the silence
    extra_bytes: int = 0  # sent after the file's own, beyond the size the metadata declares
    chunked: bool = False  # send the body chunked, with no Content-Length
    redirect: str | None = None  # answer the file's URL with a 302 to here instead of bytes
    redirect_head: bool = True  # ... HEAD too; False keeps the metadata honest, GET only
    bytes_per_second: int | None = None
    requests: list = field(default_factory=list)  # the Range header of each GET
    sent: int = 0  # body bytes written, all GETs together

    def __post_init__(self):
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()


class HubMock(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[str, dict[str, HostedFile]] = {}
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def host(self, repository: str, name: str, path: Path, **knobs) -> HostedFile:
        hosted = HostedFile(path, **knobs)
        self.repos.setdefault(repository, {})[name] = hosted
        return hosted

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubMock

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._file(send_body=False)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/models":
            query = parse_qs(url.query).get("search", [""])[0]
            return self._json([{"id": repo, "_id": repo, "downloads": 42, "likes": 1,
                                "tags": ["gguf"]} for repo in self.server.repos if query in repo])
        if url.path.startswith("/api/models/") and "/tree/" in url.path:
            repo = url.path[len("/api/models/"):].split("/tree/")[0]
            files = self.server.repos.get(repo)
            if files is None:
                return self._json({"error": "Repository not found"}, 404)
            return self._json([{"type": "file", "path": name, "size": f.path.stat().st_size,
                                "oid": "1" * 40, "lfs": {"size": f.path.stat().st_size,
                                                         "oid": f.sha256, "pointerSize": 134}}
                               for name, f in files.items()])
        self._file(send_body=True)

    def _json(self, value, status: int = 200) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, send_body: bool) -> None:
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._json({"error": "not found"}, 404)
        repo, name = "/".join(parts[:2]), "/".join(parts[4:])
        hosted = self.server.repos.get(repo, {}).get(name)
        if hosted is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = hosted.path.read_bytes()
        start = 0
        if send_body:
            hosted.requests.append(self.headers.get("Range"))
        if hosted.redirect and (send_body or hosted.redirect_head):
            self.send_response(302)  # as the hub does for LFS files: metadata on the redirect
            self._metadata(hosted, len(data))
            self.send_header("Location", hosted.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][len("bytes="):].split("-")[0])
        body = data[start:] + bytes(hosted.extra_bytes)
        self.send_response(206 if start else 200)
        self._metadata(hosted, len(data))
        if hosted.chunked and send_body:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if send_body:
            self._send(hosted, body)

    def _metadata(self, hosted: HostedFile, size: int) -> None:
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{hosted.sha256}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("ETag", f'"{hosted.sha256}"')

    def _send(self, hosted: HostedFile, body: bytes) -> None:
        limit = len(body)
        if hosted.cut_after is not None:
            limit, hosted.cut_after = min(limit, hosted.cut_after), None
        stall_at, hosted.stall_after = hosted.stall_after, None
        try:
            for piece in _pieces(body[:limit], stall_at, hosted.release):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if hosted.chunked
                                 else piece)
                hosted.sent += len(piece)
                if hosted.bytes_per_second:
                    time.sleep(len(piece) / hosted.bytes_per_second)
            if limit < len(body):
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
            elif hosted.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client hung up
            self.close_connection = True


def _pieces(body: bytes, stall_at: int | None, release: threading.Event):
    """`body` in pieces of 256 KiB, waiting for `release` once `stall_at` bytes are out."""
    offset, step = 0, 256 * 1024
    while offset < len(body):
        if offset == stall_at:
            release.wait()
        end = min(offset + step, len(body))
        if stall_at is not None and offset < stall_at < end:
            end = stall_at
        yield body[offset:end]
        offset = end

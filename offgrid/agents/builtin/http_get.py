"""`http_get`: one web page or file by URL, for a model on a machine that has a network. Off by
default, and only an admin may turn it on: it is a request from the server's own address.

So that it cannot be pointed at this machine or its LAN (the admin pages of a router, a cloud's
metadata address, another service on loopback), the name is resolved here, every address it
has is checked, and only a public one is connected to: loopback, link-local, private, multicast,
unspecified and reserved addresses are refused, IPv4 and IPv6, an IPv4 address inside an IPv6
one (mapped, 6to4) by what it holds, unless the address is in the admin's
`http_get_allowed_networks`. The connection goes to the address that was checked, speaking to
it by the URL's name (Host header, TLS server name and certificate), so a second DNS answer
cannot lead elsewhere; each redirect is checked the same way. The whole call has a deadline,
and the body is cut at MAX_BODY_BYTES; HTML is reduced to its text."""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urljoin, urlsplit

from ...kb import ingest
from ...kb.errors import KbError
from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, seconds_left, stopped_when_due, string

MAX_URL_CHARS = 2048
MAX_BODY_BYTES = 256 * 1024
MAX_REDIRECTS = 5
_READ_BYTES = 64 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/ld+json", "application/rss+xml", "application/atom+xml")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# ipaddress's is_<kind> flags that mark an address as not the public internet's
_NOT_PUBLIC = {"loopback": "loopback", "link_local": "link-local", "unspecified": "unspecified",
               "multicast": "multicast", "private": "private", "site_local": "site-local",
               "reserved": "reserved"}
_HEADERS = {"User-Agent": "OffGrid-http_get/1", "Accept-Encoding": "identity",
            "Accept": "text/html, text/plain, application/json, */*;q=0.5",
            "Connection": "close"}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"  # what a URL's path and query may hold as they are

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Fetched:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    cut: bool  # the body was longer than MAX_BODY_BYTES


class HttpGet(BuiltinTool):
    name = "http_get"
    description = ("Fetch a web page or file by its http:// or https:// URL and read its text "
                   f"(HTML as plain text, the first {MAX_BODY_BYTES // 1024} KiB). Addresses of "
                   "this machine and its local network are refused.")
    parameters = {
        "type": "object",
        "properties": {"url": {"type": "string", "maxLength": MAX_URL_CHARS,
                               "description": "the http:// or https:// URL to fetch"}},
        "required": ["url"],
        "additionalProperties": False,
    }
    enabled_by_default = False
    admins_only = True
    timeout_s = 20.0

    def __init__(self, allowed_networks: list[Network]):
        self._allowed = tuple(allowed_networks)  # not public, but the admin's to reach

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        asked = url = string(arguments, "url", MAX_URL_CHARS).strip()
        due = time.monotonic() + seconds_left(self, context)
        for hop in range(MAX_REDIRECTS + 1):
            try:
                fetched = self._fetch(_target(url), due, context)
            except Refused as refused:
                if hop:  # each redirect is checked as the URL asked for was
                    raise Refused(f"{asked} redirected to {url}: {refused}") from None
                raise
            location = fetched.headers.get("Location")
            if fetched.status not in _REDIRECTS or not location:
                return _result(url, fetched)
            url = urljoin(url, location.strip())
        raise Refused(f"{asked} redirects more than {MAX_REDIRECTS} times")

    def _fetch(self, target: SplitResult, due: float, context: ToolContext) -> _Fetched:
        family, sockaddr = self._address(target, due, context)
        connection = _Pinned(target, family, sockaddr, max(0.001, due - time.monotonic()))
        with stopped_when_due(context, due - time.monotonic(), connection.hang_up) as watch:
            try:
                fetched = _exchange(connection, target)
            except (OSError, http.client.HTTPException) as error:
                if not (watch.reason or isinstance(error, TimeoutError)):
                    raise Refused(f"Fetching {target.geturl()} failed: {_said(error)}") from None
                fetched = None
            finally:
                connection.close()
        if fetched is None or watch.reason:  # a hang-up may read as the body's end
            raise Refused(f"Fetching {target.geturl()} {watch.reason or 'timed out'}")
        return fetched

    def _address(self, target: SplitResult, due: float, context: ToolContext
                 ) -> tuple[int, tuple]:
        """The first address of the URL's host this tool may connect to (family, sockaddr)."""
        found = _resolve(target.hostname, _port(target), due, context)
        if not found:
            raise Refused(f"The host {target.hostname} has no IPv4 or IPv6 address")
        refusals = []
        for family, sockaddr in found:
            address = ipaddress.ip_address(sockaddr[0])
            why = refusal(address, self._allowed)
            if why is None:
                return family, sockaddr
            refusals.append(f"{address} is {why}")
        raise Refused(f"{target.hostname} is not a public address ({'; '.join(refusals)}): "
                      "http_get does not reach this machine or its local network unless the "
                      "admin allows that network (http_get_allowed_networks)")


def refusal(address: Address, allowed: tuple[Network, ...]) -> str | None:
    """Why `address` may not be connected to ("loopback", ...), or None when it may."""
    inner = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            inner = [address.ipv4_mapped]  # ::ffff:a.b.c.d is a.b.c.d
        elif address.sixtofour is not None:
            inner.append(address.sixtofour)
    if any(a in network for a in inner for network in allowed):
        return None
    for a in inner:
        kinds = [word for flag, word in _NOT_PUBLIC.items() if getattr(a, f"is_{flag}", False)]
        if kinds or not a.is_global:
            return (kinds[0] if kinds else "not public") + ("" if a == address else f" ({a})")
    return None


def _target(url: str) -> SplitResult:
    try:
        target = urlsplit(url)
        port = target.port
    except ValueError as error:
        raise Refused(f"{url!r} is not a URL: {error}") from None
    if target.scheme.lower() not in _DEFAULT_PORTS:
        raise Refused(f"{url!r} is not an http:// or https:// URL")
    if not target.hostname:
        raise Refused(f"{url!r} names no host")
    if target.username is not None or target.password is not None:
        raise Refused("URLs with a user name or password are refused")
    if port == 0:
        raise Refused(f"{url!r} has port 0")
    return target


def _port(target: SplitResult) -> int:
    return target.port or _DEFAULT_PORTS[target.scheme.lower()]


def _resolve(host: str, port: int, due: float, context: ToolContext) -> list[tuple[int, tuple]]:
    """The host's addresses, (family, sockaddr); the look-up may take no longer than the call
    (getaddrinfo has no timeout of its own, so it runs in a thread of its own)."""
    found: dict = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:  # UnicodeError: a name IDNA cannot encode
            found["error"] = error
        done.set()

    threading.Thread(target=look_up, name="http_get-resolve", daemon=True).start()
    with stopped_when_due(context, due - time.monotonic(), done.set) as watch:
        done.wait()
    if "addresses" in found:
        return [(family, sockaddr) for family, _, _, _, sockaddr in found["addresses"]
                if family in (socket.AF_INET, socket.AF_INET6)]
    if "error" in found:
        raise Refused(f"The host {host} cannot be found: {_said(found['error'])}")
    raise Refused(f"Looking up the host {host} {watch.reason}")


class _Pinned(http.client.HTTPConnection):
    """HTTP, or HTTPS, to the address that was checked, by the URL's name."""

    def __init__(self, target: SplitResult, family: int, sockaddr: tuple, timeout: float):
        super().__init__(target.hostname, _port(target), timeout=timeout)
        self.default_port = _DEFAULT_PORTS[target.scheme.lower()]  # Host leaves it out
        self._family, self._sockaddr = family, sockaddr
        self._tls = target.scheme.lower() == "https"
        self._socket: socket.socket | None = None  # kept: a response to read takes self.sock

    def connect(self) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._sockaddr)
            if self._tls:
                sock = _tls_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = self._socket = sock

    def hang_up(self) -> None:
        """Wake a read blocked in another thread: the call is over."""
        sock = self._socket
        if sock is not None:
            try:  # the plain socket's shutdown, under TLS too: the fd, not the TLS session
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # certificates checked against the URL's name


def _exchange(connection: _Pinned, target: SplitResult) -> _Fetched:
    path = quote(target.path or "/", safe=_PATH_SAFE)
    if target.query:
        path += "?" + quote(target.query, safe=_PATH_SAFE)
    connection.request("GET", path, headers=_HEADERS)
    response = connection.getresponse()
    body = bytearray()
    if response.status not in _REDIRECTS:
        while len(body) <= MAX_BODY_BYTES and (piece := response.read1(_READ_BYTES)):
            body += piece
    cut = len(body) > MAX_BODY_BYTES
    return _Fetched(response.status, response.reason, response.headers,
                    bytes(body[:MAX_BODY_BYTES]), cut)


def _result(url: str, fetched: _Fetched) -> ToolResult:
    content_type = fetched.headers.get("Content-Type", "")
    size = f"{len(fetched.body):,} bytes" + (
        f", cut at {MAX_BODY_BYTES:,}" if fetched.cut else "")
    head = (f"HTTP {fetched.status} {fetched.reason} from {url}\n"
            f"Content-Type: {content_type or 'not given'} ({size})")
    return ToolResult(head + "\n\n" + _readable(fetched), is_error=fetched.status >= 400)


def _readable(fetched: _Fetched) -> str:
    media = fetched.headers.get_content_type()
    if not fetched.body:
        return "(no content)"
    if media in _HTML_TYPES:
        try:
            page = ingest.extract(fetched.body, "page.html", "text/html")
        except KbError:
            return "(the page holds no readable text)"
        return (f"Title: {page.title}\n\n" if page.title else "") + page.text
    if media.startswith(_TEXT_TYPES):
        charset = fetched.headers.get_content_charset() or "utf-8"
        try:
            return fetched.body.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return fetched.body.decode("utf-8", "replace")
    return f"(binary content of type {media}, not shown)"


def _said(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not valid ({error.verify_message})"
    if isinstance(error, socket.gaierror):
        return error.strerror or str(error)
    return str(error) or type(error).__name__

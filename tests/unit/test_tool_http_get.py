"""The http_get tool against real HTTP(S) servers on loopback: refused unless a network is allowed,
the address checked is the one asked, certificates and redirects checked, bodies cut and
deadlines kept."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from offgrid.agents.builtin import builtin_tools
from offgrid.agents.builtin.http_get import MAX_BODY_BYTES, refusal
from offgrid.agents.tools import ToolContext, ToolResult
from offgrid.config import Settings
from support.builtin_tools import TOOLS, refused
from support.waiting import wait_until

PAGE = (b"<html><head><title>Field radio</title></head><body><nav>Home | About</nav>"
        b"<h1>Resetting</h1><p>Hold POWER and MENU for ten seconds.</p></body></html>")


class Site(ThreadingHTTPServer):
    """A web server on a loopback address, which notes each path asked for and the Host it was
    asked by; HTTPS with `tls`."""
    daemon_threads = True

    def __init__(self, host: str, tls: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Pages)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"http{'s' if tls else ''}://{host}:{self.server_address[1]}"
        self.asked: list[str] = []
        self.hosts: list[str] = []
        self.release = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Pages(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        self.server.hosts.append(self.headers["Host"])
        if self.path.startswith("/to/"):  # /to/<url>: a redirect there
            return self._send(302, b"", "text/plain", Location=unquote(self.path[len("/to/"):]))
        if self.path == "/stall":  # headers, then silence
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"a")
            self.wfile.flush()
            self.server.release.wait(60)
            return
        pages = {"/page": (200, PAGE, "text/html; charset=utf-8"),
                 "/big": (200, b"x" * (4 * MAX_BODY_BYTES), "text/plain"),
                 "/image": (200, bytes(range(256)), "image/png"),
                 "/data": (200, b'{"ok": true}', "application/json")}
        self._send(*pages.get(self.path, (404, b"no such page", "text/plain")))

    def _send(self, status: int, body: bytes, content_type: str, **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    site = Site("127.0.0.1")
    yield site
    site.close()


@pytest.fixture(scope="module")
def other_site():
    """Another loopback address, one the allowed network leaves out."""
    site = Site("127.0.0.2")
    yield site
    site.close()


def allowing(networks: str) -> dict:
    return {tool.name: tool for tool in builtin_tools(
        Settings(http_get_allowed_networks=networks))}


def fetch(url: str, networks: str = "", **context) -> ToolResult:
    return allowing(networks)["http_get"].call({"url": url},
                                               ToolContext(Path("/nonexistent"), None, **context))


def test_loopback_is_refused_by_default_and_nothing_is_sent(site):
    port, asked = site.server_address[1], len(site.asked)
    for url in (site.url + "/page", f"http://localhost:{port}/page", f"http://[::1]:{port}/",
                f"http://0x7f.1:{port}/page", f"http://2130706433:{port}/page"):
        refused(fetch(url), "not a public address", "loopback", "http_get_allowed_networks")
    assert site.asked[asked:] == []


def test_an_allowed_network_is_reached_and_its_page_read_as_text(site):
    result = fetch(site.url + "/page", "127.0.0.0/8")
    assert not result.is_error, result
    head, text = result.text.split("\n\n", 1)
    assert head == (f"HTTP 200 OK from {site.url}/page\n"
                    f"Content-Type: text/html; charset=utf-8 ({len(PAGE)} bytes)")
    assert text == "Title: Field radio\n\nResetting\n\nHold POWER and MENU for ten seconds."
    assert fetch(site.url + "/data", "127.0.0.1").text.endswith('\n\n{"ok": true}')
    assert fetch(site.url + "/image", "127.0.0.1").text.endswith(
        "(binary content of type image/png, not shown)")
    missing = fetch(site.url + "/nothing here", "127.0.0.1")
    assert missing.is_error and missing.text.startswith("HTTP 404 Not Found")
    assert site.asked[-1] == "/nothing%20here"


def test_the_site_is_asked_by_the_urls_name_at_the_address_checked(site):
    port = site.server_address[1]
    assert "Resetting" in fetch(f"http://localhost:{port}/page", "127.0.0.1").text
    assert site.hosts[-1] == f"localhost:{port}"


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory):
    """An HTTPS site whose certificate, for localhost, no authority signed; and the names its
    clients asked for in the TLS handshake (SNI)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", folder / "key.pem", "-out", folder / "cert.pem"],
                   check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    names = []
    tls.sni_callback = lambda connection, name, context: names.append(name)
    site = Site("127.0.0.1", tls)
    yield site, names
    site.close()


def test_https_checks_the_certificate_against_the_urls_name(tls_site):
    site, names = tls_site
    refused(fetch(f"https://localhost:{site.server_address[1]}/page", "127.0.0.1"),
            "TLS certificate is not valid", "self-signed")
    assert names == ["localhost"] and site.asked == []


def test_a_redirect_is_followed_and_checked_again(site, other_site):
    assert "Resetting" in fetch(f"{site.url}/to//page", "127.0.0.1").text
    for target in (other_site.url + "/page", "http://169.254.169.254/latest/meta-data",
                   "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"):
        refused(fetch(f"{site.url}/to/{target}", "127.0.0.1/32"), f"redirected to {target}",
                "not a public address")
    refused(fetch(f"{site.url}/to/file:///etc/passwd", "127.0.0.1"), "not an http://")
    refused(fetch(f"{site.url}/to/{site.url}/to/{site.url}/to/{site.url}/to/{site.url}/to/"
                  f"{site.url}/to//page", "127.0.0.1"), "more than 5 times")
    assert other_site.asked == []


def test_the_body_is_cut(site):
    result = fetch(site.url + "/big", "127.0.0.1")
    assert f"(262,144 bytes, cut at {MAX_BODY_BYTES:,})" in result.text
    assert result.text.endswith("\n\n" + "x" * MAX_BODY_BYTES)


def test_a_silent_server_runs_into_the_deadline(site):
    refused(fetch(site.url + "/stall", "127.0.0.1", deadline=time.monotonic() + 1),
            "timed out")


def test_a_cancelled_run_stops_its_fetch(site):
    cancelled, results = threading.Event(), []
    asked = len(site.asked)
    runner = threading.Thread(target=lambda: results.append(
        fetch(site.url + "/stall", "127.0.0.1", cancelled=cancelled)))
    runner.start()
    wait_until(lambda: "/stall" in site.asked[asked:])
    cancelled.set()
    runner.join(TOOLS["http_get"].timeout_s / 2)  # well before the call would time out
    assert not runner.is_alive()
    refused(results[0], "cancelled")


@pytest.mark.parametrize("url, why", [
    ("ftp://example.org/x", "not an http://"), ("file:///etc/passwd", "not an http://"),
    ("http://user:secret@example.org/", "user name or password"), ("http:///x", "names no host"),
    ("http://example.org:99999/", "not a URL"), ("http://no-such-host.invalid/", "cannot be found"),
])
def test_a_bad_url_is_refused(url, why):
    refused(fetch(url), why)


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("192.168.1.1", "private"),
    ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.0.1", "not public"), ("240.0.0.1", "private"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"),
    ("fc00::1", "private"), ("ff02::1", "multicast"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback (127.0.0.1)"), ("::ffff:10.0.0.1", "private (10.0.0.1)"),
    ("2002:7f00:1::1", "loopback (127.0.0.1)"), ("64:ff9b::a00:1", "reserved"),
    ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_which_addresses_are_not_public(address, why):
    assert refusal(ipaddress.ip_address(address), ()) == why


def test_an_allowed_network_admits_its_addresses_only():
    allowed = (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd00::/8"))
    assert refusal(ipaddress.ip_address("192.168.1.7"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:192.168.1.7"), allowed) is None
    assert refusal(ipaddress.ip_address("fd12::1"), allowed) is None
    assert refusal(ipaddress.ip_address("192.168.2.7"), allowed) == "private"


def test_the_allowed_networks_setting_is_checked_at_start():
    assert Settings(http_get_allowed_networks=" 10.0.0.5, fd00::/8 ,").http_get_networks() == [
        ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("fd00::/8")]
    with pytest.raises(ValueError, match="http_get_allowed_networks.*'10.0.0.0/33'"):
        Settings(http_get_allowed_networks="10.0.0.0/33")

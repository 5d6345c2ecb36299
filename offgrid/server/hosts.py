"""Which names a request may call this server by: the `Host` header, checked against DNS
rebinding.

A web page on a name its owner controls can point that name at 127.0.0.1 once the page has
loaded; the browser then sends the page's requests here as same-origin, with its own name in
`Host` and `Origin`. Answering only names this machine goes by (localhost, IP literals, which no
DNS answer can rebind, the bound host, the hostname and the configured `allowed_hosts`) leaves
such a page nothing but 403s, as Ollama and llama-server do.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from .errors import Forbidden
from .http import Request

# A name or IPv4 address, or an IPv6 address in brackets; then maybe a port.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:@/\s]+))(?::\d{1,5})?")


class HostPolicy:
    def __init__(self, allowed_hosts: str, bound_host: str):
        configured = {_normal(name) for name in allowed_hosts.split(",") if name.strip()}
        self.any_host = "*" in configured
        hostname = _normal(socket.gethostname())
        # <hostname>.local is how the LAN finds the machine by mDNS, which is never a DNS answer.
        self.names = configured | {"localhost", _normal(bound_host), hostname,
                                   hostname.split(".")[0] + ".local"}

    def check(self, request: Request) -> None:
        """403 unless every `Host` header names this server; none at all (HTTP/1.0) is fine."""
        if self.any_host:
            return
        for host in request.headers.get_all("Host") or []:
            if not self.allows(host):
                raise Forbidden(f"Requests for the host {host!r} are not allowed, as a defence "
                                "against DNS rebinding; to reach this server by that name, add "
                                "it to allowed_hosts (OFFGRID_ALLOWED_HOSTS, comma-separated)",
                                code="host_not_allowed")

    def allows(self, host: str) -> bool:
        found = _HOST.fullmatch(host.strip())
        if found is None:
            return False
        if found["ipv6"] is not None:
            return _is_ip(found["ipv6"], ipaddress.IPv6Address)
        name = _normal(found["name"])
        # Browsers resolve *.localhost to loopback themselves, never through DNS.
        return (name in self.names or name.endswith(".localhost")
                or _is_ip(name, ipaddress.IPv4Address))


def _normal(name: str) -> str:
    # "name." is the same DNS name as "name".
    return name.strip().lower().rstrip(".")


def _is_ip(text: str, kind) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True

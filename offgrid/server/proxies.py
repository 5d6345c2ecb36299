"""Who a request is from when a load balancer passed it on: the peer is the balancer, and the
client is the address the balancer wrote into X-Forwarded-For. Only balancers named in
`trusted_proxies` are believed, and only for the hop they added: every proxy appends the
address it got the request from, so the client is the rightmost address that is not itself a
trusted proxy; anything left of it may be made up by the client."""

from __future__ import annotations

import ipaddress
from email.message import Message

from ..config import Network


class TrustedProxies:
    def __init__(self, networks: list[Network]):
        self.networks = networks

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, headers: Message) -> str:
        """The client's address: `peer` itself, unless `peer` is a trusted proxy that says whom
        it passes the request on for."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in headers.get_all("X-Forwarded-For") or []
                for hop in value.split(",")]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop if _ip(hop) is not None else peer  # proxies write addresses only
        return hops[0] if hops else peer  # all proxies: the first is the client


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None

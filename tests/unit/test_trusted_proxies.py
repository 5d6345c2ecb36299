"""The client behind a trusted load balancer: the rightmost X-Forwarded-For hop that is not a
trusted proxy, never what a client wrote left of it, and nothing from an untrusted peer."""

from email.message import Message

import pytest

from offgrid.config import ConfigError, Settings
from offgrid.server.proxies import TrustedProxies

SETTINGS = Settings(trusted_proxies="10.0.0.0/24, 192.168.1.5")
PROXIES = TrustedProxies(SETTINGS.trusted_proxy_networks())


def forwarded(*values: str) -> Message:
    headers = Message()
    for value in values:
        headers["X-Forwarded-For"] = value
    return headers


@pytest.mark.parametrize("peer, headers, client", [
    ("10.0.0.2", forwarded("203.0.113.7"), "203.0.113.7"),
    # A client's own X-Forwarded-For is left of what the balancer appended.
    ("10.0.0.2", forwarded("1.2.3.4, 203.0.113.7"), "203.0.113.7"),
    ("10.0.0.2", forwarded("1.2.3.4", "203.0.113.7"), "203.0.113.7"),  # two headers: one list
    # Two trusted hops: the client is the one before them.
    ("10.0.0.2", forwarded("203.0.113.7, 192.168.1.5"), "203.0.113.7"),
    ("10.0.0.2", forwarded("2001:db8::1"), "2001:db8::1"),
    ("10.0.0.2", forwarded(), "10.0.0.2"),  # the balancer itself asking (its health checks)
    ("10.0.0.2", forwarded("10.0.0.9"), "10.0.0.9"),  # a client on the balancers' network
    ("10.0.0.2", forwarded("not-an-address"), "10.0.0.2"),
    ("203.0.113.9", forwarded("1.2.3.4"), "203.0.113.9"),  # an untrusted peer says nothing
])
def test_the_client_is_the_last_hop_before_the_trusted_proxies(peer, headers, client):
    assert PROXIES.client(peer, headers) == client


def test_no_trusted_proxies_trusts_nobody():
    assert TrustedProxies([]).client("127.0.0.1", forwarded("1.2.3.4")) == "127.0.0.1"


def test_a_value_that_is_not_networks_is_refused():
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8, nginx")

"""Reading a server's /metrics the way Prometheus does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from support.http import get

Samples = dict[tuple[str, frozenset], float]


def scrape(url: str, headers: dict | None = None) -> Samples:
    """{(sample name, frozenset of labels): value} of the server at `url`."""
    status, response_headers, text = get(url + "/metrics", headers=headers)
    assert status == 200 and response_headers["Content-Type"].startswith("text/plain"), text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels) -> float:
    """The sample `name` with exactly `labels`; 0 where there is none (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, *names: str) -> float:
    """The samples of `names` summed over all their labels."""
    return sum(found for (name, _), found in samples.items() if name in names)

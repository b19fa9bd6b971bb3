"""Reading a process's Prometheus ``/metrics`` in tests: one scrape, samples by name and labels."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .timing import t

Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> Samples:
    """Every sample at ``url``, keyed by (name, frozenset of its labels)."""
    with urllib.request.urlopen(url, timeout=t(5)) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, default: float | None = None, **labels: str) -> float | None:
    """The value of ``name`` with exactly ``labels`` (``default`` when absent)."""
    return samples.get((name, frozenset(labels.items())), default)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)

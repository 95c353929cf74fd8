"""The numbers behind :mod:`cachekit.metrics`: counters and timings per label set, kept by the process.

The instrumentation hooks (:mod:`cachekit._instrument`) add to plain Python objects here: an integer attribute
for a counter, a list append for a duration. Exporters read them when they are scraped or collected
(Prometheus through a collector, OpenTelemetry through observable instruments), so the cost a cache hit pays
does not depend on the exporter. Label sets are bounded: past :data:`MAX_LABEL_SETS` resource/action pairs a
namespace's new pairs are counted under ``resource="other", action="other"``.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Final

__all__ = ["AGGREGATES", "LATENCY_BUCKETS", "Aggregates", "Counters", "Timings"]

#: Histogram bucket bounds (seconds) for driver calls and loads: 10 µs (a memory hit) to 10 s.
LATENCY_BUCKETS: Final = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
#: Distinct (namespace, resource, action, tier) label sets kept at most; more are counted as "other".
MAX_LABEL_SETS: Final = 1000
#: Durations buffered per series before the hook folds them into buckets itself.
FOLD_AT: Final = 256

Labels = tuple[str, ...]
#: ``sink(name, labels, durations)``: called with every batch of durations folded (the OpenTelemetry exporter).
Sink = Callable[[str, Labels, list[float]], None]


class Counters:
    """The counters of one (namespace, resource, action, tier) label set."""

    __slots__ = ("errors", "hits", "labels", "misses", "sets")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.hits = self.misses = self.sets = self.errors = 0


class Timings:
    """The durations of one histogram series: appended to :attr:`pending` on the hot path, folded later."""

    __slots__ = ("buckets", "count", "labels", "lock", "name", "pending", "sinks", "total")

    def __init__(self, name: str, labels: Labels, sinks: list[Sink]) -> None:
        self.name, self.labels, self.sinks = name, labels, sinks
        self.pending: list[float] = []
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def add(self, seconds: float) -> None:
        """Record one duration (the hooks inline this as ``pending.append`` plus a length check)."""
        self.pending.append(seconds)
        if len(self.pending) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move the pending durations into the buckets and hand them to the sinks (before every export)."""
        with self.lock:
            batch = self.pending[:]
            del self.pending[: len(batch)]
            if not batch:
                return
            buckets = self.buckets
            for seconds in batch:
                buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.total += sum(batch)
            self.count += len(batch)
        for sink in list(self.sinks):
            sink(self.name, self.labels, batch)


class Aggregates:
    """Every series of the process, by label set (one instance, :data:`AGGREGATES`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[Labels, Counters] = {}
        self.invalidations: dict[Labels, int] = {}
        self.calls: dict[Labels, Timings] = {}
        self.loads: dict[Labels, Timings] = {}
        self.sinks: list[Sink] = []
        self._pairs: dict[str, set[tuple[str, str]]] = {}

    def bounded(self, namespace: str, resource: str, action: str) -> tuple[str, str]:
        """``(resource, action)``, or ``("other", "other")`` once the namespace has too many pairs."""
        pairs = self._pairs.setdefault(namespace, set())
        if (resource, action) in pairs:
            return resource, action
        if len(pairs) >= MAX_LABEL_SETS:
            return "other", "other"
        pairs.add((resource, action))
        return resource, action

    def counters_for(self, namespace: str, resource: str, action: str, tier: str) -> Counters:
        """The counters of a label set (created on first use)."""
        with self.lock:
            resource, action = self.bounded(namespace, resource, action)
            labels = (namespace, resource, action, tier)
            found = self.counters.get(labels)
            if found is None:
                found = self.counters[labels] = Counters(labels)
            return found

    def call_timings(self, namespace: str, tier: str, operation: str) -> Timings:
        """Driver call durations of (namespace, tier, operation: ``get`` | ``set``)."""
        return self._timings(self.calls, "driver_call", (namespace, tier, operation))

    def load_timings(self, namespace: str, resource: str, action: str) -> Timings:
        """Load (miss) durations of (namespace, resource, action)."""
        with self.lock:
            resource, action = self.bounded(namespace, resource, action)
        return self._timings(self.loads, "load", (namespace, resource, action))

    def invalidated(self, namespace: str, resource: str, scopes: int) -> None:
        with self.lock:
            key = (namespace, resource)
            self.invalidations[key] = self.invalidations.get(key, 0) + scopes

    def fold_all(self) -> None:
        """Fold every pending duration (exporters call this before they read the histograms)."""
        for timings in [*self.calls.values(), *self.loads.values()]:
            timings.fold()

    def reset(self) -> None:
        """Forget every series (tests; counters restart at zero)."""
        with self.lock:
            self.counters.clear()
            self.invalidations.clear()
            self.calls.clear()
            self.loads.clear()
            self._pairs.clear()

    def _timings(self, table: dict[Labels, Timings], name: str, labels: Labels) -> Timings:
        with self.lock:
            found = table.get(labels)
            if found is None:
                found = table[labels] = Timings(name, labels, self.sinks)
            return found


#: The process's series.
AGGREGATES: Final = Aggregates()


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: a lock another thread held at the fork (a scrape, the
    fleet publisher reading the counters) would be held forever, and the child's first read of the series would
    hang. The child starts with a free lock (the tables themselves are consistent: they change under the GIL)."""
    AGGREGATES.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

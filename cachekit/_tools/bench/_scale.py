"""Section ``scale`` (issue 8): what one write's invalidation costs with 1,000 to 1,000,000 entries cached.

Each driver is filled with N entries of one resource (written straight through the driver, in batches), then a
decorated ``update`` is timed ``writes`` times: its invalidation bumps the generations of the item, the
aggregates and the two partition values it touches, whatever N is. Target: the median at the largest N is at most
2x the median at the smallest N, on every driver. Memory, filesystem and Redis go from 1,000 to 1,000,000
(``--quick``: to 10,000); S3 on moto to 100,000 (``--quick``: 100 and 1,000), as filling it costs one PUT per entry.

Then storage: ``churn`` writes, each followed by the read it invalidated, with a 60 s TTL on a clock that moves
1 ms per write (memory) or in real time (Redis): the entries alive, how many of them are current and how many
are orphans left under old generations, and the generation counters kept.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ._core import Outcome, Section, Settings
from ._services import Services

__all__ = ["run_scale"]

_BATCH = 10_000


class _Items:
    """The resource whose writes are timed."""

    name = "items"

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.partitions = {"by_region": ["region"]}
        self.rows: dict[str, dict[str, Any]] = {}

    def make(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        from cachekit import cached, invalidates

        rows = self.rows

        @cached(action="get", cache=self.cache, resource="items")
        def get(id: str) -> dict[str, Any]:
            return rows.get(id, {"id": id, "region": "r0"})

        @invalidates("update", cache=self.cache, resource="items", partitions=self.partitions,
                     before=lambda id, data: rows.get(id, {"id": id, "region": "r0"}))
        def update(id: str, data: dict[str, Any]) -> dict[str, Any]:
            rows[id] = {**rows.get(id, {"id": id, "region": "r0"}), **data}
            return rows[id]

        return get, update


def _fill(cache: Any, count: int, threads: int = 1) -> None:
    blob = cache.codec.encode({"id": "x", "region": "r1", "payload": "y" * 64}, 3600)
    base = f"{cache.namespace}/resource=items/action=get/"

    def batch(start: int) -> None:
        cache.driver.set_many({f"{base}{i:016x}@0.0.0": blob for i in range(start, min(start + _BATCH, count))}, 3600)

    starts = range(0, count, _BATCH)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(batch, starts))
    else:
        for start in starts:
            batch(start)


def _time_writes(cache: Any, writes: int) -> list[float]:
    get, update = _Items(cache).make()
    seconds = []
    for i in range(writes):
        get(f"w{i % 50}")
        began = time.perf_counter()
        update(f"w{i % 50}", {"region": f"r{i % 4}"})
        seconds.append(time.perf_counter() - began)
    return seconds


@contextmanager
def _caches(name: str, services: Services) -> Iterator[Callable[[str], Any] | str]:
    from cachekit import Cache

    if name == "memory":
        yield lambda ns: Cache("memory", namespace=ns, config={"max_size": 0})
        return
    if name == "filesystem":
        with tempfile.TemporaryDirectory(prefix="cachekit-scale-") as directory:
            yield lambda ns: Cache("filesystem", namespace=ns, config={"directory": f"{directory}/{ns}"})
        return
    if name == "redis":
        client = services.redis_or_reason()
        if isinstance(client, str):
            yield client
            return
        prefix = services.redis_prefix
        yield lambda ns: Cache("redis", namespace=ns, config={"url": services.redis_url, "key_prefix": prefix})
        return
    s3 = services.s3_client()
    if isinstance(s3, str):
        yield s3
        return
    bucket = f"cachekit-scale-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    yield lambda ns: Cache("s3", namespace=ns, config={"client": s3, "bucket": bucket, "key_prefix": "scale/"})


def _sizes(name: str, settings: Settings) -> tuple[int, ...]:
    quick = settings.mode == "quick"
    if name == "s3":  # one PUT per entry to fill: fewer entries, but always two sizes to compare
        return (100, 1_000) if quick else (1_000, 10_000, 100_000)
    return (1_000, 10_000) if quick else (1_000, 10_000, 100_000, 1_000_000)


def _scale_driver(section: Section, name: str, settings: Settings, services: Services) -> None:
    writes = 100 if name == "s3" else 300
    with _caches(name, services) as factory:
        if isinstance(factory, str):
            section.skipped.append(f"scale {name}: {factory}")
            return
        medians: dict[int, float] = {}
        for size in _sizes(name, settings):
            cache = factory(f"scale{size}")
            try:
                began = time.perf_counter()
                _fill(cache, size, threads=16 if name == "s3" else 1)
                filled = time.perf_counter() - began
                times = _time_writes(cache, writes)
            finally:
                cache.close()
            medians[size] = statistics.median(times)
            p90 = sorted(times)[int(len(times) * 0.9)]
            section.outcomes.append(Outcome(
                f"scale_{name}_{size}", f"{name}: one write's invalidation, {size:,} entries cached",
                round(medians[size] * 1000, 3), "ms (median)",
                note=f"p90 {p90 * 1000:.3f} ms over {writes} writes; filled in {filled:.1f} s",
            ))
        smallest, largest = min(medians), max(medians)
        if smallest == largest:  # one size: nothing to compare, so no verdict
            section.notes.append(f"scale {name}: one size only ({smallest:,} entries); no ratio")
            return
        ratio = medians[largest] / medians[smallest] if medians[smallest] else 0.0
        section.outcomes.append(Outcome(
            f"scale_{name}_ratio", f"{name}: median at {largest:,} / median at {smallest:,} entries", round(ratio, 2),
            "x", "<= 2x", "PASS" if ratio <= 2 else "MISS",
        ))


def _storage(section: Section, settings: Settings, services: Services) -> None:
    from cachekit import Cache

    class Clock:
        now = 1_700_000_000.0

        def __call__(self) -> float:
            return self.now

    churn = 100_000 if settings.mode == "quick" else 1_000_000
    clock = Clock()
    cache = Cache("memory", namespace="churn", ttl=60, clock=clock, config={"max_size": 0})
    get, update = _Items(cache).make()
    for i in range(churn):
        clock.now += 0.001
        update(f"c{i % 1000}", {"region": f"r{i % 4}"})
        get(f"c{i % 1000}")
    alive = len(cache.keys(orphans=True))
    current = len(cache.keys())
    section.outcomes.append(Outcome(
        "storage_memory_alive", f"memory: entries alive after {churn:,} writes (60 s TTL, 1 ms per write)", alive,
        "entries", "<= writes in one TTL (60,000) + current", "PASS" if alive <= 60_000 + current else "MISS",
        f"{current} current, {alive - current} orphaned (each expires within its TTL); "
        f"{len(cache._gens._known)} generations known locally",
    ))
    cache.close()


def run_scale(settings: Settings, services: Services) -> Section:
    """The invalidation-cost table for every driver, and the storage bound."""
    section = Section("scale", "One write's invalidation against the number of entries cached")
    for name in ("memory", "filesystem", "redis", "s3"):
        _scale_driver(section, name, settings, services)
    _storage(section, settings, services)
    section.notes.append(
        "Entries are written straight through the driver (same resource, current generations' layout); each write "
        "is a decorated update bumping 4 scopes (item, aggregates, old and new partition value)."
    )
    return section

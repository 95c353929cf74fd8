"""A mixed read/write workload over a partitioned resource, checked against a model for stale reads.

Used by the test suite (no read may be stale) and by ``cachekit bench`` (hit rate with precise invalidation
against clearing the whole resource on every write, as the original s3db.js plugin does).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkloadResult", "run_mixed_workload"]

PARTITION = "by_region"


@dataclass
class WorkloadResult:
    """What one run did and saw."""

    operations: int = 0
    reads: int = 0
    writes: int = 0
    hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    stale_reads: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        """Hits over cache lookups during the run."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


def _region(i: int, regions: int) -> str:
    return f"r{i % regions}"


class _Run:
    """One workload run: the resource, a model of what it holds, and a seeded random source."""

    def __init__(self, resource: Any, rng: random.Random, regions: int) -> None:
        self.resource, self.rng, self.regions = resource, rng, regions
        self.model: dict[str, dict[str, Any]] = {}
        self.next_id = 0

    def in_region(self, region: str) -> list[str]:
        return sorted(i for i, doc in self.model.items() if doc["region"] == region)

    def read(self, region: str) -> str | None:
        """One random read; a description of the mismatch when it disagrees with the model."""
        resource, model = self.resource, self.model
        kind = self.rng.choice(["get", "get", "get", "count_region", "ids_region", "ids_region", "count", "page"])
        scope = {"partition": PARTITION, "partition_values": {"region": region}}
        got: Any
        want: Any
        if kind == "get" and model:
            doc_id = self.rng.choice(sorted(model))
            got, want = resource.get(doc_id), model[doc_id]
        elif kind == "count_region":
            got, want = resource.count(**scope), len(self.in_region(region))
        elif kind == "ids_region":
            got, want = resource.list_ids(**scope), self.in_region(region)
        elif kind == "count":
            got, want = resource.count(), len(model)
        else:
            got, want = [d["id"] for d in resource.page(page=1, size=10)["items"]], sorted(model)[:10]
        return None if got == want else f"{kind}: got {got!r}, want {want!r}"

    def write(self, region: str) -> None:
        """One random write: a partition move, a plain patch, an insert or a delete."""
        resource, model, choice = self.resource, self.model, self.rng.random()
        if choice < 0.5 and model:
            doc_id = self.rng.choice(sorted(model))
            model[doc_id] = resource.update(doc_id, {"region": region, "n": model[doc_id]["n"] + 1})
        elif choice < 0.7 and model:
            doc_id = self.rng.choice(sorted(model))
            model[doc_id] = resource.patch(doc_id, {"n": model[doc_id]["n"] + 1})
        elif choice < 0.85 or not model:
            document = resource.insert({"id": f"d{self.next_id:04d}", "region": region, "n": 0})
            model[document["id"]] = document
            self.next_id += 1
        else:
            doc_id = self.rng.choice(sorted(model))
            resource.delete(doc_id)
            del model[doc_id]


def run_mixed_workload(
    resource: Any,
    stats: Callable[[], Any],
    *,
    operations: int = 2000,
    read_ratio: float = 0.9,
    regions: int = 4,
    records: int = 40,
    seed: int = 7,
) -> WorkloadResult:
    """Seed ``records`` documents over ``regions`` partitions, then run ``operations`` random reads and writes.

    Every read is compared with a model of the data; a mismatch is recorded in ``stale_reads``.

    :param resource: an empty ``cachekit.s3db`` resource with a ``by_region`` partition on ``["region"]``,
        cached by a plugin.
    :param stats: returns the cache's :class:`~cachekit.CacheStats` (``resource.cache.stats``).
    """
    run = _Run(resource, random.Random(seed), regions)
    seeded = [{"id": f"d{i:04d}", "region": _region(i, regions), "n": 0} for i in range(records)]
    resource.insert_many(seeded)
    run.model.update({str(doc["id"]): dict(doc) for doc in seeded})
    run.next_id = records
    before, result, started = stats(), WorkloadResult(), time.perf_counter()
    for step in range(operations):
        region = _region(run.rng.randrange(regions), regions)
        if run.rng.random() < read_ratio:
            result.reads += 1
            mismatch = run.read(region)
            if mismatch:
                result.stale_reads.append(f"step {step} {mismatch}")
        else:
            result.writes += 1
            run.write(region)
        result.operations += 1
    result.seconds = time.perf_counter() - started
    after = stats()
    result.hits, result.misses = after.hits - before.hits, after.misses - before.misses
    return result

"""What ``cachekit demo`` runs against S3: its options, its databases, the two measured phases, and their results.

The home of the demo's options (:class:`DemoOptions`, :class:`Scale`) and of its work, as
:func:`cachekit._tools.demo.run` sequences it: databases and :class:`~cachekit.CachePlugin` instances under
the run's own prefix and namespace (cleaned up when the run's exit stack closes), the seeded ``orders``, the
cold/warm latency phase (:class:`LatencyResult`, :func:`percentile`) and the mixed read/write workload under
both invalidation modes.
"""

from __future__ import annotations

import contextlib
import functools
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DriverError, DriverUnavailable
from .workload import WorkloadResult, run_mixed_workload

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..plugin import CachePlugin
    from ..s3db import Database, Resource

__all__ = ["FULL", "PARTITION", "QUICK", "REGIONS", "STATUSES", "DemoOptions", "LatencyResult", "Scale",
           "latency_phase", "mixed_phase", "open_database", "percentile"]

@dataclass(frozen=True)
class Scale:
    """How much work one run does."""

    records: int
    get_ids: int
    rounds: int
    warm_repeats: int
    mixed_operations: int
    mixed_records: int


#: ``--quick``: 6-8 s on a busy 2-core machine (measured with ``time cachekit demo --quick``); keep it under 10 s.
QUICK = Scale(records=40, get_ids=15, rounds=2, warm_repeats=5, mixed_operations=100, mixed_records=20)
#: The full run: more documents and samples, so p99 means something; 1-2 min on the same machine.
FULL = Scale(records=600, get_ids=100, rounds=8, warm_repeats=10, mixed_operations=1500, mixed_records=60)


@dataclass(frozen=True)
class DemoOptions:
    """What ``cachekit demo`` was asked to do.

    E.g.::

        DemoOptions(quick=True, driver="redis", config={"url": "redis://127.0.0.1:6379/0"})

    :param quick: the small :data:`QUICK` scale instead of :data:`FULL`.
    :param driver: the cache driver name given to :class:`~cachekit.CachePlugin` (``"tiered"`` with ``tiers``).
    :param config: that driver's options.
    :param tiers: a multi-tier cache: ``{"drivers": [...], "promote_on_hit": ..., "strategy": ...}``, what
        ``CachePlugin(drivers=[...])`` takes.
    :param endpoint: an S3 endpoint URL to use instead of starting moto; credentials come from boto3's chain.
    :param bucket: the bucket to use (created when missing).
    :param region: the S3 region name.
    """

    quick: bool = False
    driver: str = "memory"
    config: Mapping[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    bucket: str = "cachekit-demo"
    region: str = "us-east-1"
    tiers: Mapping[str, Any] | None = None

    @property
    def scale(self) -> Scale:
        """:data:`QUICK` or :data:`FULL`."""
        return QUICK if self.quick else FULL

    def cache_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~cachekit.Cache` and :class:`~cachekit.CachePlugin` for this cache."""
        if self.tiers is not None:
            return {**self.tiers, "config": dict(self.config)}
        return {"driver": self.driver, "config": dict(self.config)}


REGIONS = ("eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south")
PARTITION = "by_region"
STATUSES = ("new", "paid", "shipped", "delivered", "returned")


@dataclass
class LatencyResult:
    """Cold and warm call durations (seconds) of one read action, and the cache lookups of the warm calls."""

    action: str
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    warm_hits: int = 0
    warm_lookups: int = 0

    @property
    def warm_hit_rate(self) -> float:
        """Share of warm lookups that the cache answered."""
        return self.warm_hits / self.warm_lookups if self.warm_lookups else 0.0

    @property
    def speedup(self) -> float:
        """Cold median over warm median."""
        warm = percentile(self.warm, 50)
        return percentile(self.cold, 50) / warm if warm else 0.0


def percentile(samples: list[float], pct: int) -> float:
    """The ``pct``-th percentile (1-99) of ``samples``, interpolated; ``0.0`` when there are none."""
    if not samples:
        return 0.0
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


# -- databases and plugins --------------------------------------------------------------------------------------


def open_database(client: Any, options: DemoOptions, prefix: str, stack: contextlib.ExitStack) -> Database:
    """A database under ``prefix``; its documents are deleted and its plugins stopped when ``stack`` closes."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..s3db import Database

    try:
        database = Database(client=client, bucket=options.bucket, prefix=prefix, create_bucket=True)
    except (BotoCoreError, ClientError) as exc:
        where = options.endpoint or "the in-process moto server"
        raise DriverUnavailable(f"cannot use bucket {options.bucket!r} at {where}: {exc}") from exc
    stack.callback(database.close)
    if options.endpoint is not None:  # our own moto server forgets everything when it stops
        stack.callback(_delete_documents, database)
    return database


def _delete_documents(database: Database) -> None:
    for resource in database.resources.values():
        resource.delete_all()


def _install_plugin(database: Database, options: DemoOptions, namespace: str, invalidation: str) -> CachePlugin:
    from ..plugin import CachePlugin

    plugin = CachePlugin(**options.cache_arguments(), namespace=namespace, invalidation=invalidation)
    database.use_plugin(plugin)
    return plugin


def _cleaned_up(plugin: CachePlugin, stack: contextlib.ExitStack) -> None:
    """At exit: the plugin's entries, then its generation counters, so a shared backend keeps nothing of the run."""
    stack.callback(_drop_generations, plugin)  # callbacks run last-in first-out: after the clear below
    stack.callback(plugin.clear_all_cache)


def _drop_generations(plugin: CachePlugin) -> None:
    """Delete the run's generation counters (Redis ``~gen/{ns}/``, S3 ``~gen/ns/``); best effort, like the clear.

    Counters of a filesystem cache live in its directory's ``~generations`` store and stay (a few bytes each).
    """
    cache = plugin.cache
    if cache is None:
        return
    tiers = getattr(cache.driver, "tiers", None)
    drivers = [tier.driver for tier in tiers] if tiers is not None else [cache.driver]
    tag = cache.namespace.replace("{", "(").replace("}", ")")  # as RedisGenerations names its hash tag
    layouts = {"redis": f"~gen/{{{tag}}}/", "s3": f"~gen/{cache.namespace}/"}
    for driver in drivers:
        prefix = layouts.get(driver.name)
        if prefix is not None:
            with contextlib.suppress(DriverError):
                driver.clear(prefix)


# -- phase 1: cold and warm latency -----------------------------------------------------------------------------


def latency_phase(
    database: Database, options: DemoOptions, run_id: str, progress: Progress, stack: contextlib.ExitStack
) -> list[LatencyResult]:
    """Phase 1: seed ``orders``, then time ``get``, ``count``, ``list`` and ``page`` cold and warm."""
    scale = options.scale
    plugin = _install_plugin(database, options, f"demo-{run_id}", "precise")
    # Runs before database.close (LIFO), so a shared Redis/S3/disk cache keeps nothing of the demo.
    _cleaned_up(plugin, stack)
    orders = database.create_resource("orders", partitions={PARTITION: ["region"]})
    _seed(orders, scale.records, progress)
    results = []
    for action, variants in _variants(orders, scale).items():
        calls = scale.rounds * len(variants) * (1 + scale.warm_repeats)
        task = progress.add_task(f"Timing {action} (cold, then warm)", total=calls)
        results.append(_measure(orders, action, variants, scale, functools.partial(progress.advance, task)))
    return results


def _seed(resource: Resource, records: int, progress: Progress) -> None:
    rng = random.Random(42)
    task = progress.add_task(f"Seeding {records} orders into S3", total=records)
    batch = 25
    for start in range(0, records, batch):
        documents = [_order(i, rng) for i in range(start, min(start + batch, records))]
        resource.insert_many(documents)
        progress.advance(task, len(documents))


def _order(i: int, rng: random.Random) -> dict[str, Any]:
    lines = [{"sku": f"sku-{rng.randrange(500):03d}", "qty": rng.randint(1, 4)} for _ in range(rng.randint(1, 5))]
    return {
        "id": f"o{i:05d}",
        "region": REGIONS[i % len(REGIONS)],
        "customer": f"c{rng.randrange(200):04d}",
        "status": rng.choice(STATUSES),
        "total": round(rng.uniform(5, 500), 2),
        "lines": lines,
    }


def _variants(resource: Resource, scale: Scale) -> dict[str, list[Callable[[], object]]]:
    """Distinct calls of each action, so every call of a round has its own cache key."""
    step = max(1, scale.records // scale.get_ids)
    ids = [f"o{i:05d}" for i in range(0, scale.records, step)][: scale.get_ids]
    regions = [{"partition": PARTITION, "partition_values": {"region": region}} for region in REGIONS]
    return {
        "get": [_bind(resource.get, id) for id in ids],
        "count": [_bind(resource.count)] + [_bind(resource.count, **scope) for scope in regions],
        "list": [_bind(resource.list, limit=10, offset=10 * k) for k in range(4)]
        + [_bind(resource.list, limit=10, **scope) for scope in regions[:4]],
        "page": [_bind(resource.page, page=p, size=10) for p in range(1, 5)]
        + [_bind(resource.page, page=1, size=10, **scope) for scope in regions[:4]],
    }


def _bind(method: Callable[..., object], *args: Any, **kwargs: Any) -> Callable[[], object]:
    return lambda: method(*args, **kwargs)


def _measure(
    resource: Resource, action: str, variants: list[Callable[[], object]], scale: Scale, advance: Callable[[], None]
) -> LatencyResult:
    """Each round: clear the resource's cache, call every variant once (cold), then ``warm_repeats`` times."""
    cache: Any = resource.cache  # type: ignore[attr-defined]  # set by CachePlugin at install
    result = LatencyResult(action)
    for _ in range(scale.rounds):
        cache.clear_all()
        result.cold.extend(_timed(call, advance) for call in variants)
        before = cache.stats()
        for _ in range(scale.warm_repeats):
            result.warm.extend(_timed(call, advance) for call in variants)
        after = cache.stats()
        result.warm_hits += after.hits - before.hits
        result.warm_lookups += (after.hits + after.misses) - (before.hits + before.misses)
    return result


def _timed(call: Callable[[], object], advance: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    elapsed = time.perf_counter() - started
    advance()
    return elapsed


# -- phase 2: the mixed workload --------------------------------------------------------------------------------


class _Counted:
    """Forwards to a resource and advances a progress task after every public method call."""

    def __init__(self, target: Any, advance: Callable[[], None]) -> None:
        self._target = target
        self._advance = advance

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            finally:
                self._advance()

        return call


def mixed_phase(
    client: Any, options: DemoOptions, run_id: str, mode: str, progress: Progress, stack: contextlib.ExitStack
) -> WorkloadResult:
    """Phase 2: the mixed workload on a database of its own, with ``invalidation=mode``."""
    scale = options.scale
    database = open_database(client, options, f"cachekit-demo-{run_id}-{mode}", stack)
    plugin = _install_plugin(database, options, f"demo-{run_id}-{mode}", mode)
    _cleaned_up(plugin, stack)
    events = database.create_resource("events", partitions={"by_region": ["region"]})
    # One call seeds (insert_many), then each operation is one resource call.
    task = progress.add_task(f"Mixed workload, invalidation={mode}", total=scale.mixed_operations + 1)
    counted = _Counted(events, functools.partial(progress.advance, task))
    stats = events.cache.stats  # type: ignore[attr-defined]  # set by CachePlugin at install
    return run_mixed_workload(counted, stats, operations=scale.mixed_operations, records=scale.mixed_records)

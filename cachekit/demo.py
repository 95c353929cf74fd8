"""``cachekit demo``: a realistic read workload against an S3-backed resource, cold and then cached.

The demo needs nothing but ``pip install 'cachekit-orm[demo]'``: without ``--endpoint`` it starts moto's S3
server in this process, on a free loopback port, and stops it at the end. It then

1. seeds an ``orders`` resource of :mod:`cachekit.s3db` (a partition per region),
2. times ``get``, ``count``, ``list`` and ``page`` cold (the cache was just cleared, so the read goes to S3) and
   warm (served by :class:`~cachekit.CachePlugin`), and reports p50/p90/p99, the speed-up and the hit rate,
3. runs :func:`cachekit.workload.run_mixed_workload` twice, with precise invalidation and with
   ``invalidation="resource"`` (every write clears the whole resource, as the s3db.js plugin does), and compares
   their hit rates and stale reads (there must be none).

Everything it writes lives under a key prefix of its own and is removed at the end, so ``--endpoint`` may point
at a real S3-compatible server. ``rich`` renders the progress bars and tables; when the output is not a terminal
rich prints plain text.

E.g.::

    from rich.console import Console
    from cachekit.demo import DemoOptions, run

    run(DemoOptions(quick=True), Console())
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DriverError, DriverUnavailable
from .workload import WorkloadResult, run_mixed_workload

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from .plugin import CachePlugin
    from .s3db import Database, Resource

__all__ = ["DemoOptions", "LatencyResult", "check_cache_backend", "run"]

REGIONS = ("eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south")
PARTITION = "by_region"
STATUSES = ("new", "paid", "shipped", "delivered", "returned")
_LOOPBACK = "127.0.0.1"


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
    :param driver: the cache driver name given to :class:`~cachekit.CachePlugin`.
    :param config: that driver's options.
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

    @property
    def scale(self) -> Scale:
        """:data:`QUICK` or :data:`FULL`."""
        return QUICK if self.quick else FULL


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


# -- the run ------------------------------------------------------------------------------------------------------


def run(options: DemoOptions, console: Console) -> int:
    """Run the demo, printing progress and result tables on ``console``.

    :returns: the exit status: 0, or 1 when the mixed workload saw a stale read (a cachekit bug).

    :raises DriverUnavailable: when the S3 endpoint or the cache backend cannot be reached.
    :raises ConfigurationError: for bad driver options.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    check_cache_backend(options)
    run_id = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        endpoint = options.endpoint or stack.enter_context(_moto_server())
        client = _s3_client(endpoint, options)
        stack.callback(client.close)
        # Opened before the progress bars, so an unreachable S3 is one error line and nothing else.
        database = _open_database(client, options, f"cachekit-demo-{run_id}", stack)
        _print_setup(console, options, endpoint)
        progress = Progress(
            TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        )
        with progress:
            latencies = _latency_phase(database, options, run_id, progress, stack)
            mixed = {mode: _mixed_phase(client, options, run_id, mode, progress, stack)
                     for mode in ("precise", "resource")}
        fresh = _print_results(console, options, latencies, mixed)
    return 0 if fresh else 1


def check_cache_backend(options: DemoOptions) -> None:
    """Reach the cache backend once, before any work, so that a dead one is one error and nothing else.

    An S3 cache without a ``bucket`` of its own uses the demo's S3, which :func:`_open_database` checks.

    :raises DriverUnavailable: the backend cannot be reached (the message says which and why).
    """
    from .namespace import Cache

    if options.driver == "s3" and "bucket" not in options.config:
        return
    cachekit_logger = logging.getLogger("cachekit")
    level = cachekit_logger.level
    cachekit_logger.setLevel(logging.CRITICAL)  # the one error below says it all
    try:
        with Cache(driver=options.driver, config=dict(options.config), namespace="cachekit-demo-check") as cache:
            cache.driver.get("cachekit-demo-check/reachable")
    except DriverError as exc:
        raise DriverUnavailable(
            f"the {options.driver!r} cache backend cannot be reached, so the demo did not start: {exc}"
        ) from exc
    finally:
        cachekit_logger.setLevel(level)


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port in this process; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO unless its logger already has a level.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=_LOOPBACK, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        # stop() shuts the loop down but leaves the listening socket open.
        wsgi = getattr(server, "_server", None)
        if wsgi is not None:
            wsgi.server_close()


def _s3_client(endpoint: str, options: DemoOptions) -> Any:
    import boto3
    from botocore.config import Config

    # Our own moto server accepts any credentials; another endpoint gets boto3's usual chain (None).
    secret = "testing" if options.endpoint is None else None
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=options.region,
        aws_access_key_id=secret,
        aws_secret_access_key=secret,
        config=Config(max_pool_connections=16, connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}),
    )


def _open_database(client: Any, options: DemoOptions, prefix: str, stack: contextlib.ExitStack) -> Database:
    """A database under ``prefix``; its documents are deleted and its plugins stopped when ``stack`` closes."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .s3db import Database

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
    from .plugin import CachePlugin

    plugin = CachePlugin(driver=options.driver, config=dict(options.config), namespace=namespace,
                         invalidation=invalidation)
    database.use_plugin(plugin)
    return plugin


# -- phase 1: cold and warm latency -----------------------------------------------------------------------------


def _latency_phase(
    database: Database, options: DemoOptions, run_id: str, progress: Progress, stack: contextlib.ExitStack
) -> list[LatencyResult]:
    scale = options.scale
    plugin = _install_plugin(database, options, f"demo-{run_id}", "precise")
    # Runs before database.close (LIFO), so a shared Redis/S3/disk cache keeps nothing of the demo.
    stack.callback(plugin.clear_all_cache)
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


def _mixed_phase(
    client: Any, options: DemoOptions, run_id: str, mode: str, progress: Progress, stack: contextlib.ExitStack
) -> WorkloadResult:
    scale = options.scale
    database = _open_database(client, options, f"cachekit-demo-{run_id}-{mode}", stack)
    plugin = _install_plugin(database, options, f"demo-{run_id}-{mode}", mode)
    stack.callback(plugin.clear_all_cache)
    events = database.create_resource("events", partitions={"by_region": ["region"]})
    # One call seeds (insert_many), then each operation is one resource call.
    task = progress.add_task(f"Mixed workload, invalidation={mode}", total=scale.mixed_operations + 1)
    counted = _Counted(events, functools.partial(progress.advance, task))
    stats = events.cache.stats  # type: ignore[attr-defined]  # set by CachePlugin at install
    return run_mixed_workload(counted, stats, operations=scale.mixed_operations, records=scale.mixed_records)


# -- output -------------------------------------------------------------------------------------------------------


def _print_setup(console: Console, options: DemoOptions, endpoint: str) -> None:
    where = f"{endpoint} (moto, in this process)" if options.endpoint is None else endpoint
    size = "quick" if options.quick else "full"
    console.print(f"[bold]cachekit demo[/bold] ({size} run)")
    console.print(f"  S3: {where}, bucket {options.bucket!r}")
    console.print(f"  cache: CachePlugin(driver={options.driver!r}) in front of every resource")
    console.print()


def _duration(seconds: float, micro: str) -> str:
    """``3.65 ms``, ``44.3 ms``, ``12 µs``: short enough for an 80-column table."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} {micro}"
    milliseconds = seconds * 1e3
    return f"{milliseconds:.2f} ms" if milliseconds < 10 else f"{milliseconds:,.1f} ms"


def _latency_table(latencies: list[LatencyResult], micro: str) -> Any:
    from rich.table import Table

    table = Table(title="Cold reads (S3) vs warm reads (cache), time per call")
    for header in ("action", "read", "p50", "p90", "p99", "speed-up", "hit rate"):
        table.add_column(header, justify="left" if header in ("action", "read") else "right")
    for result in latencies:
        table.add_row(
            result.action, f"cold ({len(result.cold)})", *(_duration(percentile(result.cold, p), micro)
                                                          for p in (50, 90, 99)),
        )
        table.add_row(
            "", f"warm ({len(result.warm)})", *(_duration(percentile(result.warm, p), micro) for p in (50, 90, 99)),
            f"{result.speedup:,.0f}x", f"{result.warm_hit_rate:.1%}", end_section=True,
        )
    return table


def _mixed_table(mixed: Mapping[str, WorkloadResult]) -> Any:
    from rich.table import Table

    table = Table(title="Mixed workload: 90% reads, 10% writes")
    for header in ("invalidation", "operations", "reads/writes", "hit rate", "stale reads", "seconds"):
        table.add_column(header, justify="left" if header == "invalidation" else "right")
    for mode, result in mixed.items():
        table.add_row(
            mode,
            str(result.operations),
            f"{result.reads}/{result.writes}",
            f"{result.hit_rate:.1%}",
            str(len(result.stale_reads)),
            f"{result.seconds:.2f}",
        )
    return table


def _print_results(
    console: Console, options: DemoOptions, latencies: list[LatencyResult], mixed: Mapping[str, WorkloadResult]
) -> bool:
    """Print the tables and summaries; return whether every read of the mixed workload was fresh."""
    console.print()
    micro = "µs" if console.encoding.lower().startswith("utf") else "us"
    console.print(_latency_table(latencies, micro))
    hits = sum(r.warm_hits for r in latencies)
    lookups = sum(r.warm_lookups for r in latencies)
    median = statistics.median(r.speedup for r in latencies)
    # highlight=False: rich's number highlighter would colour only the "1" of "1,535x".
    console.print(f"Warm reads: hit rate [bold]{hits / lookups if lookups else 0:.1%}[/bold] ({lookups} lookups); "
                  f"median speed-up [bold]{median:,.0f}x[/bold] over S3.", highlight=False)
    console.print()
    console.print(_mixed_table(mixed))
    from rich.markup import escape

    precise, whole = mixed["precise"], mixed["resource"]
    stale = precise.stale_reads + whole.stale_reads
    verdict = "no stale reads."
    if stale:
        verdict = f"[bold red]{len(stale)} stale reads![/bold red] The first: {escape(stale[0])}"
    console.print(
        f"Mixed workload hit rate: [bold]{precise.hit_rate:.1%}[/bold] with precise invalidation, "
        f"[bold]{whole.hit_rate:.1%}[/bold] when every write clears the resource; {verdict}",
        highlight=False,
    )
    if options.quick:
        console.print("[dim]A quick run: `cachekit demo` takes more samples.[/dim]")
    return not stale

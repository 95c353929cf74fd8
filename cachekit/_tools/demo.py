"""``cachekit demo``: a realistic read workload against an S3-backed resource, cold and then cached.

The demo needs nothing but ``pip install 'cachekit-orm[demo]'``: without ``--endpoint`` it starts moto's S3
server in this process, on a free loopback port, and stops it at the end. It then

1. seeds an ``orders`` resource of :mod:`cachekit.s3db` (a partition per region),
2. times ``get``, ``count``, ``list`` and ``page`` cold (the cache was just cleared, so the read goes to S3) and
   warm (served by :class:`~cachekit.CachePlugin`), and reports p50/p90/p99, the speed-up and the hit rate,
3. runs :func:`cachekit._tools.workload.run_mixed_workload` twice, with precise invalidation and with
   ``invalidation="resource"`` (every write clears the whole resource, as the s3db.js plugin does), and compares
   their hit rates and stale reads (there must be none).

Everything it writes lives under a key prefix of its own and is removed at the end, so ``--endpoint`` may point
at a real S3-compatible server. ``rich`` renders the progress bars and tables; when the output is not a terminal
rich prints plain text.

E.g.::

    from rich.console import Console
    from cachekit._tools.demo import DemoOptions, run

    run(DemoOptions(quick=True), Console())

This module is the home of the demo's options and of :func:`run`, which sequences it: the moto server, the S3
client, the backend check. The phases and their results live in :mod:`cachekit._tools._demo_workload`, the tables in
:mod:`cachekit._tools._demo_report`.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import DriverError, DriverUnavailable
from ._demo_report import print_results, print_setup
from ._demo_workload import (  # noqa: F401  # FULL, PARTITION, QUICK, REGIONS, STATUSES, Scale, percentile: re-exported
    FULL,
    PARTITION,
    QUICK,
    REGIONS,
    STATUSES,
    DemoOptions,
    LatencyResult,
    Scale,
    latency_phase,
    mixed_phase,
    open_database,
    percentile,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DemoOptions", "LatencyResult", "check_cache_backend", "run"]

_LOOPBACK = "127.0.0.1"


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
        database = open_database(client, options, f"cachekit-demo-{run_id}", stack)
        print_setup(console, options, endpoint)
        progress = Progress(
            TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        )
        with progress:
            latencies = latency_phase(database, options, run_id, progress, stack)
            mixed = {mode: mixed_phase(client, options, run_id, mode, progress, stack)
                     for mode in ("precise", "resource")}
        fresh = print_results(console, options, latencies, mixed)
    return 0 if fresh else 1


def check_cache_backend(options: DemoOptions) -> None:
    """Reach the cache backend once, before any work, so that a dead one is one error and nothing else.

    An S3 cache without a ``bucket`` of its own uses the demo's S3, which
    :func:`~cachekit._tools._demo_workload.open_database` checks.

    :raises DriverUnavailable: the backend cannot be reached (the message says which and why).
    """
    from ..cache import Cache

    if options.tiers is not None:
        backends = [(str(t.get("driver")), dict(t.get("config") or {})) for t in options.tiers["drivers"]]
    else:
        backends = [(options.driver, dict(options.config))]
    cachekit_logger = logging.getLogger("cachekit")
    level = cachekit_logger.level
    cachekit_logger.setLevel(logging.CRITICAL)  # the one error below says it all
    try:
        for driver, config in backends:
            if driver == "s3" and "bucket" not in config:
                continue
            try:
                with Cache(driver=driver, config=config, namespace="cachekit-demo-check") as cache:
                    cache.driver.get("cachekit-demo-check/reachable")
            except DriverError as exc:
                raise DriverUnavailable(
                    f"the {driver!r} cache backend cannot be reached, so the demo did not start: {exc}"
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

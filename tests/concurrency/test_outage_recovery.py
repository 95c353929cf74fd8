"""Never stale through a Redis outage and its recovery (issue 23, items 1-2).

8 threads read (90 %) and write (10 %, ``@invalidates``) 200 versioned records through a private redis-server,
alone and behind a memory tier, under CPU load. Redis is killed and restarted empty on the same port (or
SIGSTOPped and resumed); a stale read returns a version older than a write that had returned before the read
began (``harness.py``). Every phase counts: before, during, and after the recovery.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import Cache
from tests.servers import RedisServer

from .harness import run_threads
from .load import cpu_load

SECONDS = float(os.environ.get("CACHEKIT_OUTAGE_SECONDS", "6"))
WORKLOAD: dict[str, Any] = {"list_ratio": 0.1, "write_ratio": 0.1, "delay": 0.001, "write_delay": 0.001}


@pytest.fixture
def server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.cleanup()


def _spec(kind: str, url: str) -> dict[str, Any]:
    redis = {"url": url, "key_prefix": "outage:", "command_timeout": 0.25, "connect_timeout": 0.25}
    if kind == "redis":
        return {"driver": "redis", "namespace": "outage", "config": redis}
    return {
        "namespace": "outage",
        "drivers": [{"driver": "memory", "ttl": 60, "config": {"max_size": 0}}, {"driver": "redis", "ttl": 60,
                                                                                  "config": redis}],
    }


def _fault(server: RedisServer, how: str, stop: threading.Event) -> None:
    """At 1/4 of the run take Redis away, at 1/2 bring it back (restarted empty, or resumed)."""
    if stop.wait(SECONDS / 4):
        return
    if how == "restart":
        server.kill()
    else:
        server.pause()
    stop.wait(SECONDS / 4)
    if how == "restart":
        server.start()  # same port, empty
    else:
        server.resume()


@pytest.mark.parametrize("how", ["restart", "sigstop"])
@pytest.mark.parametrize("kind", ["redis", "memory->redis"])
def test_no_stale_read_through_an_outage(server: RedisServer, kind: str, how: str) -> None:
    cache = Cache(**_spec(kind, server.url))
    stop = threading.Event()
    fault = threading.Thread(target=_fault, args=(server, how, stop))
    try:
        with cpu_load(2, seconds=SECONDS + 30):
            fault.start()
            started = time.monotonic()
            outcome = run_threads(cache, seconds=SECONDS, max_operations=400_000, **WORKLOAD)
            elapsed = time.monotonic() - started
    finally:
        stop.set()
        fault.join(30)
        cache.close()
    print(f"{kind} {how}: {outcome.stale} stale of {outcome.reads} reads, {outcome.writes} writes, "
          f"{outcome.hits} hits in {elapsed:.1f} s")
    assert outcome.writes > 50, outcome
    assert outcome.reads > 500, outcome
    assert outcome.stale == 0, f"{outcome.stale} stale reads (windows {sorted(outcome.windows)[-5:]})"


def test_the_l1_keeps_its_hit_rate_while_redis_is_down(server: RedisServer) -> None:
    cache = Cache(**_spec("memory->redis", server.url))
    third = SECONDS / 3

    def fault() -> None:
        if not stop.wait(third):
            server.kill()
            stop.wait(third)
            server.start()

    stop = threading.Event()
    thread = threading.Thread(target=fault)
    try:
        with cpu_load(2, seconds=SECONDS + 30):
            thread.start()
            outcome = run_threads(cache, seconds=SECONDS, max_operations=400_000, marks=(third, 2 * third), **WORKLOAD)
    finally:
        stop.set()
        thread.join(30)
        cache.close()
    before, during, after = outcome.l1_rates()
    print(f"L1 hit rate before {before:.3f}, during {during:.3f}, after {after:.3f}; {outcome.stale} stale")
    assert outcome.snapshots[1][0] - outcome.snapshots[0][0] > 1000, "the outage phase must have reads"
    assert during >= 0.9 * before, f"L1 hit rate {before:.3f} before the outage, {during:.3f} during it"
    assert outcome.stale == 0, f"{outcome.stale} stale reads"

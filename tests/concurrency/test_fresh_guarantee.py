"""The freshness guarantee (issue 21): with stale_while_revalidate, stale_if_error and early_refresh all on, writes,
expiries (a 50 ms TTL) and source failures (one load in five) interleaved, no read returns a value a write had
invalidated before the read began: 8 threads in one process, and a writer and a reader process, under CPU load;
and 8 threads through a private redis-server killed and restarted empty mid-run.

Across processes a reader learns of a bump within the notification delay (as without any policy: see
``test_stale_reads.py``); a policy serving a value under older generations would serve it for its whole 30 s
window, so the bound checked there (100 ms after the write returned) would catch it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache
from tests.servers import RedisServer

from .fresh_harness import POLICY, run_threads, run_two_processes
from .harness import outage
from .load import cpu_load

SECONDS = float(os.environ.get("CACHEKIT_FRESH_SECONDS", "3"))


def _spec(name: str, request: pytest.FixtureRequest, tmp_path: Path, **redis_options: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"namespace": "fresh-guarantee", "method_policies": POLICY}
    if name == "memory":
        return {**base, "driver": "memory"}
    if name == "filesystem":
        return {**base, "driver": "filesystem", "config": {"directory": str(tmp_path / "fs")}}
    redis = {"url": request.getfixturevalue("redis_url"), "key_prefix": request.getfixturevalue("redis_prefix"),
             **redis_options}
    if name == "redis":
        return {**base, "driver": "redis", "config": redis}
    return {**base, "drivers": [{"driver": "memory", "ttl": 5}, {"driver": "redis", "ttl": 60, "config": redis}]}


@pytest.mark.parametrize("name", ["memory", "filesystem", "redis", "memory->redis"])
def test_eight_threads_never_get_an_invalidated_value(name: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    cache = Cache(**_spec(name, request, tmp_path))
    try:
        with cpu_load(2, SECONDS + 30):
            outcome, errors = run_threads(cache, seconds=SECONDS)
        counts = cache.stats().details["freshness"]["records/get"]
    finally:
        cache.close()
    print(f"{name}: {outcome.reads} reads, {outcome.writes} writes, {errors} errors, {counts}")
    assert outcome.writes > 50, outcome
    assert outcome.reads > 500, outcome
    # the policies were in play: stale values were served, on error too, and refreshes ran
    assert counts["stale_served"] > 0, counts
    assert counts["stale_on_error"] > 0, counts
    assert counts["refreshes_started"] > 0, counts
    assert outcome.stale == 0, f"{outcome.stale} invalidated values served (windows {outcome.windows[:10]})"


@pytest.mark.parametrize("name", ["redis", "memory->redis"])
def test_a_redis_restart_mid_run_serves_no_invalidated_value(
    name: str, private_redis: RedisServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Killed at 1/4 of the run, restarted empty on the same port at 1/2: every counter is gone, writes made
    # meanwhile bumped nothing in Redis, and the records beside the entries went with it.
    timeouts = {"url": private_redis.url, "command_timeout": 0.25, "connect_timeout": 0.25}
    cache = Cache(**_spec(name, request, tmp_path, **timeouts))
    stop = threading.Event()
    at_restart: list[dict[str, int]] = []

    def restart_midway() -> None:
        outage(private_redis, "restart", stop, SECONDS / 4, SECONDS / 2)
        at_restart.append(dict(cache.stats().details["freshness"].get("records/get", {})))

    fault = threading.Thread(target=restart_midway)
    try:
        with cpu_load(2, SECONDS + 30):
            fault.start()
            outcome, errors = run_threads(cache, seconds=SECONDS)
        counts = cache.stats().details["freshness"]["records/get"]
    finally:
        stop.set()
        fault.join(30)
        cache.close()
    print(f"{name} restarted: {outcome.reads} reads, {outcome.writes} writes, {errors} errors, {counts}; at the "
          f"restart {at_restart}")
    assert outcome.writes > 50, outcome
    assert outcome.reads > 500, outcome
    (before,) = at_restart
    # the policies were in play, after the restart too
    for counter in ("stale_served", "stale_on_error", "refreshes_started"):
        assert counts[counter] > before.get(counter, 0), (counter, before, counts)
    assert outcome.stale == 0, f"{outcome.stale} invalidated values served (windows {outcome.windows[:10]})"


@pytest.mark.parametrize("name", ["redis", "memory->redis"])
def test_two_processes_never_get_an_invalidated_value(name: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    with cpu_load(2, SECONDS + 60):
        results = run_two_processes(_spec(name, request, tmp_path), seconds=SECONDS)
    writer, reader = results["writer"], results["reader"]
    print(f"{name}: writer {writer}, reader {reader}")
    assert writer["outcome"].writes > 50, writer
    assert reader["outcome"].reads > 300, reader
    assert reader["counts"].get("stale_served", 0) > 0, reader
    # the writer reads in its own process, where a bump is known before the write returns: exactly 0
    assert writer["outcome"].stale == 0, writer
    late = [w for w in reader["outcome"].windows if w > 0.1]
    assert late == [], f"{len(late)} invalidated values served past the notification delay: {sorted(late)[-5:]}"

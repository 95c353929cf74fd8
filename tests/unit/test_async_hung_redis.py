"""An ``async def`` read never blocks the event loop, also when Redis hangs (issue 23, item 3).

The generations a key needs are read through ``redis.asyncio`` (``GenerationView.arender``): a SIGSTOPped
Redis costs the read at most one command timeout and the other tasks of the loop nothing. A 1 ms ticker task
measures the loop's lag while reads of ids never seen (their generations must be read) run against it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import Cache, cached
from tests.servers import RedisServer

TIMEOUT = 0.5
#: Generous for a loaded, shared machine (the goal is 10 ms); a blocking read costs the full TIMEOUT.
LAG = 0.1


@pytest.fixture
def server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.cleanup()


def _spec(kind: str, url: str) -> dict[str, Any]:
    redis = {"url": url, "key_prefix": "hung:", "command_timeout": TIMEOUT, "connect_timeout": TIMEOUT}
    if kind == "redis":
        return {"driver": "redis", "namespace": "hung", "config": redis}
    return {
        "namespace": "hung",
        "drivers": [{"driver": "memory", "ttl": 60}, {"driver": "redis", "ttl": 60, "config": redis}],
    }


async def _lag_during(work: Any) -> tuple[float, float, Any]:
    """(the loop's worst lag, how long ``work`` took, its result), a ticker sleeping 1 ms meanwhile."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.001)
            worst = max(worst, time.monotonic() - before - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.monotonic()
    try:
        result = await work
    finally:
        elapsed = time.monotonic() - started
        done.set()
        await task
    return worst, elapsed, result


@pytest.mark.parametrize("kind", ["redis", "memory->redis"])
def test_a_hung_redis_never_blocks_the_loop(server: RedisServer, kind: str) -> None:
    cache = Cache(**_spec(kind, server.url))
    loads: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    async def get(id: str) -> str:
        loads.append(id)
        return id.upper()

    async def scenario() -> list[tuple[float, float, Any]]:
        assert await get("a") == "A"
        server.pause()
        try:
            found = []
            for id in ("b", "c", "d"):  # new ids: their item generations must be read
                found.append(await _lag_during(get(id)))
            if kind == "memory->redis":
                found.append(await _lag_during(get("a")))  # in L1
            return found
        finally:
            server.resume()

    try:
        results = asyncio.run(scenario())
    finally:
        cache.close()
    for (lag, elapsed, _), id in zip(results, "bcda", strict=False):
        print(f"{kind} get({id!r}): {elapsed * 1000:.1f} ms, loop lag {lag * 1000:.1f} ms")
    assert [r[2] for r in results[:3]] == ["B", "C", "D"]
    assert max(r[0] for r in results) <= LAG, f"the loop was blocked: {[round(r[0], 3) for r in results]}"
    assert results[0][1] <= 2 * TIMEOUT + 0.5, "at most one command timeout (and one for the L2 read)"

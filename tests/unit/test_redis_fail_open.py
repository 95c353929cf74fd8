"""Reads fail open, for real: a private redis-server is stopped in the middle of a read loop, then restarted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import Cache, cached
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.redis

FAST = {"connect_timeout": 0.2, "command_timeout": 0.2, "breaker_cooldown": 0.2}


def past_breaker_cooldown() -> None:
    """Wait out the circuit breaker's cool-down (FAST's 0.2 s), so that the next call probes the server."""
    time.sleep(0.25)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.cleanup()


class Source:
    """The "database": counts loads, and its records can change while the cache is down."""

    def __init__(self) -> None:
        self.records = {"u1": {"id": "u1", "version": 1}}
        self.loads = 0

    def load(self, id: str) -> dict[str, Any]:
        self.loads += 1
        return dict(self.records[id])


def test_reads_fail_open_while_redis_is_down_and_hits_resume_after_restart(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    source = Source()
    cache = Cache(driver="redis", namespace="failopen", ttl=60, config={"url": server.url, "key_prefix": "fo:", **FAST})

    @cached(action="get", namespace=cache)
    def get_user(id: str) -> dict[str, Any]:
        return source.load(id)

    try:
        # Up: one load, then hits.
        for _ in range(5):
            assert get_user("u1") == {"id": "u1", "version": 1}
        assert (source.loads, cache.stats().hits, cache.stats().errors) == (1, 4, 0)

        # Down mid-loop: every read still returns the source's current value, nothing raises, errors counted.
        server.stop()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="cachekit"):
            for i in range(10):
                if i == 5:
                    source.records["u1"] = {"id": "u1", "version": 2}  # a write the dead cache cannot see
                expected = 1 if i < 5 else 2
                assert get_user("u1") == {"id": "u1", "version": expected}
        assert time.monotonic() - started < 3.0  # fails fast, well under one command_timeout per read
        assert source.loads == 11
        down = cache.stats()
        assert down.errors >= 10  # at least the failed GET of each read (the failed SET after it may count too)
        assert down.hits == 4
        assert any("redis" in record.getMessage() for record in caplog.records)  # logged, once per cause

        # Back on the same port (empty: no persistence): one load stores again, then hits resume.
        server.start()
        past_breaker_cooldown()
        for _ in range(5):
            assert get_user("u1") == {"id": "u1", "version": 2}
        up = cache.stats()
        assert source.loads == 12
        assert up.hits == down.hits + 4
        assert up.errors == down.errors  # the stale pooled connection was replaced without an error
    finally:
        cache.close()


def test_an_app_boots_with_redis_down_and_caches_once_it_comes_up() -> None:
    port = free_port()
    source = Source()
    cache = Cache(
        driver="redis", namespace="boot", config={"url": f"redis://127.0.0.1:{port}/0", "key_prefix": "boot:", **FAST}
    )

    @cached(action="get", namespace=cache)
    def get_user(id: str) -> dict[str, Any]:
        return source.load(id)

    server = RedisServer(port=port)
    try:
        assert get_user("u1") == {"id": "u1", "version": 1}
        assert get_user("u1") == {"id": "u1", "version": 1}
        assert source.loads == 2
        assert cache.stats().errors >= 2
        server.start()
        past_breaker_cooldown()
        for _ in range(3):
            assert get_user("u1") == {"id": "u1", "version": 1}
        assert source.loads == 3
        assert cache.stats().hits == 2
    finally:
        cache.close()
        server.cleanup()


def test_async_reads_fail_open_too(server: RedisServer) -> None:
    source = Source()
    cache = Cache(driver="redis", namespace="async", config={"url": server.url, "key_prefix": "afo:", **FAST})

    @cached(action="get", namespace=cache)
    async def get_user(id: str) -> dict[str, Any]:
        return source.load(id)

    async def reads(count: int) -> list[dict[str, Any]]:
        return [await get_user("u1") for _ in range(count)]

    try:
        assert asyncio.run(reads(3)) == [{"id": "u1", "version": 1}] * 3
        assert source.loads == 1
        server.stop()
        assert asyncio.run(reads(3)) == [{"id": "u1", "version": 1}] * 3
        assert source.loads == 4
        assert cache.stats().errors >= 3
    finally:
        cache.close()

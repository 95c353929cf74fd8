"""``@cached`` on ``async def`` through the drivers' async twins: native Redis, inline memory, bounded threads."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit._executor import BoundedExecutor
from cachekit.errors import ConfigurationError

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cache(redis_url: str, redis_prefix: str) -> Iterator[Cache]:
    cache = Cache(driver="redis", namespace="acached", config={"url": redis_url, "key_prefix": redis_prefix})
    yield cache
    cache.close()


class Users:
    """A repository whose async reads are cached in ``cache``, counting its loads."""

    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows = {f"u{i}": {"id": f"u{i}", "v": 1} for i in range(50)}
        self.loads = 0

    @cached(action="get")
    async def get(self, id: str) -> dict[str, Any]:
        self.loads += 1
        await asyncio.sleep(0)
        return dict(self.rows[id])

    @invalidates("update")
    async def update(self, id: str, data: dict[str, Any]) -> None:
        self.rows[id].update(data)


def test_redis_reads_and_stores_park_no_thread(redis_cache: Cache) -> None:
    own = BoundedExecutor(1)
    redis_cache.driver.use_executor(own)
    repo = Users(redis_cache)

    async def main() -> list[dict[str, Any]]:
        await repo.get("u1")  # miss: load, then store through redis.asyncio
        return await asyncio.gather(*(repo.get("u1") for _ in range(50)))

    try:
        assert asyncio.run(main()) == [{"id": "u1", "v": 1}] * 50
        assert repo.loads == 1
        assert redis_cache.stats().hits == 50
        assert own._pool is None  # neither the read nor the store needed a thread
        assert redis_cache.driver.get(repo.get.cache_key("u1")) is not None  # stored for the sync half too
    finally:
        own.shutdown()


def test_fifty_wide_misses_load_each_key_once_then_hit(redis_cache: Cache) -> None:
    repo = Users(redis_cache)

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ids = [f"u{i % 25}" for i in range(50)]  # every key asked twice at once
        first = await asyncio.gather(*(repo.get(id) for id in ids))
        again = await asyncio.gather(*(repo.get(id) for id in ids))
        return first, again

    first, again = asyncio.run(main())
    assert first == again == [{"id": f"u{i % 25}", "v": 1} for i in range(50)]
    assert repo.loads == 25


def test_async_write_invalidates_and_the_next_read_is_fresh(redis_cache: Cache) -> None:
    repo = Users(redis_cache)

    async def main() -> dict[str, Any]:
        await repo.get("u2")
        await repo.update("u2", {"v": 2})
        return await repo.get("u2")

    assert asyncio.run(main()) == {"id": "u2", "v": 2}
    assert repo.loads == 2


def test_a_corrupt_redis_entry_is_a_miss_counted_and_dropped(redis_cache: Cache) -> None:
    repo = Users(redis_cache)
    key = repo.get.cache_key("u3")
    redis_cache.driver.set(key, b"\x00 not an envelope")

    assert asyncio.run(repo.get("u3")) == {"id": "u3", "v": 1}
    assert redis_cache.stats().errors == 1
    assert repo.loads == 1
    assert asyncio.run(repo.get("u3")) == {"id": "u3", "v": 1}
    assert repo.loads == 1  # the reload replaced the bad entry


def test_memory_and_redis_tiers_serve_async_reads_and_promote(redis_url: str, redis_prefix: str) -> None:
    redis_tier = {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}
    tiers = [{"driver": "memory", "ttl": 60}, redis_tier]
    with Cache(drivers=tiers, namespace="atiers") as cache:
        repo = Users(cache)
        key = repo.get.cache_key("u4")
        memory = cache.driver.tiers[0].driver

        async def main() -> None:
            await repo.get("u4")
            memory.delete(key)  # evicted from L1: the next hit comes from Redis and is copied back
            assert await repo.get("u4") == {"id": "u4", "v": 1}
            assert memory.get(key) is not None

        asyncio.run(main())
        # The tiered driver's twins run its sync path on cachekit's executor (native tiers: left to do).
        assert cache.driver.supports_async is False
        assert repo.loads == 1
        assert cache.driver.stats()["totals"]["promotions"] == 1


def test_async_workers_sizes_the_pool_of_a_blocking_driver(tmp_path: Path) -> None:
    with Cache(driver="filesystem", namespace="aworkers",
               config={"directory": tmp_path / "fs", "async_workers": 3}) as cache:
        assert cache.driver.async_executor is not None
        assert cache.driver.async_executor.workers == 3
        seen: list[str] = []
        original = cache.driver.get

        def recording_get(key: str) -> Any:
            seen.append(threading.current_thread().name)
            return original(key)

        cache.driver.get = recording_get  # type: ignore[method-assign]
        repo = Users(cache)
        assert asyncio.run(repo.get("u5")) == {"id": "u5", "v": 1}
        assert asyncio.run(repo.get("u5")) == {"id": "u5", "v": 1}
        assert repo.loads == 1
        assert seen
        assert all(name.startswith("cachekit-async") for name in seen)


@pytest.mark.parametrize("bad", [0, "four", 5000])
def test_a_bad_async_workers_value_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="async_workers"):
        Cache(driver="memory", namespace=f"bad-{uuid.uuid4().hex[:6]}", config={"async_workers": bad})
